"""A dataset's quality score: four components between 0 and 1, weighted into 0-100.

===============  ======  =====================================================================
component        weight  formula
===============  ======  =====================================================================
completeness     0.30    1 - mean null rate over the dataset's columns
validity         0.35    mean pass rate of its checks; a row check passes the share of rows
                         that did not fail it (1 - rows_failed / rows_checked), a table check
                         (row_count) passes 1 or 0
consistency      0.15    the same over cross-dataset checks (kinds in CONSISTENCY_KINDS)
timeliness       0.20    1 while freshness <= max_age; then falls linearly to 0 at 2 x max_age
===============  ======  =====================================================================

A component that cannot be measured (no checks, no cross-dataset checks, no ``max_age``
configured) is left out and the other weights are scaled up to sum to 1, so a dataset is never
punished for what nobody asked of it. Checks are those of the latest run that checked the
dataset; anomaly warnings are not checks and do not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.metadata.models import CheckResultRow, QualityScoreRow

if TYPE_CHECKING:
    from headwater.metadata.store import MetadataStore

__all__ = [
    "COMPONENTS",
    "CONSISTENCY_KINDS",
    "WEIGHTS",
    "QualityScore",
    "compute_score",
    "latest_check_results",
    "record_score",
    "score_history",
]

WEIGHTS: dict[str, float] = {
    "completeness": 0.30,
    "validity": 0.35,
    "consistency": 0.15,
    "timeliness": 0.20,
}
COMPONENTS = tuple(WEIGHTS)
# check kinds that compare a dataset with another one
CONSISTENCY_KINDS = frozenset({"references", "reconcile"})
# results that are not checks of the data (written by anomaly detection)
_NOT_CHECKS = frozenset({"anomaly"})


@dataclass
class QualityScore:
    dataset: str
    score: float
    components: dict[str, float | None]
    measured_at: datetime
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _pass_rate(row: CheckResultRow) -> float:
    if row.rows_checked and row.rows_failed:
        return max(0.0, 1.0 - row.rows_failed / row.rows_checked)
    return 1.0 if row.passed else 0.0


def compute_score(
    dataset: str,
    *,
    null_rates: Mapping[str, float],
    checks: Sequence[CheckResultRow],
    freshness_seconds: float | None,
    max_age_seconds: float | None,
    measured_at: datetime,
    run_id: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> QualityScore:
    """Combine the components into a 0-100 score (see the module docstring)."""
    w = dict(weights or WEIGHTS)
    comps: dict[str, float | None] = dict.fromkeys(COMPONENTS)
    details: dict[str, Any] = {}
    if null_rates:
        comps["completeness"] = 1.0 - sum(null_rates.values()) / len(null_rates)
        worst = max(null_rates.items(), key=lambda kv: kv[1])
        details["most_nulls"] = {"column": worst[0], "null_rate": worst[1]}
    data_checks = [c for c in checks if c.kind not in _NOT_CHECKS]
    validity = [c for c in data_checks if c.kind not in CONSISTENCY_KINDS]
    consistency = [c for c in data_checks if c.kind in CONSISTENCY_KINDS]
    if validity:
        comps["validity"] = sum(_pass_rate(c) for c in validity) / len(validity)
        details["checks"] = len(validity)
        details["failed_checks"] = sorted(c.check for c in validity if not c.passed)
    if consistency:
        comps["consistency"] = sum(_pass_rate(c) for c in consistency) / len(consistency)
    if freshness_seconds is not None and max_age_seconds:
        late = max(0.0, freshness_seconds - max_age_seconds)
        comps["timeliness"] = max(0.0, 1.0 - late / max_age_seconds)
        details["freshness_seconds"] = freshness_seconds
        details["max_age_seconds"] = max_age_seconds
    measured = {k: v for k, v in comps.items() if v is not None}
    total_weight = sum(w[k] for k in measured)
    score = 100.0 * sum(w[k] * v for k, v in measured.items()) / total_weight if measured else 0.0
    details["weights"] = {k: round(w[k] / total_weight, 4) for k in measured} if measured else {}
    return QualityScore(dataset, round(score, 2), comps, measured_at, run_id, details)


def latest_check_results(store: MetadataStore, dataset: str) -> list[CheckResultRow]:
    """Check results of the most recent run that checked ``dataset`` (anomalies excluded)."""
    with store.session() as s:
        last = s.scalar(
            select(CheckResultRow.run_id)
            .where(CheckResultRow.dataset == dataset, CheckResultRow.kind.not_in(_NOT_CHECKS))
            .order_by(CheckResultRow.id.desc())
            .limit(1)
        )
        query = select(CheckResultRow).where(
            CheckResultRow.dataset == dataset, CheckResultRow.kind.not_in(_NOT_CHECKS)
        )
        query = (
            query.where(CheckResultRow.run_id == last)
            if last is not None
            else query.where(CheckResultRow.run_id.is_(None))
        )
        return list(s.scalars(query.order_by(CheckResultRow.id)))


def record_score(store: MetadataStore, score: QualityScore) -> None:
    with store.session() as s:
        s.add(
            QualityScoreRow(
                dataset=score.dataset,
                run_id=score.run_id,
                score=score.score,
                completeness=score.components["completeness"],
                validity=score.components["validity"],
                consistency=score.components["consistency"],
                timeliness=score.components["timeliness"],
                details=score.details,
                measured_at=score.measured_at,
            )
        )


def score_history(store: MetadataStore, dataset: str, *, limit: int = 30) -> list[QualityScore]:
    """The latest ``limit`` scores of ``dataset``, oldest first."""
    with store.session() as s:
        rows = list(
            s.scalars(
                select(QualityScoreRow)
                .where(QualityScoreRow.dataset == dataset)
                .order_by(QualityScoreRow.measured_at.desc(), QualityScoreRow.id.desc())
                .limit(limit)
            )
        )
    out = []
    for row in reversed(rows):
        at = store.as_utc(row.measured_at)
        assert at is not None
        comps = {
            "completeness": row.completeness,
            "validity": row.validity,
            "consistency": row.consistency,
            "timeliness": row.timeliness,
        }
        out.append(QualityScore(row.dataset, row.score, comps, at, row.run_id, dict(row.details)))
    return out
