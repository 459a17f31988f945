"""`headwater datasets list|show|history`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.cli.display import fmt_int

app = typer.Typer(help="Inspect managed datasets.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Every managed dataset with its current version and row count."""
    with open_workspace() as ws:
        table = Table()
        for col in ("dataset", "version", "rows", "schema v", "updated"):
            table.add_column(
                col, justify="right" if col in ("version", "rows", "schema v") else "left"
            )
        for name in ws.datasets():
            info = ws.dataset_info(name)
            table.add_row(
                name,
                str(info.version),
                fmt_int(info.rows),
                str(info.schema_version),
                info.updated_at.strftime("%Y-%m-%d %H:%M:%S") if info.updated_at else "",
            )
        if not table.rows:
            console.print("no datasets yet: run a pipeline first")
            return
        console.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Dataset name, zone.name.")]) -> None:
    """Schema, versions, rows and location of one dataset."""
    with open_workspace() as ws:
        info = ws.dataset_info(name)
        console.print(f"[bold]{info.name}[/]  version {info.version}, {info.rows:,} rows")
        console.print(f"  location: {escape(info.location)}")
        if info.owner:
            console.print(f"  owner: {escape(info.owner)}")
        schema = Table(title="schema", title_justify="left")
        schema.add_column("column")
        schema.add_column("type")
        schema.add_column("nullable")
        for field in info.schema:
            schema.add_row(field.name, str(field.type), "yes" if field.nullable else "no")
        console.print(schema)
        versions = Table(title="schema versions", title_justify="left")
        for col in ("version", "change", "table version", "run", "when"):
            versions.add_column(col)
        for sv in ws.store.schema_versions(name):
            versions.add_row(
                str(sv.version),
                sv.change,
                "" if sv.table_version is None else str(sv.table_version),
                (sv.run_id or "")[:12],
                sv.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        console.print(versions)


@app.command("history")
def history(name: Annotated[str, typer.Argument(help="Dataset name, zone.name.")]) -> None:
    """Every committed version: time, operation, rows written, run id."""
    with open_workspace() as ws:
        table = Table(title=f"history of {name}", title_justify="left")
        for col in ("version", "time (UTC)", "operation", "rows", "run"):
            table.add_column(col, justify="right" if col in ("version", "rows") else "left")
        for entry in ws.history(name):
            table.add_row(
                str(entry.version),
                entry.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                entry.operation,
                fmt_int(entry.rows),
                (entry.run_id or "")[:12],
            )
        console.print(table)
