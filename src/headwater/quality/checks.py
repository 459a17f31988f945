"""Quality checks compiled to DuckDB SQL.

A row check compiles to a boolean SQL expression that is TRUE when a row fails
(``row_fails``); a table check compiles to an aggregate query whose single row
is ``(failed: bool, observed: value)``. All row checks of a step are evaluated
in one pass over the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.errors import QualityError, choices_hint

__all__ = ["CHECK_KINDS", "CompiledCheck", "compile_check", "quote_ident", "sql_literal"]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class CompiledCheck:
    """A check ready to run: ``row_fails`` for row checks, ``table_sql`` for table checks."""

    name: str
    kind: str
    severity: str
    columns: tuple[str, ...]
    row_fails: str | None = None
    table_sql: str | None = None  # uses {relation}; returns (failed, observed)
    description: str | None = None

    @property
    def column(self) -> str | None:
        return ",".join(self.columns) if self.columns else None

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


def _columns(spec: Mapping[str, Any]) -> tuple[str, ...]:
    cols = spec.get("columns") or spec.get("column") or ()
    if isinstance(cols, str):
        return (cols,)
    return tuple(cols)


def _need_column(kind: str, cols: Sequence[str]) -> str:
    if len(cols) != 1:
        raise QualityError(f"check `{kind}` needs exactly one `column`", field="column")
    return cols[0]


def _not_null(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    if not cols:
        raise QualityError("check `not_null` needs `column` or `columns`", field="columns")
    return " OR ".join(f"{quote_ident(c)} IS NULL" for c in cols)


def _unique(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    if not cols:
        raise QualityError("check `unique` needs `column` or `columns`", field="columns")
    part = ", ".join(quote_ident(c) for c in cols)
    # every copy of a duplicated key fails; NULL keys are not duplicates of each other
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in cols)
    return f"({not_null}) AND count(*) OVER (PARTITION BY {part}) > 1"


def _accepted_values(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    col = quote_ident(_need_column("accepted_values", cols))
    values = spec.get("values") or []
    listed = ", ".join(sql_literal(v) for v in values)
    if not listed:
        raise QualityError("check `accepted_values` needs a non-empty `values` list")
    return f"{col} IS NOT NULL AND {col} NOT IN ({listed})"


def _range(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    col = quote_ident(_need_column("range", cols))
    parts = []
    low, high = spec.get("min"), spec.get("max")
    if low is not None:
        op = "<" if spec.get("min_inclusive", True) else "<="
        parts.append(f"{col} {op} {sql_literal(low)}")
    if high is not None:
        op = ">" if spec.get("max_inclusive", True) else ">="
        parts.append(f"{col} {op} {sql_literal(high)}")
    if not parts:
        raise QualityError("check `range` needs `min`, `max` or both")
    return f"{col} IS NOT NULL AND ({' OR '.join(parts)})"


def _regex(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    col = quote_ident(_need_column("regex", cols))
    pattern = spec.get("pattern")
    if not pattern:
        raise QualityError("check `regex` needs a `pattern`")
    matches = f"regexp_full_match(CAST({col} AS VARCHAR), {sql_literal(pattern)})"
    return f"{col} IS NOT NULL AND NOT {matches}"


def _expression(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    expression = spec.get("expression")
    if not expression:
        raise QualityError("check `expression` needs an `expression`")
    return f"({expression}) IS NOT TRUE"


def _row_count(spec: Mapping[str, Any]) -> str:
    low, high = spec.get("min"), spec.get("max")
    conds = []
    if low is not None:
        conds.append(f"count(*) < {int(low)}")
    if high is not None:
        conds.append(f"count(*) > {int(high)}")
    failed = " OR ".join(conds) if conds else "FALSE"
    return f"SELECT ({failed}) AS failed, count(*) AS observed FROM {{relation}}"


_ROW_CHECKS = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "range": _range,
    "regex": _regex,
    "expression": _expression,
}
CHECK_KINDS = (*_ROW_CHECKS, "row_count")


def compile_check(spec: Mapping[str, Any]) -> CompiledCheck:
    """Compile one check (a mapping as produced by the pipeline spec's model_dump())."""
    kind = str(spec.get("type"))
    cols = _columns(spec)
    name = spec.get("name") or (f"{kind}_{'_'.join(cols)}" if cols else kind)
    severity = spec.get("severity") or "error"
    description = spec.get("description")
    if kind in _ROW_CHECKS:
        predicate = _ROW_CHECKS[kind](cols, spec)
        return CompiledCheck(
            name, kind, severity, cols, row_fails=predicate, description=description
        )
    if kind == "row_count":
        return CompiledCheck(
            name, kind, severity, (), table_sql=_row_count(spec), description=description
        )
    raise QualityError(
        f"unknown check type `{kind}`", hint=choices_hint(kind, CHECK_KINDS, "check types")
    )
