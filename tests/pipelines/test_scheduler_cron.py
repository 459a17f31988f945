"""Tick arithmetic: DST gaps and repeats, catch-up policies (pure, no clock of the machine)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

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
