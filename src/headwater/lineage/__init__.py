"""Column lineage: traced with sqlglot from every transform and map step, stored in
metadata, walked upstream (``headwater lineage``) and downstream (``headwater impact``)."""

from headwater.lineage.columns import ColumnEdge, column_lineage
from headwater.lineage.store import (
    LineageEdge,
    LineageNode,
    downstream,
    edges,
    known_columns,
    record_edges,
    upstream,
)

__all__ = [
    "ColumnEdge",
    "LineageEdge",
    "LineageNode",
    "column_lineage",
    "downstream",
    "edges",
    "known_columns",
    "record_edges",
    "upstream",
]
