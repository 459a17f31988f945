"""Tick arithmetic: which cron ticks are due, in a time zone, across DST, after downtime.

Ticks are instants (UTC ``datetime`` values); the cron expression is read in the
schedule's time zone. DST rules (the same as classic ``cron``):

* a wall-clock time skipped when clocks go forward (02:30 on a spring-forward night in
  Europe/Berlin) fires once, at the first valid time after the gap (03:00);
* a wall-clock time repeated when clocks go back (02:30 on a fall-back night) fires
  once, at its first occurrence, unless the hour field is ``*``: an hourly or
  minutely schedule fires in both real hours, as the hours really happen twice.

Everything here is pure: the current time is passed in, so tests drive it with a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["Due", "due_ticks", "next_ticks", "ticks_between"]

#: At most this many missed ticks are run by `catchup: all` after a long downtime; older
#: ones are skipped (and counted) rather than flooding the queue.
MAX_CATCHUP = 1000
#: Counting skipped ticks stops here (a per-second schedule down for a week).
_COUNT_LIMIT = 100_000

_ALIAS_HOURS = {"@hourly": "*"}


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _hour_is_any(cron: str) -> bool:
    text = cron.strip()
    if text.startswith("@"):
        return _ALIAS_HOURS.get(text.lower(), "") == "*"
    fields = text.split()
    return len(fields) > 1 and fields[1] == "*"


def _repeated_wall_time(local: datetime) -> bool:
    """True for the second occurrence of a wall-clock time repeated by a fall-back."""
    first = local.replace(tzinfo=None).replace(tzinfo=local.tzinfo, fold=0)
    return first.utcoffset() != local.utcoffset()


def _iterate(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Ticks strictly after ``after``, as UTC instants, in order, each once."""
    from croniter import croniter

    zone = _zone(timezone)
    every_hour = _hour_is_any(cron)
    it = croniter(cron, after.astimezone(zone))
    last: datetime | None = None
    while True:
        local = it.get_next(datetime)
        if not every_hour and _repeated_wall_time(local):
            continue
        instant = local.astimezone(UTC)
        if instant <= after or (last is not None and instant <= last):
            continue  # a gap maps two wall times to one instant: fire it once
        last = instant
        yield instant


def ticks_between(
    cron: str, timezone: str, after: datetime, until: datetime, *, limit: int | None = None
) -> list[datetime]:
    """Ticks ``t`` with ``after < t <= until`` (UTC), oldest first, at most ``limit``."""
    out: list[datetime] = []
    if until <= after:
        return out
    for tick in _iterate(cron, timezone, after):
        if tick > until or (limit is not None and len(out) >= limit):
            break
        out.append(tick)
    return out


def next_ticks(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` ticks strictly after ``after`` (UTC)."""
    out: list[datetime] = []
    for tick in _iterate(cron, timezone, after):
        out.append(tick)
        if len(out) >= count:
            break
    return out


@dataclass(frozen=True)
class Due:
    """What to do with the ticks since the last evaluation."""

    fire: list[datetime]  # UTC, oldest first
    skipped: int  # missed ticks the catch-up policy does not run
    skipped_more: bool = False  # counting stopped at the limit: at least ``skipped``


def due_ticks(
    cron: str,
    timezone: str,
    catchup: Literal["none", "latest", "all"],
    after: datetime,
    now: datetime,
    *,
    grace: timedelta,
    max_catchup: int = MAX_CATCHUP,
) -> Due:
    """The ticks in ``(after, now]`` to fire under ``catchup``.

    A tick at most ``grace`` old is on time and always fires; older ones were missed
    (no scheduler ran): ``none`` skips them, ``latest`` runs only the most recent one
    (and only when no tick is on time), ``all`` runs them all, oldest first (at most
    ``max_catchup``: the most recent ones).
    """
    if now <= after:
        return Due([], 0)
    edge = max(after, now - grace)
    on_time = ticks_between(cron, timezone, edge, now)
    if edge <= after:
        return Due(on_time, 0)
    missed = ticks_between(cron, timezone, after, edge, limit=_COUNT_LIMIT)
    more = len(missed) >= _COUNT_LIMIT
    if catchup == "all":
        run = missed[-max_catchup:]
        return Due(run + on_time, len(missed) - len(run), more)
    if catchup == "latest" and missed and not on_time:
        return Due(missed[-1:], len(missed) - 1, more)
    return Due(on_time, len(missed), more)
