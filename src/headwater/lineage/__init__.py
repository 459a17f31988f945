"""Column lineage: traced with sqlglot from every transform and map step, stored in
metadata, walked upstream (``headwater lineage``) and downstream (``headwater impact``)."""

from headwater.lineage.columns import ColumnEdge, column_lineage
from headwater.lineage.store import (
    LineageEdge,
    LineageNode,
    downstream,
    edges,
    flatten_tree,
    known_columns,
    record_edges,
    resolve_column,
    upstream,
)

__all__ = [
    "ColumnEdge",
    "LineageEdge",
    "LineageNode",
    "column_lineage",
    "downstream",
    "edges",
    "flatten_tree",
    "known_columns",
    "record_edges",
    "resolve_column",
    "upstream",
]
