"""`headwater query`: DuckDB SQL over managed datasets."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Literal

import pyarrow as pa
import typer
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.errors import ConfigError

Format = Literal["table", "csv", "json", "parquet"]


def register(app: typer.Typer) -> None:
    app.command("query")(query)


def render_table(table: pa.Table, *, limit: int = 100) -> Table:
    out = Table(show_lines=False)
    for field in table.schema:
        numeric = (
            pa.types.is_integer(field.type)
            or pa.types.is_floating(field.type)
            or (pa.types.is_decimal(field.type))
        )
        out.add_column(field.name, overflow="fold", justify="right" if numeric else "left")
    for row in table.slice(0, limit).to_pylist():
        out.add_row(*["" if v is None else str(v) for v in row.values()])
    if table.num_rows > limit:
        out.caption = f"{limit} of {table.num_rows:,} rows shown"
    else:
        out.caption = f"{table.num_rows:,} rows"
    return out


def query(
    sql: Annotated[str, typer.Argument(help='SQL over datasets, e.g. "select * from raw.orders".')],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table | csv | json | parquet")
    ] = "table",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Read datasets as of a version number or an ISO timestamp."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file (required for parquet).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 100,
) -> None:
    """Query datasets with DuckDB SQL; datasets are tables named zone.name."""
    if fmt not in ("table", "csv", "json", "parquet"):
        raise ConfigError(
            f"unknown format `{fmt}`", field="--format", hint="Use table, csv, json or parquet."
        )
    if fmt == "parquet" and output is None:
        raise ConfigError("parquet output needs --output FILE", field="--output")
    with open_workspace() as ws:
        result = ws.query(sql, as_of=as_of)
    if fmt == "table":
        console.print(render_table(result, limit=limit))
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert output is not None
        pq.write_table(result, output)
        console.print(f"wrote {result.num_rows:,} rows to {output}")
        return
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(result, buf)
        data = buf.getvalue()
    else:
        import json

        data = "\n".join(json.dumps(r, default=str) for r in result.to_pylist()).encode() + b"\n"
    if output:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
