"""Evaluate compiled checks over a relation in one DuckDB pass.

One aggregate pass computes a boolean flag per row check (``__hw_fail_<i>``)
and sums them, reading only the columns the checks use. Only when an ``error``
check blocks rows is the relation materialized with its flags, so that the
quarantine rows and the passing rows are two cheap queries over one snapshot.
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
    relation: str
    flag_sql: str
    results: list[CheckResult]
    rows_checked: int
    rows_quarantined: int
    data_columns: list[str] = field(default_factory=list)
    blocking_flags: list[str] = field(default_factory=list)
    _labels: list[tuple[str, str]] = field(default_factory=list)
    _materialized: bool = False

    def _table(self) -> str:
        if not self._materialized:
            self.session.execute(
                f"CREATE OR REPLACE TEMP TABLE {_TMP} AS "
                f"SELECT *{self.flag_sql} FROM {self.relation}"
            )
            self._materialized = True
        return _TMP

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
            f"SELECT {cols} FROM {self._table()} WHERE NOT ({where})", batch_rows=batch_rows
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
              now()::TIMESTAMPTZ AS quarantined_at,
              CAST(NULL AS VARCHAR) AS load_id
            FROM {self._table()} WHERE {where}
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

    blocking = [f for c, f in zip(row_checks, flags, strict=True) if c.blocking]
    sums = "".join(f", sum(CAST({f} AS BIGINT))" for f in flags)
    any_blocking = " OR ".join(blocking) if blocking else "FALSE"
    counts = session.execute(
        f"SELECT count(*), sum(CAST(({any_blocking}) AS BIGINT)){sums} "
        f"FROM (SELECT TRUE AS __hw_row{flag_sql} FROM {relation})"
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
        failed_flag, observed = session.execute(check.table_sql.format(relation=relation))[0]
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
    return CheckOutcome(
        session, relation, flag_sql, results, total, quarantined, data_columns, blocking, labels
    )
