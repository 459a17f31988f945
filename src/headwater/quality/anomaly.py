"""Anomaly detection on metric history with a robust median/MAD rule.

For a new value ``x`` of a metric, the baseline is the metric's points in the trailing
``window_days`` (default 28) before ``x`` was measured. Once the history spans at least
``seasonal_after_days`` (default 21) and the window holds at least ``min_seasonal_points`` points
on the same weekday as ``x``, only those are used (weekly seasonality: Mondays are compared with
Mondays). The score is the robust z-score

    z = (x - median) / (1.4826 * MAD)

where MAD is the median absolute deviation of the baseline and 1.4826 makes it estimate the
standard deviation of normal data; ``x`` is an anomaly when ``|z| >= threshold`` (default 3.5,
Iglewicz and Hoaglin's cut-off). When MAD is 0 (more than half the baseline is one value) the
scale falls back to 1.2533 times the mean absolute deviation; when that is 0 too (the baseline
is constant) any different value is an anomaly.

Everything takes the measurement time as an argument, so tests inject their own clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "MAD_SCALE",
    "AnomalySettings",
    "Assessment",
    "assess",
    "describe_metric",
    "format_value",
]

MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class AnomalySettings:
    """Tunables (``quality.anomaly`` in headwater.yaml)."""

    threshold: float = 3.5
    window_days: int = 28
    min_points: int = 7
    seasonal_after_days: int = 21
    min_seasonal_points: int = 3


@dataclass(frozen=True)
class Assessment:
    """The verdict on one new value of one metric."""

    metric: str
    value: float
    median: float
    mad: float
    z: float  # signed robust z-score; +-inf when the baseline is constant and x differs
    points: int
    basis: str  # e.g. "28-day" or "28-day same-weekday (Monday)"
    anomalous: bool
    message: str


def describe_metric(metric: str) -> str:
    """``null_rate:email`` -> ``null rate of email``."""
    kind, _, column = metric.partition(":")
    label = {
        "row_count": "row count",
        "null_rate": "null rate",
        "mean": "mean",
        "freshness_seconds": "freshness (age of the newest row)",
    }.get(kind, kind.replace("_", " "))
    return f"{label} of {column}" if column else label


def format_value(metric: str, value: float) -> str:
    kind = metric.partition(":")[0]
    if kind == "null_rate":
        return f"{value:.2%}"
    if kind == "freshness_seconds":
        return _duration(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f} s"
    if s < 7200:
        return f"{sign}{s / 60:.1f} min"
    if s < 172800:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} days"


def assess(
    metric: str,
    value: float,
    at: datetime,
    history: Sequence[tuple[datetime, float]],
    settings: AnomalySettings | None = None,
) -> Assessment | None:
    """Judge ``value`` (measured at ``at``) against ``history`` (earlier ``(time, value)``
    points of the same metric). None when there is not enough history to judge."""
    cfg = settings or AnomalySettings()
    earlier = [(t, v) for t, v in history if t < at and v is not None and math.isfinite(v)]
    start = at - timedelta(days=cfg.window_days)
    window = [(t, v) for t, v in earlier if t >= start]
    if len(window) < cfg.min_points:
        return None
    basis = f"{cfg.window_days}-day"
    baseline = [v for _, v in window]
    oldest = min(t for t, _ in earlier)
    if at - oldest >= timedelta(days=cfg.seasonal_after_days):
        same_day = [v for t, v in window if t.weekday() == at.weekday()]
        if len(same_day) >= cfg.min_seasonal_points:
            baseline = same_day
            basis = f"{cfg.window_days}-day same-weekday ({_WEEKDAYS[at.weekday()]})"

    median = statistics.median(baseline)
    mad = statistics.median(abs(v - median) for v in baseline)
    scale = MAD_SCALE * mad
    scale_note = f"robust z = (x - median) / ({MAD_SCALE} x MAD)"
    if scale == 0:
        scale = MEAN_AD_SCALE * statistics.fmean(abs(v - median) for v in baseline)
        scale_note = f"MAD is 0, so z = (x - median) / ({MEAN_AD_SCALE} x mean absolute deviation)"
    deviation = value - median
    if scale == 0:
        z = 0.0 if deviation == 0 else math.copysign(math.inf, deviation)
    else:
        z = deviation / scale
    anomalous = abs(z) >= cfg.threshold
    label = describe_metric(metric)
    shown, mid = format_value(metric, value), format_value(metric, median)
    if math.isinf(z):
        message = (
            f"{label} {shown} differs from the constant {mid} of all {len(baseline)} points "
            f"of the {basis} baseline"
        )
    else:
        direction = "below" if deviation < 0 else "above"
        message = (
            f"{label} {shown} is {abs(z):.1f} MADs {direction} the {basis} median of {mid} "
            f"({scale_note}; threshold {cfg.threshold:g}; {len(baseline)} points)"
        )
    return Assessment(
        metric=metric,
        value=value,
        median=median,
        mad=mad,
        z=z,
        points=len(baseline),
        basis=basis,
        anomalous=anomalous,
        message=message,
    )
