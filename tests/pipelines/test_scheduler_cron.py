"""Tick arithmetic: DST gaps and repeats, catch-up policies (pure, no clock of the machine)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.pipelines.scheduling.cron import due_ticks, next_ticks, ticks_between

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _local(ticks: list[datetime], zone: ZoneInfo) -> list[str]:
    return [t.astimezone(zone).strftime("%Y-%m-%d %H:%M%z") for t in ticks]


def test_daily_time_in_the_spring_forward_gap_fires_once_after_the_gap() -> None:
    # 2026-03-29 02:00 -> 03:00 in Berlin: 02:30 does not exist that night
    ticks = ticks_between(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 27, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )
    assert _local(ticks, BERLIN) == [
        "2026-03-27 02:30+0100",
        "2026-03-28 02:30+0100",
        "2026-03-29 03:00+0200",
        "2026-03-30 02:30+0200",
    ]


def test_daily_time_repeated_by_fall_back_fires_once() -> None:
    # 2026-10-25 03:00 -> 02:00 in Berlin: 02:30 happens twice, the job runs once
    ticks = ticks_between(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 10, 23, tzinfo=UTC),
        datetime(2026, 10, 27, tzinfo=UTC),
    )
    assert _local(ticks, BERLIN) == [
        "2026-10-23 02:30+0200",
        "2026-10-24 02:30+0200",
        "2026-10-25 02:30+0200",
        "2026-10-26 02:30+0100",
    ]
    assert len({t for t in ticks}) == len(ticks)


def test_every_hour_schedule_fires_in_both_repeated_hours() -> None:
    ticks = ticks_between(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 00:30 CEST
        datetime(2026, 10, 25, 3, 30, tzinfo=UTC),  # 04:30 CET
    )
    assert _local(ticks, BERLIN) == [
        "2026-10-25 01:00+0200",
        "2026-10-25 02:00+0200",
        "2026-10-25 02:00+0100",
        "2026-10-25 03:00+0100",
        "2026-10-25 04:00+0100",
    ]
    # one hour apart in real time, every one of them
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(ticks))


def test_every_half_hour_across_the_spring_gap_in_new_york() -> None:
    # 2026-03-08 02:00 -> 03:00 in New York
    ticks = ticks_between(
        "*/30 * * * *",
        "America/New_York",
        datetime(2026, 3, 8, 6, 0, tzinfo=UTC),  # 01:00 EST
        datetime(2026, 3, 8, 8, 0, tzinfo=UTC),  # 04:00 EDT
    )
    assert _local(ticks, NEW_YORK) == [
        "2026-03-08 01:30-0500",
        "2026-03-08 03:00-0400",
        "2026-03-08 03:30-0400",
        "2026-03-08 04:00-0400",
    ]


def test_six_field_cron_has_seconds_last() -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert next_ticks("* * * * * */15", "UTC", start, 3) == [
        start + timedelta(seconds=15),
        start + timedelta(seconds=30),
        start + timedelta(seconds=45),
    ]


HOURLY_DOWN = (
    datetime(2026, 1, 1, 0, 30, tzinfo=UTC),  # last evaluated
    datetime(2026, 1, 1, 5, 30, tzinfo=UTC),  # back up: 01:00..05:00 were missed
)


@pytest.mark.parametrize(
    ("catchup", "fired_hours", "skipped"),
    [("none", [], 5), ("latest", [5], 4), ("all", [1, 2, 3, 4, 5], 0)],
)
def test_catchup_policies_after_downtime(
    catchup: str, fired_hours: list[int], skipped: int
) -> None:
    after, now = HOURLY_DOWN
    due = due_ticks("0 * * * *", "UTC", catchup, after, now, grace=timedelta(seconds=60))  # type: ignore[arg-type]
    assert [t.hour for t in due.fire] == fired_hours
    assert due.skipped == skipped


@pytest.mark.parametrize("catchup", ["none", "latest", "all"])
def test_a_tick_due_now_fires_under_every_policy(catchup: str) -> None:
    after = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    now = datetime(2026, 1, 1, 1, 0, 20, tzinfo=UTC)  # 20 s after the 01:00 tick
    due = due_ticks("0 * * * *", "UTC", catchup, after, now, grace=timedelta(seconds=60))  # type: ignore[arg-type]
    assert due.fire == [datetime(2026, 1, 1, 1, 0, tzinfo=UTC)]
    assert due.skipped == 0


def test_latest_does_not_add_a_missed_tick_when_one_is_on_time() -> None:
    after = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    now = datetime(2026, 1, 1, 3, 0, 10, tzinfo=UTC)
    due = due_ticks("0 * * * *", "UTC", "latest", after, now, grace=timedelta(seconds=60))
    assert due.fire == [datetime(2026, 1, 1, 3, 0, tzinfo=UTC)]
    assert due.skipped == 2


def test_all_keeps_at_most_max_catchup_most_recent_ticks() -> None:
    after = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    now = datetime(2026, 1, 1, 0, 10, 30, tzinfo=UTC)
    due = due_ticks(
        "* * * * *", "UTC", "all", after, now, grace=timedelta(seconds=5), max_catchup=3
    )
    assert [t.minute for t in due.fire] == [8, 9, 10]
    assert due.skipped == 7


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago", "UTC"]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 59]),
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
    ),
)
def test_a_daily_schedule_fires_exactly_once_every_local_day(
    zone: str, hour: int, minute: int, start: datetime
) -> None:
    local = ZoneInfo(zone)
    ticks = ticks_between(f"{minute} {hour} * * *", zone, start, start + timedelta(days=40))
    assert ticks == sorted(set(ticks))
    days = [t.astimezone(local).date() for t in ticks]
    assert len(days) == len(set(days)), "a local day got two runs"
    first, last = days[0], days[-1]
    assert len(days) == (last - first).days + 1, "a local day got no run"


#: Days with a DST change in 2026 (either direction) in the zones above.
DST_DAYS = [
    datetime(2026, 3, 29, tzinfo=UTC),  # Berlin forward
    datetime(2026, 10, 25, tzinfo=UTC),  # Berlin back
    datetime(2026, 3, 8, tzinfo=UTC),  # New York forward
    datetime(2026, 11, 1, tzinfo=UTC),  # New York back
    datetime(2026, 4, 5, tzinfo=UTC),  # Sydney back, Santiago back
    datetime(2026, 10, 4, tzinfo=UTC),  # Sydney forward
    datetime(2026, 9, 6, tzinfo=UTC),  # Santiago forward
]


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    step=st.sampled_from([1, 5, 15, 30]),
    day=st.sampled_from(DST_DAYS),
    offset=st.integers(-30, 6),
)
def test_an_every_n_minutes_schedule_never_doubles_and_never_stalls(
    zone: str, step: int, day: datetime, offset: int
) -> None:
    start = day + timedelta(hours=offset)
    ticks = ticks_between(f"*/{step} * * * *", zone, start, start + timedelta(hours=30))
    assert ticks == sorted(set(ticks))
    # real time runs on through DST changes: the ticks stay evenly spaced
    assert {b - a for a, b in itertools.pairwise(ticks)} == {timedelta(minutes=step)}
