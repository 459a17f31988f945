"""Predicates (DuckDB SQL) checked to be one expression, for the file-backed SQL sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.errors import QueryError

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["parse_predicate"]


def parse_predicate(predicate: str, connector: str) -> exp.Expr:
    """Parse ``predicate`` as DuckDB SQL: exactly one expression, never a statement.

    Rendering from the parsed tree (never the raw text) means the predicate cannot close
    the WHERE clause and start a second statement.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        parsed = sqlglot.parse(predicate, read="duckdb")
    except (ParseError, TokenError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(
            f"The predicate {predicate!r} does not parse: {first}",
            connector=connector,
            field="predicate",
        ) from None
    if (
        len(parsed) != 1
        or parsed[0] is None
        or isinstance(parsed[0], (exp.Query, exp.Command, exp.DDL, exp.DML))
    ):
        raise QueryError(
            f"The predicate {predicate!r} must be one boolean expression.",
            connector=connector,
            field="predicate",
            hint="Write it like a WHERE clause, e.g. `amount > 10 AND country = 'FR'`.",
        )
    tree: exp.Expr = parsed[0]
    return tree
