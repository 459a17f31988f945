"""Time intervals for backfills and partitioned ``for_each`` steps.

``intervals("2024-01-01", "2024-01-04", "day")`` is three half-open days, like a Python
range: the last interval ends at ``end``. Weeks start on Monday, months on the 1st;
``start`` is aligned down to the boundary of its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

__all__ = ["EVERY", "Every", "Interval", "intervals", "parse_point"]

Every = Literal["hour", "day", "week", "month"]
EVERY: tuple[str, ...] = ("hour", "day", "week", "month")
#: At most this many intervals in one backfill or fan-out (a typo in a year is not 10^5 runs).
MAX_INTERVALS = 10_000


@dataclass(frozen=True)
class Interval:
    """``[start, end)`` of one partition."""

    start: datetime
    end: datetime
    every: str

    def _text(self, value: datetime) -> str:
        return value.isoformat() if self.every == "hour" else value.date().isoformat()

    @property
    def key(self) -> str:
        """The text of ``start``: ``2024-01-31``, or ``2024-01-31T06:00:00`` for hours."""
        return self._text(self.start)

    def as_context(self) -> dict[str, Any]:
        """What templates see as ``interval``: ISO text, ready for SQL literals."""
        return {
            "start": self._text(self.start),
            "end": self._text(self.end),
            "every": self.every,
            "key": self.key,
        }


def parse_point(text: str | date | datetime) -> datetime:
    """A date or timestamp given as text (``2024-01-31``, ``2024-01-31T06:00``)."""
    if isinstance(text, datetime):
        return text.replace(tzinfo=None)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day)
    value = datetime.fromisoformat(str(text).strip())
    return value.replace(tzinfo=None)


def _align(point: datetime, every: str) -> datetime:
    if every == "hour":
        return point.replace(minute=0, second=0, microsecond=0)
    day = point.replace(hour=0, minute=0, second=0, microsecond=0)
    if every == "week":
        return day - timedelta(days=day.weekday())
    if every == "month":
        return day.replace(day=1)
    return day


def _next(point: datetime, every: str) -> datetime:
    if every == "hour":
        return point + timedelta(hours=1)
    if every == "day":
        return point + timedelta(days=1)
    if every == "week":
        return point + timedelta(weeks=1)
    year, month = (point.year + 1, 1) if point.month == 12 else (point.year, point.month + 1)
    return point.replace(year=year, month=month)


def intervals(
    start: str | date | datetime, end: str | date | datetime, every: str
) -> list[Interval]:
    """The intervals of size ``every`` from ``start`` (aligned down) up to ``end``.

    Raises ``ValueError`` with the reason (unknown ``every``, unparsable points, ``end``
    not after ``start``, too many intervals).
    """
    if every not in EVERY:
        raise ValueError(f"`every` must be one of {', '.join(EVERY)}, got `{every}`")
    try:
        low, high = parse_point(start), parse_point(end)
    except ValueError:
        raise ValueError(
            f"`{start}` .. `{end}`: expected dates such as `2024-01-31` "
            "or timestamps such as `2024-01-31T06:00`"
        ) from None
    if high <= low:
        raise ValueError(f"the end `{end}` is not after the start `{start}`")
    out: list[Interval] = []
    point = _align(low, every)
    while point < high:
        nxt = _next(point, every)
        out.append(Interval(point, nxt, every))
        if len(out) > MAX_INTERVALS:
            raise ValueError(f"more than {MAX_INTERVALS} intervals of a {every}: narrow the range")
        point = nxt
    return out
