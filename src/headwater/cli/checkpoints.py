"""`headwater checkpoints list|reset`: where incremental extracts will read from next."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.cli.display import fmt_int

app = typer.Typer(
    help="Inspect or reset the cursors of incremental extracts.", no_args_is_help=True
)


@app.command("list")
def list_(
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
) -> None:
    """Every saved cursor: pipeline, step, cursor column, value, rows and chunks committed."""
    with open_workspace() as ws:
        table = Table()
        for col in ("pipeline", "step", "cursor", "value", "rows", "chunks", "pending", "updated"):
            table.add_column(col)
        for row in ws.store.list_checkpoints(pipeline):
            state = dict(row.state or {})
            committed = state.get("committed") or {}
            value = committed.get("value")
            if isinstance(value, dict):
                value = next(iter(value.values()), None)
            table.add_row(
                escape(row.pipeline),
                escape(row.step),
                escape(str(committed.get("cursor", ""))),
                escape("" if value is None else str(value)),
                fmt_int(int(committed.get("rows") or 0)),
                str(committed.get("seq", "")),
                "yes" if state.get("pending") else "",
                row.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        console.print(table if table.rows else "no checkpoints yet")


@app.command("reset")
def reset(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    step: Annotated[str, typer.Argument(help="Step name (a replicate step resets every table).")],
) -> None:
    """Forget a step's cursor: its next run reads every row again (use mode merge, or
    overwrite the dataset first, so nothing is doubled)."""
    from headwater.errors import HeadwaterError

    with open_workspace() as ws:
        removed = ws.store.delete_checkpoints(pipeline, step)
        if not removed:
            known = sorted({f"{r.pipeline} {r.step}" for r in ws.store.list_checkpoints()})
            raise HeadwaterError(
                f"No checkpoint for step `{step}` of pipeline `{pipeline}`.",
                hint="Saved checkpoints: " + (", ".join(known) or "(none)"),
            )
        console.print(f"reset {removed} checkpoint(s) of {escape(pipeline)} / {escape(step)}")
