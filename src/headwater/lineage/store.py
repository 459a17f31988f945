"""Column lineage in metadata: record a step's edges, walk upstream and downstream.

Each successful transform or map step replaces the edges it recorded before, so the
graph follows the pipelines as they are now; every edge keeps the run that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, or_, select

from headwater.errors import DatasetNotFoundError, HeadwaterError, choices_hint
from headwater.lineage.columns import ColumnEdge
from headwater.metadata.models import ColumnLineageRow
from headwater.metadata.store import MetadataStore

__all__ = [
    "LineageEdge",
    "LineageNode",
    "downstream",
    "edges",
    "flatten_tree",
    "known_columns",
    "record_edges",
    "resolve_column",
    "upstream",
]


@dataclass(frozen=True, order=True)
class LineageEdge:
    """A stored edge: ``src`` flows into ``dst`` through ``pipeline``/``step``."""

    src_dataset: str
    src_column: str
    dst_dataset: str
    dst_column: str
    pipeline: str
    step: str
    kind: str
    transformation: str
    run_id: str

    @property
    def src(self) -> str:
        return f"{self.src_dataset}.{self.src_column}"

    @property
    def dst(self) -> str:
        return f"{self.dst_dataset}.{self.dst_column}"


@dataclass
class LineageNode:
    """A column in a lineage tree; ``via`` is the edge that led here from the parent."""

    dataset: str
    column: str
    via: LineageEdge | None = None
    children: list[LineageNode] = field(default_factory=list)
    truncated: bool = False  # the walk stopped at --depth with more beyond

    @property
    def name(self) -> str:
        return f"{self.dataset}.{self.column}"


def record_edges(
    store: MetadataStore,
    *,
    run_id: str,
    pipeline: str,
    step: str,
    kind: str,
    column_edges: Iterable[ColumnEdge],
) -> int:
    """Replace the edges of ``pipeline``/``step`` by ``column_edges``; returns how many."""
    rows = [
        ColumnLineageRow(
            run_id=run_id,
            pipeline=pipeline,
            step=step,
            kind=kind,
            src_dataset=e.src_dataset,
            src_column=e.src_column,
            dst_dataset=e.dst_dataset,
            dst_column=e.dst_column,
            transformation=e.transformation,
        )
        for e in column_edges
    ]
    with store.session() as s:
        s.execute(
            delete(ColumnLineageRow).where(
                ColumnLineageRow.pipeline == pipeline, ColumnLineageRow.step == step
            )
        )
        s.add_all(rows)
    return len(rows)


def _edge(row: ColumnLineageRow) -> LineageEdge:
    return LineageEdge(
        row.src_dataset,
        row.src_column,
        row.dst_dataset,
        row.dst_column,
        row.pipeline,
        row.step,
        row.kind,
        row.transformation,
        row.run_id,
    )


def edges(
    store: MetadataStore, *, dataset: str | None = None, pipeline: str | None = None
) -> list[LineageEdge]:
    """Stored edges touching ``dataset`` (either side) and/or of ``pipeline``, sorted."""
    query = select(ColumnLineageRow)
    if dataset is not None:
        query = query.where(
            or_(ColumnLineageRow.src_dataset == dataset, ColumnLineageRow.dst_dataset == dataset)
        )
    if pipeline is not None:
        query = query.where(ColumnLineageRow.pipeline == pipeline)
    with store.session() as s:
        return sorted(_edge(r) for r in s.scalars(query))


def _neighbours(store: MetadataStore, dataset: str, column: str, up: bool) -> list[LineageEdge]:
    c = ColumnLineageRow
    where = (
        and_(c.dst_dataset == dataset, c.dst_column == column)
        if up
        else and_(c.src_dataset == dataset, c.src_column == column)
    )
    with store.session() as s:
        return sorted(_edge(r) for r in s.scalars(select(c).where(where)))


def _walk(
    store: MetadataStore, dataset: str, column: str, depth: int | None, up: bool
) -> LineageNode:
    root = LineageNode(dataset, column)
    stack: list[tuple[LineageNode, int, frozenset[str]]] = [(root, 0, frozenset({root.name}))]
    while stack:
        node, level, seen = stack.pop()
        found = _neighbours(store, node.dataset, node.column, up)
        if depth is not None and level >= depth:
            node.truncated = bool(found)
            continue
        for e in found:
            ds, col = (e.src_dataset, e.src_column) if up else (e.dst_dataset, e.dst_column)
            child = LineageNode(ds, col, via=e)
            node.children.append(child)
            if child.name not in seen:  # a step reading and writing one dataset
                stack.append((child, level + 1, seen | {child.name}))
    return root


def upstream(
    store: MetadataStore, dataset: str, column: str, *, depth: int | None = None
) -> LineageNode:
    """The columns ``dataset.column`` is computed from, recursively (``depth`` levels)."""
    return _walk(store, dataset, column, depth, up=True)


def downstream(
    store: MetadataStore, dataset: str, column: str, *, depth: int | None = None
) -> LineageNode:
    """The columns computed from ``dataset.column``, recursively (``depth`` levels)."""
    return _walk(store, dataset, column, depth, up=False)


def known_columns(store: MetadataStore) -> list[str]:
    """Every ``dataset.column`` some edge names, sorted."""
    c = ColumnLineageRow
    with store.session() as s:
        rows = s.execute(select(c.src_dataset, c.src_column, c.dst_dataset, c.dst_column)).all()
    names = {f"{a}.{b}" for a, b, _, _ in rows} | {f"{x}.{y}" for _, _, x, y in rows}
    return sorted(names)


def resolve_column(
    store: MetadataStore,
    target: str,
    *,
    datasets: Iterable[str] = (),
    schema_of: Callable[[str], list[str] | None] = lambda _: None,
) -> tuple[str, str]:
    """Split ``zone.name.column`` and check that the dataset and the column are known.

    Known means: in the lake (``datasets``; ``schema_of`` gives its columns) or named by
    a lineage edge. Raises :class:`DatasetNotFoundError` or :class:`HeadwaterError` with
    the closest matches.
    """
    parts = target.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise HeadwaterError(
            f"`{target}` is not DATASET.COLUMN",
            hint="Write zone.name.column, e.g. `staging.orders.amount`.",
        )
    dataset, column = f"{parts[0]}.{parts[1]}", parts[2]
    traced: dict[str, set[str]] = {}
    for name in known_columns(store):
        zone, table, col = name.split(".", 2)
        traced.setdefault(f"{zone}.{table}", set()).add(col)
    known = set(datasets) | set(traced)
    if dataset not in known:
        raise DatasetNotFoundError(
            f"no dataset `{dataset}` in the lake or in recorded lineage",
            dataset=dataset,
            hint=choices_hint(dataset, known, "datasets"),
        )
    columns = set(traced.get(dataset, set())) | set(schema_of(dataset) or [])
    if column not in columns:
        raise HeadwaterError(
            f"dataset `{dataset}` has no column `{column}`",
            dataset=dataset,
            column=column,
            hint=choices_hint(column, columns, "columns"),
        )
    return dataset, column


def flatten_tree(node: LineageNode) -> list[LineageNode]:
    """Every node of a tree below ``node``, depth first."""
    out: list[LineageNode] = []
    for child in node.children:
        out.append(child)
        out += flatten_tree(child)
    return out
