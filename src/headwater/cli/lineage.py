"""`headwater lineage DATASET.COLUMN` and `headwater impact DATASET.COLUMN`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.tree import Tree

from headwater.cli._state import console, open_workspace

if TYPE_CHECKING:
    from headwater.lineage import LineageNode
    from headwater.workspace import Workspace

_DEPTH = typer.Option("--depth", "-d", min=1, help="Stop after this many steps (default: all).")


def _resolve(ws: Workspace, target: str) -> tuple[str, str]:
    from headwater.errors import DatasetNotFoundError
    from headwater.lineage import resolve_column

    def schema_of(name: str) -> list[str] | None:
        try:
            return list(ws.lake.schema(name).names)
        except DatasetNotFoundError:
            return None

    return resolve_column(ws.store, target, datasets=ws.lake.list(), schema_of=schema_of)


def _label(node: LineageNode, up: bool) -> str:
    text = f"[bold]{escape(node.name)}[/]"
    if node.via is not None:
        e = node.via
        text += (
            f"  [dim]{'from' if up else 'by'} {e.kind} `{escape(e.step)}` of pipeline "
            f"`{escape(e.pipeline)}` ({e.transformation})[/]"
        )
    if node.truncated:
        text += "  [dim]…[/]"
    return text


def _tree(node: LineageNode, up: bool) -> Tree:
    tree = Tree(_label(node, up))
    pending = [(node, tree)]
    while pending:
        current, branch = pending.pop()
        for child in current.children:
            pending.append((child, branch.add(_label(child, up))))
    return tree


def lineage(
    target: Annotated[str, typer.Argument(help="zone.name.column, e.g. staging.orders.amount")],
    depth: Annotated[int | None, _DEPTH] = None,
) -> None:
    """The upstream columns DATASET.COLUMN is computed from, and the steps computing it."""
    from headwater.lineage import upstream

    with open_workspace() as ws:
        dataset, column = _resolve(ws, target)
        root = upstream(ws.store, dataset, column, depth=depth)
    console.print(_tree(root, up=True))
    if not root.children:
        console.print("[dim]no upstream recorded: a source column (extract) or not yet run[/]")


def impact(
    target: Annotated[str, typer.Argument(help="zone.name.column, e.g. raw.orders.amount")],
    depth: Annotated[int | None, _DEPTH] = None,
) -> None:
    """What changing DATASET.COLUMN affects: downstream columns, datasets and pipelines."""
    from headwater.lineage import downstream, flatten_tree

    with open_workspace() as ws:
        dataset, column = _resolve(ws, target)
        root = downstream(ws.store, dataset, column, depth=depth)
    console.print(_tree(root, up=False))
    below = flatten_tree(root)
    if not below:
        console.print("[dim]nothing downstream recorded[/]")
        return
    datasets = sorted({n.dataset for n in below})
    pipelines = sorted({n.via.pipeline for n in below if n.via is not None})
    console.print(f"columns: {len({n.name for n in below})}")
    console.print("datasets: " + ", ".join(escape(d) for d in datasets))
    console.print("pipelines: " + ", ".join(escape(p) for p in pipelines))


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
    app.command("impact")(impact)
