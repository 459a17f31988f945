"""Predicates (DuckDB SQL) rendered for SQLite with sqlglot, with exact temporal literals.

SQLite has no date/time types: the destination stores timestamps, dates and times as
fixed-width ISO text (see :mod:`headwater.connectors.sqlite.types`), and comparisons on
them are text comparisons. sqlglot's generic rendering (``DATETIME('2024-01-01
10:00:00')``, ``CAST('...' AS TIMESTAMPTZ)``) would compare against a differently
shaped text (no fraction, a ``+00:00`` offset) and get boundaries wrong, so every
temporal literal is rewritten to a string literal in the stored form *of the column
it is compared with* (where the column's type is known), else of its own cast type:

* ``"ts" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)`` -> ``"ts" >= '2024-01-01 10:00:00.000000'``
* ``"ts" >= CAST('2024-01-01 12:00:00+02:00' AS TIMESTAMPTZ)`` on a ``TIMESTAMPTZ`` column
  -> ``"ts" >= '2024-01-01 10:00:00.000000Z'`` (UTC)
* ``"d" >= CAST('2024-01-01' AS DATE)`` -> ``"d" >= '2024-01-01'``

Decimal casts render as ``CAST('12.50' AS REAL(10, 2))``: a REAL-affinity operand makes
SQLite compare the decimal text numerically (double precision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.connectors.sql.predicate import parse_predicate
from headwater.connectors.sqlite.types import canonical_literal, literal_kind
from headwater.errors import QueryError

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["parse_predicate", "to_sqlite"]

CONNECTOR = "sqlite"


def _comparisons() -> tuple[type, ...]:
    from sqlglot import exp

    return (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)


def _cast_kind(to: object) -> str | None:
    from sqlglot import exp

    if not isinstance(to, exp.DataType):
        return None
    t = exp.DataType.Type
    if to.this in (t.TIMESTAMPTZ, t.TIMESTAMPLTZ):
        return "timestamptz"
    if to.this in (
        t.TIMESTAMP,
        t.TIMESTAMPNTZ,
        t.DATETIME,
        t.TIMESTAMP_S,
        t.TIMESTAMP_MS,
        t.TIMESTAMP_NS,
    ):
        return "timestamp"
    if to.this == t.DATE:
        return "date"
    if to.this == t.TIME:
        return "time"
    return None


def to_sqlite(predicate: str, columns: Mapping[str, pa.DataType] | None = None) -> str:
    """``predicate`` (one DuckDB boolean expression) as one parenthesized SQLite expression.

    ``columns`` maps the stream's column names to their Arrow types (None for a query
    read): temporal literals compared with those columns take their stored form.
    """
    from sqlglot import exp

    tree = parse_predicate(predicate, CONNECTOR)
    types = {name.casefold(): t for name, t in (columns or {}).items()}

    def column_type(node: exp.Expr | None) -> pa.DataType | None:
        if isinstance(node, exp.Column) and not node.table:
            return types.get(node.name.casefold())
        return None

    def context(node: exp.Expr) -> pa.DataType | None:
        """The type of the column ``node`` is compared with, when known."""
        parent = node.parent
        if isinstance(parent, exp.Paren):
            return context(parent)
        if isinstance(parent, (exp.Between, exp.In)):
            return column_type(parent.this)
        if isinstance(parent, exp.Binary) and isinstance(parent, _comparisons()):
            other = parent.expression if node is parent.this else parent.this
            return column_type(other)
        return None

    def rewrite(node: exp.Expr) -> exp.Expr:
        literal: exp.Expr | None = None
        kind: str | None = None
        if isinstance(node, (exp.Cast, exp.TryCast)) and isinstance(node.this, exp.Literal):
            kind = _cast_kind(node.args.get("to"))
            literal = node.this if kind else None
        elif isinstance(node, exp.Literal) and node.is_string:
            literal = node
        if literal is None or not literal.is_string:
            return node
        target = context(node)
        target_kind = literal_kind(target) if target is not None else None
        kind = target_kind or kind
        if kind is None:
            return node
        try:
            text = canonical_literal(literal.this, kind)
        except ValueError:
            if node is literal:  # a plain string: leave it to SQLite
                return node
            raise QueryError(
                f"The predicate {predicate!r} has {literal.this!r}, which is not a valid "
                f"{kind} literal.",
                connector=CONNECTOR,
                field="predicate",
            ) from None
        return exp.Literal.string(text)

    rendered = tree.transform(rewrite, copy=True)
    return "(" + rendered.sql(dialect="sqlite") + ")"
