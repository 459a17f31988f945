"""Check results in metadata: one ``check_results`` row per check and run, and beside it
(``check_samples``) what the check observed and up to 20 failing rows as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from headwater.metadata.models import CheckResultRow, CheckSampleRow
from headwater.metadata.store import MetadataStore
from headwater.quality.evaluate import CheckResult

__all__ = ["StoredResult", "load_results", "save_results"]


@dataclass(frozen=True)
class StoredResult:
    result: CheckResultRow
    observed: Any
    sample: list[Any]


def save_results(
    store: MetadataStore,
    results: Sequence[CheckResult],
    *,
    run_id: str | None,
    step: str | None,
    dataset: str,
) -> None:
    """Record every result, with its observation and failing-row sample, in one transaction."""
    with store.session() as s:
        for r in results:
            row = CheckResultRow(
                run_id=run_id,
                step=step,
                dataset=dataset,
                check=r.name,
                kind=r.kind,
                column=r.column,
                severity=r.severity,
                passed=r.passed,
                rows_checked=r.rows_checked,
                rows_failed=r.rows_failed,
                message=r.message,
            )
            s.add(row)
            s.flush()
            s.add(CheckSampleRow(check_result_id=row.id, observed=r.observed, sample=r.sample))


def load_results(
    store: MetadataStore, *, run_id: str | None = None, dataset: str | None = None
) -> list[StoredResult]:
    """Stored results (oldest first) with their observations and samples."""
    with store.session() as s:
        query = (
            select(CheckResultRow, CheckSampleRow)
            .outerjoin(CheckSampleRow, CheckSampleRow.check_result_id == CheckResultRow.id)
            .order_by(CheckResultRow.id)
        )
        if run_id:
            query = query.where(CheckResultRow.run_id == run_id)
        if dataset:
            query = query.where(CheckResultRow.dataset == dataset)
        return [
            StoredResult(
                result, sample.observed if sample else None, list(sample.sample) if sample else []
            )
            for result, sample in s.execute(query)
        ]
