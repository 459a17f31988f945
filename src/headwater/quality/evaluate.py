"""Evaluate compiled checks over a relation in as few DuckDB scans as possible.

* each ``unique`` check: one aggregate over its key columns finds the duplicated keys
  (``GROUP BY ... HAVING count(*) > 1``), a CTE of the row-check statement below (a small
  temp table when a blocking predicate has to be evaluated again for the passing rows);
* every row check at once: ONE scan computes a boolean flag per check (``__hw_fail_<i>``)
  and keeps only the rows that fail at least one check, with their flags, in the temp table
  ``__hw_failed``; the per-check failure counts, the quarantine rows and the bounded samples
  of failing rows stored with each result all come from that (small) table;
* table checks: one aggregate query for the row count, freshness and the checked side of
  ``reconcile`` (see :mod:`headwater.quality.table_checks`).

When an ``error`` check blocks rows, the passing rows are one more scan that re-applies only
the blocking predicates (against the small duplicate-key tables), streamed to the writer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headwater.engine.session import EngineSession
from headwater.errors import HeadwaterError, QualityError, choices_hint
from headwater.quality.checks import DUPS, OTHER, CompiledCheck, quote_ident, sql_literal
from headwater.quality.quarantine import QUARANTINE_SCHEMA
from headwater.quality.table_checks import (
    Resolver,
    canonical_type,
    evaluate_table_checks,
    is_numeric,
)

__all__ = ["SAMPLE_ROWS", "CheckOutcome", "CheckResult", "evaluate_checks"]

_FAILED = "__hw_failed"
SAMPLE_ROWS = 20


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
    observed: Any = None
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CheckOutcome:
    """Results plus readers for the rows to keep and the rows to quarantine."""

    session: EngineSession
    relation: str
    results: list[CheckResult]
    rows_checked: int
    rows_quarantined: int
    data_columns: list[str] = field(default_factory=list)
    blocking_predicates: list[str] = field(default_factory=list)
    _labels: list[tuple[str, str]] = field(default_factory=list)
    row_id: tuple[str, ...] = ()

    @property
    def table_failures(self) -> list[CheckResult]:
        """Failed ``error`` table checks (row_count, schema, ...): these fail the step."""
        return [
            r
            for r in self.results
            if not r.passed and r.severity == "error" and r.kind in _TABLE_KINDS
        ]

    def passing_rows(self, batch_rows: int = 256_000) -> pa.RecordBatchReader:
        """The rows no ``error`` check blocks. With row-identity columns, one anti-join with
        the (small) table of blocked rows; otherwise the blocking predicates again."""
        cols = ", ".join(quote_ident(c) for c in self.data_columns)
        if self.row_id:
            ids = ", ".join(quote_ident(c) for c in self.row_id)
            blocked = " OR ".join(flag for flag, _ in self._labels) or "FALSE"
            return self.session.reader(
                f"SELECT {cols} FROM {self.relation} ANTI JOIN "
                f"(SELECT {ids} FROM {_FAILED} WHERE {blocked}) AS __hw_blocked USING ({ids})",
                batch_rows=batch_rows,
            )
        where = " OR ".join(f"coalesce(({p}), FALSE)" for p in self.blocking_predicates)
        return self.session.reader(
            f"SELECT {cols} FROM {self.relation} WHERE NOT ({where or 'FALSE'})",
            batch_rows=batch_rows,
        )

    def quarantine_rows(
        self,
        *,
        run_id: str,
        step: str,
        dataset: str,
        load_id: str | None = None,
        batch_rows: int = 256_000,
    ) -> pa.RecordBatchReader:
        cols = ", ".join(quote_ident(c) for c in self.data_columns)
        where = " OR ".join(flag for flag, _ in self._labels) or "FALSE"
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
              {sql_literal(load_id)}::VARCHAR AS load_id
            FROM {_FAILED} WHERE {where}
        """
        reader = self.session.reader(sql, batch_rows=batch_rows)
        return pa.RecordBatchReader.from_batches(
            QUARANTINE_SCHEMA, (b.cast(QUARANTINE_SCHEMA) for b in reader)
        )


_TABLE_KINDS = ("row_count", "schema", "freshness", "reconcile", "drift")


def _describe(session: EngineSession, relation: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in session.execute(f"DESCRIBE SELECT * FROM {relation}")}


def _resolve_other(check: CompiledCheck, resolve: Resolver | None) -> str:
    assert check.other is not None
    try:
        other = resolve(check.other, None) if resolve else None
    except HeadwaterError as exc:
        raise check.error(
            f"dataset `{check.other}` cannot be read: {exc.message}", field="to", hint=exc.hint
        ) from None
    if other is None:
        raise check.error(f"dataset `{check.other}` does not exist", field="to")
    return other


def _validate(
    session: EngineSession,
    relation: str,
    check: CompiledCheck,
    types: dict[str, str],
    resolve: Resolver | None,
) -> str | None:
    """Raise a located QualityError for a check that cannot run on this data; return the
    relation of the other dataset it reads, if any."""
    for column in check.columns:
        if column not in types and check.kind != "schema":
            raise check.error(
                f"the dataset has no column `{column}`",
                field="column",
                hint=choices_hint(column, types, "columns"),
            )
    if check.kind == "range":
        column = check.columns[0]
        for bound in ("min", "max"):
            value = _bound(check, bound)
            if value is None:
                continue
            wrong = isinstance(value, str) and is_numeric(types[column])
            if not wrong:
                try:
                    session.execute(f"SELECT CAST({sql_literal(value)} AS {types[column]})")
                except HeadwaterError:
                    wrong = True
            if wrong:
                raise check.error(
                    f"`{bound}` {value!r} is not a value of column `{column}` ({types[column]})",
                    field=bound,
                    hint=f"Give a {types[column].lower()} bound.",
                )
    if check.kind == "expression":
        try:
            session.execute(f"SELECT {check.row_fails} FROM {relation} LIMIT 0")
        except HeadwaterError as exc:
            raise check.error(
                f"the expression does not run: {exc.message}", field="expression"
            ) from None
    if check.kind in ("drift", "freshness") and check.columns:
        column = check.columns[0]
        if check.kind == "freshness" and not (
            types[column].upper().startswith(("TIMESTAMP", "DATE"))
        ):
            raise check.error(
                f"`freshness` needs a date or timestamp column; `{column}` is {types[column]}",
                field="column",
            )
    if check.other is not None:
        other = _resolve_other(check, resolve)
        target = check.params.get("to_column") or (check.columns[0] if check.columns else None)
        if target is not None:
            theirs = _describe(session, other)
            if target not in theirs:
                raise check.error(
                    f"dataset `{check.other}` has no column `{target}`",
                    field="to_column",
                    hint=choices_hint(target, theirs, "columns"),
                )
        return other
    return None


def _bound(check: CompiledCheck, which: str) -> Any:
    return check.params.get(which)


def evaluate_checks(
    session: EngineSession,
    relation: str,
    checks: Sequence[CompiledCheck],
    *,
    resolve: Resolver | None = None,
    dataset: str | None = None,
    unique_scope: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    row_id: Sequence[str] = (),
) -> CheckOutcome:
    """Run ``checks`` over ``relation`` (a view or table name known to ``session``).

    ``resolve`` names the relation of another dataset (or a version of this one, for
    ``drift``); ``dataset`` is the name of the checked dataset. ``unique_scope`` is the
    relation in which duplicates are looked for (default: ``relation``); a replay of
    quarantined rows passes the dataset plus the replayed rows. ``row_id`` names columns of
    ``relation`` that identify a row and are not data (the check step's Parquet file and row
    number): the passing rows are then read by an anti-join with the blocked ones instead of
    evaluating the blocking checks a second time.
    """
    types = {k: v for k, v in _describe(session, relation).items() if k not in row_id}
    data_columns = list(types)
    row_checks = [c for c in checks if c.is_row_check]
    predicates: list[str] = []
    # duplicate keys computed inside the flag scan's statement (a CTE: DuckDB plans the
    # aggregate and the scan together) unless a blocking predicate must be re-run later
    ctes: list[str] = []
    for i, check in enumerate(row_checks):
        predicate = check.row_fails or "FALSE"
        other = _validate(session, relation, check, types, resolve)
        if other is not None:
            predicate = predicate.replace(OTHER, other)
        if check.kind == "unique":
            name, query = _duplicates(check, i, unique_scope or relation)
            if row_id or not check.blocking:
                ctes.append(f"{name} AS ({query})")
            else:
                session.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
            predicate = predicate.replace(DUPS, name)
        if check.kind == "regex":
            _check_regex(session, check)
        predicates.append(predicate)
    table_checks = [c for c in checks if not c.is_row_check]
    for check in table_checks:
        _validate(session, relation, check, types, resolve)
        if check.kind == "schema":
            for type_name in (check.params.get("columns") or {}).values():
                if type_name is not None:
                    canonical_type(session, type_name, check)

    total, table_results = evaluate_table_checks(
        session, relation, table_checks, types=types, dataset=dataset, resolve=resolve
    )

    flags = [f"__hw_fail_{i}" for i in range(len(row_checks))]
    counts = [0] * len(row_checks)
    blocked = 0
    labels = [(f, c.name) for c, f in zip(row_checks, flags, strict=True) if c.blocking]
    samples: list[list[dict[str, Any]]] = [[] for _ in row_checks]
    if row_checks:
        flag_sql = ", ".join(
            f"coalesce(({p}), FALSE) AS {f}" for p, f in zip(predicates, flags, strict=True)
        )
        with_ctes = f"WITH {', '.join(ctes)} " if ctes else ""
        session.execute(
            f"CREATE OR REPLACE TEMP TABLE {_FAILED} AS {with_ctes}SELECT * FROM "
            f"(SELECT *, {flag_sql} FROM {relation}) WHERE {' OR '.join(flags)}"
        )
        blocking_any = " OR ".join(f for f, _ in labels) or "FALSE"
        sums = ", ".join(f"sum(CAST({f} AS BIGINT))" for f in flags)
        row = session.execute(
            f"SELECT sum(CAST(({blocking_any}) AS BIGINT)), {sums} FROM {_FAILED}"
        )[0]
        blocked = int(row[0] or 0)
        counts = [int(v or 0) for v in row[1:]]
        cols = ", ".join(quote_ident(c) for c in data_columns)
        for i, flag in enumerate(flags):
            if counts[i] and sample_rows > 0:
                found = session.execute(
                    f"SELECT CAST(to_json(struct_pack({cols})) AS VARCHAR) FROM {_FAILED} "
                    f"WHERE {flag} LIMIT {int(sample_rows)}"
                )
                samples[i] = [json.loads(r[0]) for r in found]

    results: list[CheckResult] = []
    for i, check in enumerate(row_checks):
        failed = counts[i]
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
                observed={"rows_failed": failed},
                sample=samples[i],
            )
        )
    for tr in table_results:
        results.append(
            CheckResult(
                tr.check.name,
                tr.check.kind,
                tr.check.severity,
                tr.check.column,
                tr.passed,
                total,
                0,
                tr.message,
                observed=tr.observed,
                sample=tr.sample,
            )
        )
    blocking_predicates = [p for c, p in zip(row_checks, predicates, strict=True) if c.blocking]
    return CheckOutcome(
        session,
        relation,
        results,
        total,
        blocked,
        data_columns,
        blocking_predicates,
        labels,
        tuple(row_id),
    )


def _duplicates(check: CompiledCheck, i: int, scope: str) -> tuple[str, str]:
    """The name and query of the duplicated keys of a ``unique`` check."""
    name = f"__hw_dups_{i}"
    keys = ", ".join(quote_ident(c) for c in check.columns)
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in check.columns)
    return name, (f"SELECT {keys} FROM {scope} WHERE {not_null} GROUP BY ALL HAVING count(*) > 1")


def _check_regex(session: EngineSession, check: CompiledCheck) -> None:
    pattern = check.params.get("pattern")
    if pattern is None:
        return
    try:
        session.execute(f"SELECT regexp_full_match('', {sql_literal(pattern)})")
    except HeadwaterError as exc:
        raise QualityError(
            f"check `{check.name}`: invalid regular expression {pattern!r}: {exc.message}",
            location=check.location,
            field="pattern",
            hint="Patterns use RE2 syntax (no backreferences or lookaround).",
        ) from None
