"""The rules of a ``map`` step as typed models.

A ``map`` step holds an ordered list of rules; each rule is a mapping with exactly
one key naming what it does::

    rules:
      - rename: {cust: customer_id}
      - cast: {amount: "DECIMAL(10,2)"}
      - derive: {total: "amount * quantity"}
      - filter: "status <> 'cancelled'"
      - lookup: {dataset: ref.countries, on: {country: code}, columns: [name],
                 default: {name: unknown}}
      - aggregate: {by: [customer_id], aggregates: {revenue: "sum(total)"}}
      - dedupe: {keys: [order_id], order_by: "updated_at desc"}
      - mask: {email: hash, name: redact, card: {keep_last: 4}}
      - flatten: {column: payload, fields: {sku: VARCHAR, qty: INTEGER}}
      - explode: {column: items, as: item}
      - union: [archive.orders]

:mod:`headwater.transform.mapping` compiles the rules (as plain data) to one DuckDB
query; the models here only check their shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from headwater.pipelines._nodes import ColumnName, DatasetName, Node, Scalar, custom_error

__all__ = [
    "RULE_KINDS",
    "Aggregate",
    "Dedupe",
    "Explode",
    "Flatten",
    "KeepLast",
    "Lookup",
    "MapRule",
    "MaskMethod",
    "map_rule_inputs",
]

Text = Annotated[str, Field(min_length=1)]
Columns = Annotated[dict[ColumnName, ColumnName], Field(min_length=1)]
Expressions = Annotated[dict[ColumnName, Text], Field(min_length=1)]


class Lookup(Node):
    """Enrich each row from a reference dataset, matched on key columns (a left join)."""

    dataset: DatasetName
    """The reference dataset, `zone.name`."""
    on: Columns
    """Input column -> reference column; rows match when all pairs are equal."""
    columns: Annotated[list[ColumnName], Field(min_length=1)] | Columns
    """Reference columns to add: a list, or a mapping reference column -> new name."""
    default: dict[ColumnName, Scalar | None] = Field(default_factory=dict)
    """Value of an added column (by its new name) when no reference row matches."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a plain `on:` key as the boolean true
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class Aggregate(Node):
    """Group rows and compute aggregates; the output is the groups."""

    by: list[ColumnName] = Field(default_factory=list)
    """Grouping columns (none: one row for the whole input)."""
    aggregates: Expressions
    """New column -> aggregate SQL expression, e.g. `sum(amount)`."""


class Dedupe(Node):
    """Keep one row per key: the first by `order_by`."""

    keys: Annotated[list[ColumnName], Field(min_length=1)]
    order_by: Text | None = None
    """A SQL ORDER BY list, e.g. `updated_at desc`; without it an arbitrary row is kept."""


class KeepLast(Node):
    """Mask all but the last N characters with `*`."""

    keep_last: Annotated[int, Field(ge=0, le=64)]


MaskMethod = Literal["hash", "redact"] | KeepLast


class Flatten(Node):
    """Turn the fields of a struct (or JSON text) column into columns."""

    column: ColumnName
    fields: Annotated[list[ColumnName], Field(min_length=1)] | Expressions | None = None
    """Struct: the fields to take (default all). JSON text: field -> DuckDB type (required)."""
    prefix: str | None = None
    """Prefix of the new columns; default `<column>_`."""
    keep: bool = False
    """Keep the original column as well."""


class Explode(Node):
    """One row per element of a list column (rows with an empty or NULL list disappear)."""

    column: ColumnName
    as_: ColumnName | None = Field(default=None, alias="as")
    """Name of the element column; default the list column's name (replaced in place)."""


RULE_KINDS = (
    "rename",
    "cast",
    "derive",
    "filter",
    "lookup",
    "aggregate",
    "dedupe",
    "mask",
    "flatten",
    "explode",
    "union",
)


class MapRule(Node):
    """One rule of a `map` step: a mapping with exactly one of the keys below."""

    rename: Columns | None = None
    """Old name -> new name."""
    cast: Expressions | None = None
    """Column -> DuckDB type, e.g. `{amount: "DECIMAL(10,2)"}`."""
    derive: Expressions | None = None
    """Column -> SQL expression over the input columns (replaces or adds the column)."""
    filter: Text | None = None
    """A SQL predicate; rows where it is not true are dropped."""
    lookup: Lookup | None = None
    aggregate: Aggregate | None = None
    dedupe: Dedupe | None = None
    mask: Annotated[dict[ColumnName, MaskMethod], Field(min_length=1)] | None = None
    """Column -> `hash` (SHA-256 with the workspace salt), `redact`, or `{keep_last: N}`."""
    flatten: ColumnName | Flatten | None = None
    explode: ColumnName | Explode | None = None
    union: DatasetName | Annotated[list[DatasetName], Field(min_length=1)] | None = None
    """Datasets whose rows are appended, columns matched by name (missing ones NULL)."""

    @property
    def kind(self) -> str:
        return next(k for k in RULE_KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        present = [k for k in RULE_KINDS if getattr(self, k) is not None]
        if len(present) != 1:
            raise custom_error(
                "map_rule_kind",
                "a map rule must have exactly one of "
                + ", ".join(f"`{k}`" for k in RULE_KINDS)
                + (f"; found {', '.join(present)}" if present else ""),
                present[1] if len(present) > 1 else "rename",
            )
        return self

    def as_data(self) -> dict[str, Any]:
        """``{kind: argument}`` as plain data (what the compiler takes)."""
        kind = self.kind
        return {kind: self.model_dump(by_alias=True)[kind]}


def map_rule_inputs(rules: list[MapRule]) -> tuple[str, ...]:
    """Datasets the rules read besides the step's `from` (lookups and unions), in order."""
    out: dict[str, None] = {}
    for rule in rules:
        if rule.lookup is not None:
            out.setdefault(rule.lookup.dataset, None)
        if rule.union is not None:
            for name in [rule.union] if isinstance(rule.union, str) else rule.union:
                out.setdefault(name, None)
    return tuple(out)


def map_input_sites(step: Any, i: int) -> list[tuple[str, tuple[str | int, ...], int | None]]:
    """Each dataset a map step reads, with the field naming it (for planner errors)."""
    sites: list[tuple[str, tuple[str | int, ...], int | None]] = [
        (step.from_, ("steps", i, "from"), None)
    ]
    for j, rule in enumerate(step.rules):
        if rule.lookup is not None:
            sites.append((rule.lookup.dataset, ("steps", i, "rules", j, "lookup", "dataset"), None))
        if isinstance(rule.union, str):
            sites.append((rule.union, ("steps", i, "rules", j, "union"), None))
        elif rule.union is not None:
            sites += [
                (d, ("steps", i, "rules", j, "union", k), None) for k, d in enumerate(rule.union)
            ]
    return sites
