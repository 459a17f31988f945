"""The check models of the pipeline language (``type:`` plus attributes, one per kind).

Row checks (``not_null``, ``unique``, ``accepted_values``, ``range``, ``regex``, ``length``,
``expression``, ``references``) judge each row; table checks (``row_count``, ``schema``,
``freshness``, ``reconcile``, ``drift``) judge the dataset as a whole. How each compiles to
SQL is in :mod:`headwater.quality.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from headwater.pipelines._nodes import (
    Bound,
    ColumnName,
    DatasetName,
    Node,
    Scalar,
    Severity,
    custom_error,
    derived_name_field,
    parse_duration,
    slug,
)

__all__ = [
    "CHECK_TYPES",
    "AcceptedValuesCheck",
    "Check",
    "CheckBase",
    "DriftCheck",
    "ExpressionCheck",
    "FreshnessCheck",
    "LengthCheck",
    "NotNullCheck",
    "RangeCheck",
    "ReconcileCheck",
    "ReferencesCheck",
    "RegexCheck",
    "RowCountCheck",
    "SchemaCheck",
    "UniqueCheck",
]


class CheckBase(Node):
    type: str
    name: str = derived_name_field("Check name; defaults to `<type>_<column>`.")
    severity: Severity = "error"
    """`error` fails the step and quarantines failing rows; `warn` only reports."""
    description: str | None = None
    """What the check guards, for people reading results."""

    def columns_checked(self) -> tuple[str, ...]:
        """The columns this check looks at (empty for table-level checks)."""
        column = getattr(self, "column", None)
        return (column,) if isinstance(column, str) else ()

    @model_validator(mode="after")
    def _default_name(self) -> Self:
        if not self.name:
            self.name = "_".join([self.type, *(slug(c) for c in self.columns_checked())])
        return self


class _ColumnsCheck(CheckBase):
    column: ColumnName | None = None
    """One column (or use `columns`)."""
    columns: Annotated[list[ColumnName], Field(min_length=1)] | None = None
    """Several columns (or use `column`)."""

    def columns_checked(self) -> tuple[str, ...]:
        if self.columns is not None:
            return tuple(self.columns)
        return (self.column,) if self.column is not None else ()

    @model_validator(mode="after")
    def _one_of_column_columns(self) -> Self:
        if (self.column is None) == (self.columns is None):
            both = self.column is not None
            raise custom_error(
                "column_or_columns",
                f"`{self.type}` needs exactly one of `column` or `columns`"
                + (", not both" if both else ""),
                "columns" if both else "type",
            )
        return self


class NotNullCheck(_ColumnsCheck):
    """No NULL in the column(s)."""

    type: Literal["not_null"]


class UniqueCheck(_ColumnsCheck):
    """No duplicate values; with several columns the combination is unique."""

    type: Literal["unique"]


class AcceptedValuesCheck(CheckBase):
    """Every non-NULL value is one of `values`."""

    type: Literal["accepted_values"]
    column: ColumnName
    values: Annotated[list[Scalar], Field(min_length=1)]


class RangeCheck(CheckBase):
    """Values lie between `min` and `max` (either may be omitted)."""

    type: Literal["range"]
    column: ColumnName
    min: Bound | None = None
    max: Bound | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise custom_error("range_bounds", "`range` needs `min`, `max` or both", "type")
        try:
            inverted = self.min is not None and self.max is not None and self.min > self.max  # type: ignore[operator]
        except TypeError:
            raise custom_error(
                "range_bounds", "`min` and `max` are of different types", "max"
            ) from None
        if inverted:
            raise custom_error(
                "range_bounds", f"`min` {self.min!r} is above `max` {self.max!r}", "max"
            )
        return self


class RegexCheck(CheckBase):
    """Every non-NULL value matches `pattern` (DuckDB `regexp_full_match`, RE2 syntax)."""

    type: Literal["regex"]
    column: ColumnName
    pattern: Annotated[str, Field(min_length=1)]


class LengthCheck(CheckBase):
    """Every non-NULL value (as text) has between `min` and `max` characters."""

    type: Literal["length"]
    column: ColumnName
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise custom_error("length_bounds", "`length` needs `min`, `max` or both", "type")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise custom_error(
                "length_bounds", f"`min` {self.min} is above `max` {self.max}", "max"
            )
        return self


class RowCountCheck(CheckBase):
    """The dataset has between `min` and `max` rows."""

    type: Literal["row_count"]
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise custom_error("row_count_bounds", "`row_count` needs `min`, `max` or both", "type")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise custom_error(
                "row_count_bounds", f"`min` {self.min} is above `max` {self.max}", "max"
            )
        return self


class ExpressionCheck(CheckBase):
    """A SQL boolean expression every row must satisfy (NULL counts as failing)."""

    type: Literal["expression"]
    expression: Annotated[str, Field(min_length=1)]


class SchemaCheck(CheckBase):
    """The dataset has the expected columns, each of the expected type."""

    type: Literal["schema"]
    columns: Annotated[dict[ColumnName, str | None], Field(min_length=1)]
    """Column name -> DuckDB type (`bigint`, `varchar`, `double`, `timestamp`,
    `decimal(10,2)`, ...); `null` accepts any type."""
    exact: bool = False
    """Also fail when the dataset has columns that are not listed."""


def _duration(value: Any) -> str:
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError:
            pass
        else:
            return value.strip()
    raise PydanticCustomError(
        "duration", "Input should be a duration such as `90s`, `15m`, `2h`, `1d`, `1w`"
    )


class FreshnessCheck(CheckBase):
    """The newest value of a timestamp column is at most `max_age` old."""

    type: Literal["freshness"]
    column: ColumnName
    max_age: Annotated[str, AfterValidator(_duration)]
    """A duration: `90s`, `15m`, `2h`, `1d`, `1w`."""


class ReferencesCheck(CheckBase):
    """Every non-NULL value exists in a column of another dataset (referential integrity)."""

    type: Literal["references"]
    column: ColumnName
    to: DatasetName
    """The dataset holding the valid values, `zone.name`."""
    to_column: ColumnName | None = None
    """Its column; default: the same name as `column`."""


Aggregate = Literal["sum", "count", "count_distinct", "min", "max", "avg"]


class ReconcileCheck(CheckBase):
    """An aggregate of a column equals the same aggregate of another dataset's column,
    within a tolerance."""

    type: Literal["reconcile"]
    column: ColumnName | None = None
    """The column aggregated; may be omitted for `aggregate: count` (rows)."""
    aggregate: Aggregate = "sum"
    to: DatasetName
    """The dataset compared with, `zone.name`."""
    to_column: ColumnName | None = None
    """Its column; default: the same name as `column`."""
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """Absolute difference allowed."""
    tolerance_pct: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Difference allowed in percent of the other dataset's value (the larger of the two
    tolerances applies)."""

    @model_validator(mode="after")
    def _column_needed(self) -> Self:
        if self.column is None and self.aggregate != "count":
            raise custom_error(
                "reconcile_column",
                f"`reconcile` with `aggregate: {self.aggregate}` needs a `column`",
                "aggregate",
            )
        return self


class DriftCheck(CheckBase):
    """The distribution of a column has not drifted from a baseline version of the dataset:
    PSI over category frequencies, or the Kolmogorov-Smirnov statistic over numbers."""

    type: Literal["drift"]
    column: ColumnName
    method: Literal["auto", "psi", "ks"] = "auto"
    """`psi` (categories), `ks` (numbers), or `auto`: `ks` for numeric and temporal
    columns, `psi` for the others."""
    baseline: Literal["previous"] | Annotated[int, Field(ge=0)] = "previous"
    """The version compared with: `previous` (the newest version this run did not write)
    or a version number (Delta time travel)."""
    threshold: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Fail above this value; default 0.2 for PSI, 0.1 for KS."""


Check = Annotated[
    NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | RangeCheck
    | RegexCheck
    | LengthCheck
    | RowCountCheck
    | ExpressionCheck
    | SchemaCheck
    | FreshnessCheck
    | ReferencesCheck
    | ReconcileCheck
    | DriftCheck,
    Field(discriminator="type"),
]

CHECK_TYPES: dict[str, type[CheckBase]] = {
    "not_null": NotNullCheck,
    "unique": UniqueCheck,
    "accepted_values": AcceptedValuesCheck,
    "range": RangeCheck,
    "regex": RegexCheck,
    "length": LengthCheck,
    "row_count": RowCountCheck,
    "expression": ExpressionCheck,
    "schema": SchemaCheck,
    "freshness": FreshnessCheck,
    "references": ReferencesCheck,
    "reconcile": ReconcileCheck,
    "drift": DriftCheck,
}
