"""Quality checks compiled to DuckDB SQL.

A row check compiles to a boolean SQL expression that is TRUE when a row fails
(``row_fails``). Two tokens stand for relations only known when the check runs:
``@@other@@`` (the dataset a ``references`` check looks values up in) and
``@@dups@@`` (the duplicated keys of a ``unique`` check, computed once by one
aggregate). A table check (``row_count``, ``schema``, ``freshness``,
``reconcile``, ``drift``) carries its validated parameters; the evaluator
computes it (see :mod:`headwater.quality.evaluate` and :mod:`headwater.quality.table_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from headwater.errors import QualityError, choices_hint

__all__ = [
    "CHECK_KINDS",
    "DUPS",
    "OTHER",
    "ROW_KINDS",
    "TABLE_KINDS",
    "CompiledCheck",
    "compile_check",
    "quote_ident",
    "sql_literal",
]

OTHER = "@@other@@"
DUPS = "@@dups@@"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class CompiledCheck:
    """A check ready to run: ``row_fails`` for row checks, ``params`` for table checks."""

    name: str
    kind: str
    severity: str
    columns: tuple[str, ...]
    row_fails: str | None = None
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    other: str | None = None  # the dataset a references/reconcile check reads
    location: str | None = None  # file:line:col of the check in its pipeline

    @property
    def column(self) -> str | None:
        return ",".join(self.columns) if self.columns else None

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    @property
    def is_row_check(self) -> bool:
        return self.row_fails is not None

    def error(
        self, message: str, *, field: str | None = None, hint: str | None = None
    ) -> QualityError:
        """A QualityError about this check, located at it."""
        return QualityError(
            f"check `{self.name}`: {message}",
            location=self.location,
            field=field,
            hint=hint,
            column=self.column,
        )


def _columns(spec: Mapping[str, Any]) -> tuple[str, ...]:
    cols = spec.get("columns") or spec.get("column") or ()
    if isinstance(cols, str):
        return (cols,)
    if isinstance(cols, Mapping):  # schema: column -> type
        return tuple(cols)
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
    # every copy of a duplicated key fails; NULL keys are not duplicates of each other.
    # The duplicated keys are computed once (GROUP BY ... HAVING count(*) > 1) into @@dups@@.
    if len(cols) == 1:
        return f"{quote_ident(cols[0])} IN (SELECT {quote_ident(cols[0])} FROM {DUPS})"
    keys = ", ".join(quote_ident(c) for c in cols)
    return f"row({keys}) IN (SELECT row({keys}) FROM {DUPS})"


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


def _length(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    col = quote_ident(_need_column("length", cols))
    low, high = spec.get("min"), spec.get("max")
    size = f"length(CAST({col} AS VARCHAR))"
    parts = []
    if low is not None:
        parts.append(f"{size} < {int(low)}")
    if high is not None:
        parts.append(f"{size} > {int(high)}")
    if not parts:
        raise QualityError("check `length` needs `min`, `max` or both")
    return f"{col} IS NOT NULL AND ({' OR '.join(parts)})"


def _expression(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    expression = spec.get("expression")
    if not expression:
        raise QualityError("check `expression` needs an `expression`")
    return f"({expression}) IS NOT TRUE"


def _references(cols: Sequence[str], spec: Mapping[str, Any]) -> str:
    column = _need_column("references", cols)
    target = spec.get("to_column") or column
    col = quote_ident(column)
    ref = quote_ident(target)
    # the NULLs of the other side are left out: `x NOT IN (..., NULL)` is never TRUE
    return f"{col} IS NOT NULL AND {col} NOT IN (SELECT {ref} FROM {OTHER} WHERE {ref} IS NOT NULL)"


_ROW_CHECKS = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "range": _range,
    "regex": _regex,
    "length": _length,
    "expression": _expression,
    "references": _references,
}
ROW_KINDS = tuple(_ROW_CHECKS)
TABLE_KINDS = ("row_count", "schema", "freshness", "reconcile", "drift")
CHECK_KINDS = (*ROW_KINDS, *TABLE_KINDS)
_PARAMS = {
    "row_count": ("min", "max"),
    "schema": ("columns", "exact"),
    "freshness": ("max_age",),
    "reconcile": ("aggregate", "to_column", "tolerance", "tolerance_pct"),
    "drift": ("method", "baseline", "threshold"),
}


def compile_check(spec: Mapping[str, Any], *, location: str | None = None) -> CompiledCheck:
    """Compile one check (a mapping as produced by the pipeline spec's model_dump())."""
    kind = str(spec.get("type"))
    cols = _columns(spec)
    name = spec.get("name") or (f"{kind}_{'_'.join(cols)}" if cols else kind)
    severity = spec.get("severity") or "error"
    description = spec.get("description")
    other = spec.get("to") if kind in ("references", "reconcile") else None
    if kind in _ROW_CHECKS:
        predicate = _ROW_CHECKS[kind](cols, spec)
        params = {k: spec.get(k) for k in ("min", "max", "pattern", "to_column") if k in spec}
        return CompiledCheck(
            name,
            kind,
            severity,
            cols,
            row_fails=predicate,
            description=description,
            params=params,
            other=other,
            location=location,
        )
    if kind in _PARAMS:
        if kind == "schema":
            cols = ()
        params = {key: spec.get(key) for key in _PARAMS[kind]}
        if kind == "row_count" and params["min"] is None and params["max"] is None:
            raise QualityError("check `row_count` needs `min`, `max` or both")
        if kind == "reconcile":
            params["aggregate"] = params["aggregate"] or "sum"
            params["tolerance"] = float(params["tolerance"] or 0.0)
        if kind == "drift":
            params["method"] = params["method"] or "auto"
            params["baseline"] = (
                params["baseline"] if params["baseline"] is not None else "previous"
            )
        return CompiledCheck(
            name,
            kind,
            severity,
            cols,
            description=description,
            params=params,
            other=other,
            location=location,
        )
    raise QualityError(
        f"unknown check type `{kind}`", hint=choices_hint(kind, CHECK_KINDS, "check types")
    )
