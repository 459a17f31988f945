"""`headwater quarantine`: what was rejected, by dataset and rule."""

from __future__ import annotations

from typing import Annotated

import typer

from headwater.cli._state import console, open_workspace
from headwater.cli.query import render_table


def register(app: typer.Typer) -> None:
    app.command("quarantine")(quarantine)


def quarantine(
    dataset: Annotated[
        str | None,
        typer.Argument(help="Show the quarantined rows of this dataset (zone.name)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown.")] = 50,
) -> None:
    """Rejected rows: counts by dataset and rule, or the rows of one dataset."""
    with open_workspace() as ws:
        table = ws.quarantine(dataset)
    if table.num_rows == 0:
        console.print("nothing quarantined" + (f" for {dataset}" if dataset else ""))
        return
    if dataset:
        cols = [
            c
            for c in ("run_id", "step", "rule", "source_file", "source_line", "error", "raw_record")
            if c in table.column_names
        ]
        table = table.select(cols)
    console.print(render_table(table, limit=limit))
