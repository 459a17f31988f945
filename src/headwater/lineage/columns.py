"""Column lineage of a query, with sqlglot: which input columns flow into each output.

The query names inputs as ``"zone"."name"`` (as transform and map steps run it);
``schemas`` gives their columns so that ``*`` expands. An output column whose value
is an input column passed through (possibly renamed, through CTEs and joins) is an
``identity`` edge; anything computed (casts, functions, aggregates) is ``derived``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage

from headwater.errors import QueryError

__all__ = ["ColumnEdge", "column_lineage", "output_columns"]


@dataclass(frozen=True, order=True)
class ColumnEdge:
    """``src_dataset.src_column`` flows into ``dst_dataset.dst_column``."""

    src_dataset: str
    src_column: str
    dst_dataset: str
    dst_column: str
    transformation: str  # identity | derived


def _schema(
    schemas: Mapping[str, pa.Schema | Sequence[str]],
) -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for dataset, schema in schemas.items():
        zone, _, name = dataset.partition(".")
        names = schema.names if isinstance(schema, pa.Schema) else list(schema)
        out.setdefault(zone, {})[name] = dict.fromkeys(names, "TEXT")
    return out


def _plain(expression: exp.Expr) -> bool:
    """A node that passes a column through unchanged."""
    if isinstance(expression, exp.Alias):
        expression = expression.this
    return isinstance(expression, exp.Column | exp.Table)


def _leaves(node: Node, derived: bool) -> list[tuple[Node, bool]]:
    derived = derived or not _plain(node.expression)
    if not node.downstream:
        return [(node, derived)] if isinstance(node.expression, exp.Table) else []
    out: list[tuple[Node, bool]] = []
    for child in node.downstream:
        out += _leaves(child, derived)
    return out


def _column_name(node: Node) -> str:
    try:
        parsed = sqlglot.parse_one(node.name, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return node.name.rsplit(".", 1)[-1].strip('"')
    return parsed.name if isinstance(parsed, exp.Column) else node.name


def _dataset_of(table: exp.Table) -> str | None:
    return f"{table.db}.{table.name}" if table.db else None


def output_columns(sql: str) -> list[str]:
    """The names of a query's output columns (``*`` left out: it needs a schema)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return []
    if not isinstance(tree, exp.Query):
        return []
    return [name for name in tree.named_selects if name and name != "*"]


def column_lineage(
    sql: str,
    output: str,
    columns: Sequence[str],
    schemas: Mapping[str, pa.Schema | Sequence[str]],
    *,
    dataset_of: Callable[[exp.Table], str | None] = _dataset_of,
) -> list[ColumnEdge]:
    """The edges from the input datasets' columns into ``output``'s ``columns``.

    ``dataset_of`` names the dataset a source table is (default ``zone.name`` from a
    qualified table; None skips the table). Raises :class:`QueryError` when sqlglot cannot
    follow the query.
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        found = lineage(None, tree, schema=_schema(schemas), dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(
            f"cannot trace the column lineage of the query: {str(exc).splitlines()[0]}",
            dataset=output,
        ) from None
    nodes: Mapping[str, Node] = found if isinstance(found, dict) else {}
    by_lower = {name.lower(): node for name, node in nodes.items()}
    edges: set[ColumnEdge] = set()
    for column in columns:
        node = nodes.get(column) or by_lower.get(column.lower())
        if node is None:
            continue
        for leaf, derived in _leaves(node, False):
            table = leaf.expression
            assert isinstance(table, exp.Table)
            source = dataset_of(table)
            if source is None:
                continue  # a table function or VALUES, not a dataset
            edges.add(
                ColumnEdge(
                    source,
                    _column_name(leaf),
                    output,
                    column,
                    "derived" if derived else "identity",
                )
            )
    return sorted(edges)
