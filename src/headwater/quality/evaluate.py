"""Evaluate compiled checks over a relation in one DuckDB pass.

The relation is materialized once with one boolean flag column per row check
(``__hw_fail_<i>``); counts, the quarantine rows and the passing rows are then
cheap queries over that table. Rows failing any ``error`` check are split off;
``warn`` checks only count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from headwater.engine.session import EngineSession
from headwater.quality.checks import CompiledCheck, quote_ident, sql_literal
from headwater.quality.quarantine import QUARANTINE_SCHEMA

__all__ = ["CheckOutcome", "CheckResult", "evaluate_checks"]

_TMP = "__hw_checked"


@dataclass(frozen=True)
class CheckResult:
    name: str
    kind: str
    severity: str
    column: str | None
    passed: bool
    rows_checked: int
    rows_failed: int
    message: str


@dataclass
class CheckOutcome:
    """Results plus readers for the rows to keep and the rows to quarantine."""

    session: EngineSession
    results: list[CheckResult]
    rows_checked: int
    rows_quarantined: int
    data_columns: list[str] = field(default_factory=list)
    blocking_flags: list[str] = field(default_factory=list)
    _labels: list[tuple[str, str]] = field(default_factory=list)

    @property
    def table_failures(self) -> list[CheckResult]:
        """Failed ``error`` table checks (e.g. row_count): these fail the step."""
        return [
            r
            for r in self.results
            if not r.passed and r.severity == "error" and r.kind == "row_count"
        ]

    def passing_rows(self, batch_rows: int = 256_000) -> pa.RecordBatchReader:
        cols = ", ".join(quote_ident(c) for c in self.data_columns)
        where = " OR ".join(self.blocking_flags) or "FALSE"
        return self.session.reader(
            f"SELECT {cols} FROM {_TMP} WHERE NOT ({where})", batch_rows=batch_rows
        )

    def quarantine_rows(
        self, *, run_id: str, step: str, dataset: str, batch_rows: int = 256_000
    ) -> pa.RecordBatchReader:
        cols = ", ".join(quote_ident(c) for c in self.data_columns)
        where = " OR ".join(self.blocking_flags) or "FALSE"
        rules = ", ".join(
            f"CASE WHEN {flag} THEN {sql_literal(name)} END" for flag, name in self._labels
        )
        sql = f"""
            SELECT
              {sql_literal(run_id)} AS run_id,
              {sql_literal(step)} AS step,
              {sql_literal(dataset)} AS dataset,
              concat_ws(', ', {rules}) AS rule,
              'failed check: ' || concat_ws(', ', {rules}) AS error,
              CAST(NULL AS VARCHAR) AS source_file,
              CAST(NULL AS BIGINT) AS source_line,
              CAST(NULL AS VARCHAR) AS "column",
              CAST(to_json(struct_pack({cols})) AS VARCHAR) AS raw_record,
              now()::TIMESTAMPTZ AS quarantined_at
            FROM {_TMP} WHERE {where}
        """
        reader = self.session.reader(sql, batch_rows=batch_rows)
        return pa.RecordBatchReader.from_batches(
            QUARANTINE_SCHEMA, (b.cast(QUARANTINE_SCHEMA) for b in reader)
        )


def evaluate_checks(
    session: EngineSession, relation: str, checks: Sequence[CompiledCheck]
) -> CheckOutcome:
    """Run ``checks`` over ``relation`` (a view or table name known to ``session``)."""
    row_checks = [c for c in checks if c.row_fails is not None]
    flags = [f"__hw_fail_{i}" for i in range(len(row_checks))]
    flag_sql = "".join(
        f", coalesce(({c.row_fails}), FALSE) AS {flag}"
        for c, flag in zip(row_checks, flags, strict=True)
    )
    data_columns = [row[0] for row in session.execute(f"DESCRIBE SELECT * FROM {relation}")]
    session.execute(f"CREATE OR REPLACE TEMP TABLE {_TMP} AS SELECT *{flag_sql} FROM {relation}")

    blocking = [f for c, f in zip(row_checks, flags, strict=True) if c.blocking]
    sums = "".join(f", sum(CAST({f} AS BIGINT))" for f in flags)
    any_blocking = " OR ".join(blocking) if blocking else "FALSE"
    counts = session.execute(
        f"SELECT count(*), sum(CAST(({any_blocking}) AS BIGINT)){sums} FROM {_TMP}"
    )[0]
    total = int(counts[0])
    quarantined = int(counts[1] or 0)

    results: list[CheckResult] = []
    for i, check in enumerate(row_checks):
        failed = int(counts[2 + i] or 0)
        results.append(
            CheckResult(
                check.name,
                check.kind,
                check.severity,
                check.column,
                failed == 0,
                total,
                failed,
                f"{failed} of {total} rows fail" if failed else "ok",
            )
        )
    for check in checks:
        if check.table_sql is None:
            continue
        failed_flag, observed = session.execute(check.table_sql.format(relation=_TMP))[0]
        results.append(
            CheckResult(
                check.name,
                check.kind,
                check.severity,
                None,
                not failed_flag,
                total,
                0,
                f"observed {observed}" + (" (out of bounds)" if failed_flag else ""),
            )
        )
    labels = [(f, c.name) for c, f in zip(row_checks, flags, strict=True) if c.blocking]
    return CheckOutcome(session, results, total, quarantined, data_columns, blocking, labels)
