"""Median/MAD anomaly detection on synthetic histories with injected timestamps, and anomalies
written as `warn` check results after a real measurement."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.metadata.store import MetadataStore
from headwater.quality.anomaly import MAD_SCALE, AnomalySettings, assess
from headwater.quality.metrics import Measurement, metric_history, record_metrics
from headwater.quality.monitor import RunMonitor

# a Wednesday noon
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def daily(values: list[float], end: datetime = NOW) -> list[tuple[datetime, float]]:
    """One point a day, the last one a day before ``end``."""
    n = len(values)
    return [(end - timedelta(days=n - i), v) for i, v in enumerate(values)]


ROWS = [10_480, 10_300, 10_650, 10_520, 10_410, 10_700, 10_380, 10_460, 10_610, 10_550]


def test_drop_in_row_count_is_explained() -> None:
    history = daily([float(v) for v in ROWS])
    found = assess("row_count", 1_203, NOW, history)
    assert found is not None and found.anomalous
    median = statistics.median(ROWS)
    mad = statistics.median(abs(v - median) for v in ROWS)
    z = (1_203 - median) / (MAD_SCALE * mad)
    assert found.median == median and found.mad == mad
    assert found.z == pytest.approx(z)
    assert found.message.startswith(
        f"row count 1,203 is {abs(z):.1f} MADs below the 28-day median of {median:,.0f}"
    )
    assert "robust z = (x - median) / (1.4826 x MAD)" in found.message
    assert "threshold 3.5; 10 points" in found.message


def test_normal_value_is_not_an_anomaly_and_threshold_is_configurable() -> None:
    history = daily([float(v) for v in ROWS])
    normal = assess("row_count", 10_600, NOW, history)
    assert normal is not None and not normal.anomalous
    assert "above the 28-day median" in normal.message
    # the same value becomes an anomaly with a threshold below its score
    strict = assess("row_count", 10_600, NOW, history, AnomalySettings(threshold=0.5))
    assert strict is not None and strict.anomalous


def test_too_little_history_gives_no_verdict() -> None:
    assert assess("row_count", 5, NOW, daily([10.0] * 6)) is None
    # points older than the window do not count
    old = daily([10.0] * 10, end=NOW - timedelta(days=40))
    assert assess("row_count", 5, NOW, old) is None
    # nor do points at or after the measurement
    assert assess("row_count", 5, NOW, [(NOW + timedelta(hours=i), 1.0) for i in range(10)]) is None


def test_weekly_seasonality_compares_the_same_weekday() -> None:
    # 5 weeks of daily loads: weekdays ~10,000 rows, Saturdays and Sundays ~1,000
    start = NOW - timedelta(days=35)
    history = []
    for day in range(35):
        at = start + timedelta(days=day)
        weekend = at.weekday() >= 5
        history.append((at, (1_000.0 if weekend else 10_000.0) + (day % 3) * 10))
    saturday = NOW + timedelta(days=3)  # NOW is a Wednesday
    assert saturday.weekday() == 5
    usual_saturday = assess("row_count", 1_010, saturday, history)
    assert usual_saturday is not None and not usual_saturday.anomalous
    assert usual_saturday.basis == "28-day same-weekday (Saturday)"
    assert usual_saturday.points == 4
    # without seasonality the same Saturday would look like a collapse
    flat = assess("row_count", 1_010, saturday, history, AnomalySettings(seasonal_after_days=60))
    assert flat is not None and flat.anomalous and flat.basis == "28-day"
    # a weekday volume on a Saturday is what stands out with seasonality
    busy = assess("row_count", 10_000, saturday, history)
    assert busy is not None and busy.anomalous
    assert "above the 28-day same-weekday (Saturday) median of 1,010" in busy.message


def test_mad_zero_falls_back_to_mean_absolute_deviation() -> None:
    # 6 of 8 values equal: MAD is 0, the mean absolute deviation is not
    values = [100.0] * 6 + [110.0, 90.0]
    found = assess("mean:amount", 130.0, NOW, daily(values))
    assert found is not None and found.mad == 0
    scale = 1.2533 * statistics.fmean(abs(v - 100.0) for v in values)
    assert found.z == pytest.approx(30.0 / scale)
    assert "MAD is 0, so z = (x - median) / (1.2533 x mean absolute deviation)" in found.message
    assert found.anomalous


def test_constant_history() -> None:
    same = assess("null_rate:email", 0.0, NOW, daily([0.0] * 10))
    assert same is not None and not same.anomalous and same.z == 0
    moved = assess("null_rate:email", 0.25, NOW, daily([0.0] * 10))
    assert moved is not None and moved.anomalous and math.isinf(moved.z)
    assert moved.message == (
        "null rate of email 25.00% differs from the constant 0.00% of all 10 points of the "
        "28-day baseline"
    )


def test_freshness_is_explained_as_a_duration() -> None:
    hours = daily([3_600.0 + 60 * (i % 4) for i in range(14)])
    late = assess("freshness_seconds", 86_400 * 2, NOW, hours)
    assert late is not None and late.anomalous
    assert late.message.startswith("freshness (age of the newest row) 2.0 days is ")
    assert "above the 28-day median of 61.0 min" in late.message


def test_history_round_trips_through_the_store(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    try:
        for at, value in daily([float(v) for v in ROWS]):
            record_metrics(store, Measurement("raw.orders", at, {"row_count": value}))
        points = metric_history(store, "raw.orders", since=NOW - timedelta(days=28), before=NOW)
        got = [(p.measured_at, p.value) for p in points["row_count"]]
        assert got == daily([float(v) for v in ROWS])
        found = assess("row_count", 1_203, NOW, [(t, v) for t, v in got if v is not None])
        assert found is not None and found.anomalous
    finally:
        store.close()


def test_anomalies_become_warn_check_results(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        # 10 days of history around 10,480 rows, recorded at injected times
        for at, value in daily([float(v) for v in ROWS]):
            record_metrics(
                ws.store,
                Measurement(
                    "raw.orders", at, {"row_count": value, "null_rate:id": 0.0, "mean:id": 5.0}
                ),
            )
        ws.write("raw.orders", pa.table({"id": list(range(1_203))}))
        monitor = RunMonitor(ws, clock=lambda: NOW)
        dq = monitor.observe_dataset("raw.orders", at=NOW, run_id="run-1")
        flagged = {a.metric: a for a in dq.anomalies}
        assert set(flagged) == {"row_count", "mean:id"}
        results = [r for r in ws.store.check_results(run_id="run-1") if r.kind == "anomaly"]
        by_check = {r.check: r for r in results}
        assert set(by_check) == {"anomaly:row_count", "anomaly:mean:id"}
        row = by_check["anomaly:row_count"]
        assert row.severity == "warn" and not row.passed and row.dataset == "raw.orders"
        assert row.rows_checked == 1_203
        assert row.message is not None and row.message.startswith(
            "row count 1,203 is 62.7 MADs below the 28-day median of 10,500"
        )
        assert by_check["anomaly:mean:id"].column == "id"
        # the measurement joined the history
        assert metric_history(ws.store, "raw.orders")["row_count"][-1].value == 1_203
