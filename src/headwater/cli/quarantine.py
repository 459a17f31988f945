"""`headwater quarantine [list|replay]`: what was rejected, and sending it back after a fix."""

from __future__ import annotations

from typing import Annotated

import typer

from headwater.cli._state import console, open_workspace
from headwater.cli.query import render_table

app = typer.Typer(
    help="Rejected rows: counts by dataset and rule (no subcommand), list them, replay them.",
    invoke_without_command=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="quarantine")


@app.callback()
def summary(ctx: typer.Context) -> None:
    """Without a subcommand: quarantined rows counted by dataset and rule."""
    if ctx.invoked_subcommand is not None:
        return
    with open_workspace() as ws:
        table = ws.quarantine(None)
    if table.num_rows == 0:
        console.print("nothing quarantined")
        return
    console.print(render_table(table, limit=1000))


@app.command("list")
def list_(
    dataset: Annotated[str, typer.Argument(help="The dataset (zone.name) whose rows to show.")],
    rule: Annotated[
        str | None, typer.Option("--rule", help="Only rows that failed this check (or `parse`).")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only rows of this run id.")] = None,
    limit: Annotated[int, typer.Option(help="Rows shown.")] = 50,
) -> None:
    """The quarantined rows of one dataset: run, step, rule, reason and the row itself."""
    from headwater.pipelines.replay import list_quarantine

    with open_workspace() as ws:
        table = list_quarantine(ws, dataset, rule=rule, run_id=run)
    if table.num_rows == 0:
        console.print(f"nothing quarantined for {dataset}")
        return
    cols = [
        c
        for c in ("run_id", "step", "rule", "source_file", "source_line", "error", "raw_record")
        if c in table.column_names
    ]
    console.print(f"{table.num_rows} rows quarantined for {dataset}")
    console.print(render_table(table.select(cols), limit=limit))


@app.command("replay")
def replay(
    dataset: Annotated[str, typer.Argument(help="The dataset (zone.name) whose rows to replay.")],
    run: Annotated[str | None, typer.Option("--run", help="Only rows of this run id.")] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline", help="The pipeline file whose check step to use (default: the run's)."
        ),
    ] = None,
) -> None:
    """Rerun quarantined rows through their check step as it is now (after a fix).

    Passing rows go back to the dataset and leave the quarantine; failing rows stay.

    Safe to run twice: nothing is doubled.
    """
    from headwater.pipelines.replay import replay_quarantine

    with open_workspace() as ws:
        result = replay_quarantine(ws, dataset, run_id=run, pipeline=pipeline)
    console.print(
        f"{dataset}: {result.rows_in} rows replayed, {result.rows_out} passed and moved back, "
        f"{result.rows_quarantined} still quarantined"
        + (
            f"; {result.rows_skipped} not replayable (parse errors, other runs)"
            if result.rows_skipped
            else ""
        )
    )
