"""Dataset metrics measured after every run, kept as history for scores and anomalies.

One aggregate query per dataset gives:

* ``row_count``;
* ``null_rate:<column>`` for every column (share of NULLs, 0-1);
* ``mean:<column>`` for every numeric column;
* ``freshness_seconds``: the age of the newest value of the dataset's time column (the
  configured ``quality.freshness.<dataset>.column``, else its first TIMESTAMP or DATE column)
  at the time of measurement; without a time column, the age of the dataset's last commit.

Metrics are rows of ``quality_metrics`` (dataset, metric, value, run, version, time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.engine.types import is_numeric_type
from headwater.metadata.models import QualityMetricRow
from headwater.quality.checks import quote_ident

if TYPE_CHECKING:
    from headwater.engine.session import EngineSession
    from headwater.metadata.store import MetadataStore

__all__ = [
    "Measurement",
    "MetricPoint",
    "measure_relation",
    "metric_history",
    "record_metrics",
    "time_column",
]


@dataclass(frozen=True)
class MetricPoint:
    metric: str
    value: float | None
    measured_at: datetime
    run_id: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class Measurement:
    """The metrics of one dataset at one time."""

    dataset: str
    measured_at: datetime
    values: dict[str, float | None]
    time_column: str | None = None

    @property
    def row_count(self) -> int:
        return int(self.values.get("row_count") or 0)

    @property
    def null_rates(self) -> dict[str, float]:
        return {
            k.partition(":")[2]: v
            for k, v in self.values.items()
            if k.startswith("null_rate:") and v is not None
        }


def time_column(columns: list[tuple[str, str]], configured: str | None = None) -> str | None:
    """The column whose newest value says how fresh the dataset is."""
    if configured:
        return configured
    for name, duck_type in columns:
        if duck_type.upper().startswith("TIMESTAMP") or duck_type.upper() == "DATE":
            return name
    return None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = float(value)
    out = float(value)
    return out if math.isfinite(out) else None


def measure_relation(
    session: EngineSession,
    relation: str,
    *,
    dataset: str,
    now: datetime,
    last_commit: datetime | None = None,
    freshness_column: str | None = None,
) -> Measurement:
    """Measure ``relation`` in one aggregate query; ``now`` is the measurement time."""
    described = session.execute(f"DESCRIBE SELECT * FROM {relation}")
    columns = [(str(r[0]), str(r[1])) for r in described]
    ts_col = time_column(columns, freshness_column)
    exprs = ["count(*)"]
    keys: list[str] = []
    for name, duck_type in columns:
        q = quote_ident(name)
        exprs.append(f"count({q})")
        keys.append(f"count:{name}")
        if is_numeric_type(duck_type):
            exprs.append(f"avg({q})")
            keys.append(f"mean:{name}")
    if ts_col is not None:
        exprs.append(f"epoch(max({quote_ident(ts_col)}))")
        keys.append("newest")
    row = session.execute(f"SELECT {', '.join(exprs)} FROM {relation}")[0]
    total = int(row[0])
    values: dict[str, float | None] = {"row_count": float(total)}
    newest: float | None = None
    for key, raw in zip(keys, row[1:], strict=True):
        kind, _, name = key.partition(":")
        if kind == "count":
            values[f"null_rate:{name}"] = (total - int(raw)) / total if total else 0.0
        elif kind == "mean":
            values[f"mean:{name}"] = _number(raw)
        elif kind == "newest":
            newest = _number(raw)
    if newest is not None:
        values["freshness_seconds"] = now.timestamp() - newest
    elif last_commit is not None:
        values["freshness_seconds"] = (now - last_commit).total_seconds()
    else:
        values["freshness_seconds"] = None
    return Measurement(dataset, now, values, ts_col)


def record_metrics(
    store: MetadataStore,
    measurement: Measurement,
    *,
    run_id: str | None = None,
    version: int | None = None,
) -> None:
    with store.session() as s:
        s.add_all(
            QualityMetricRow(
                dataset=measurement.dataset,
                metric=metric,
                value=value,
                run_id=run_id,
                version=version,
                measured_at=measurement.measured_at,
            )
            for metric, value in measurement.values.items()
        )


def metric_history(
    store: MetadataStore,
    dataset: str,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
    metrics: list[str] | None = None,
) -> dict[str, list[MetricPoint]]:
    """Stored points of ``dataset`` by metric, oldest first."""
    with store.session() as s:
        query = select(QualityMetricRow).where(QualityMetricRow.dataset == dataset)
        if since is not None:
            query = query.where(QualityMetricRow.measured_at >= since)
        if before is not None:
            query = query.where(QualityMetricRow.measured_at < before)
        if metrics:
            query = query.where(QualityMetricRow.metric.in_(metrics))
        rows = list(s.scalars(query.order_by(QualityMetricRow.measured_at, QualityMetricRow.id)))
    out: dict[str, list[MetricPoint]] = {}
    for row in rows:
        at = store.as_utc(row.measured_at)
        assert at is not None
        out.setdefault(row.metric, []).append(
            MetricPoint(row.metric, row.value, at, row.run_id, row.version)
        )
    return out


def latest_values(points: Mapping[str, list[MetricPoint]]) -> dict[str, float | None]:
    return {metric: pts[-1].value for metric, pts in points.items() if pts}
