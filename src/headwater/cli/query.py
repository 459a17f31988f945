"""`headwater query`: DuckDB SQL over managed datasets."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from headwater.cli._state import console, open_workspace
from headwater.errors import ConfigError, QueryError

if TYPE_CHECKING:
    import pyarrow as pa

Format = Literal["table", "csv", "json", "parquet"]


def register(app: typer.Typer) -> None:
    app.command("query")(query)


def render_table(table: pa.Table, *, limit: int = 100) -> Table:
    import pyarrow as pa

    out = Table(show_lines=False)
    for field in table.schema:
        numeric = (
            pa.types.is_integer(field.type)
            or pa.types.is_floating(field.type)
            or (pa.types.is_decimal(field.type))
        )
        out.add_column(field.name, overflow="fold", justify="right" if numeric else "left")
    for row in table.slice(0, limit).to_pylist():
        out.add_row(*[Text("" if v is None else str(v)) for v in row.values()])
    if table.num_rows > limit:
        out.caption = f"{limit} of {table.num_rows:,} rows shown"
    else:
        out.caption = f"{table.num_rows:,} rows"
    return out


def _encode(result: pa.Table, fmt: str, output: Path | None) -> bytes | None:
    import pyarrow as pa

    """The result as bytes in ``fmt``; Parquet is written to ``output`` directly (None)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert output is not None
        try:
            pq.write_table(result, output)
        except OSError as exc:
            if isinstance(exc, pa.ArrowException):
                raise
            raise ConfigError(f"cannot write {output}: {exc}", field="--output") from None
        return None
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(result, buf)
        return buf.getvalue()
    import json

    rows = result.to_pylist()
    return "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows).encode()


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
    import pyarrow as pa

    try:
        data = _encode(result, fmt, output)
    except pa.ArrowException as exc:
        raise QueryError(
            f"cannot write the result as {fmt}: {exc}",
            hint="Cast nested or unusual columns to VARCHAR in the query, or use --format json.",
        ) from None
    if data is None:
        console.print(f"wrote {result.num_rows:,} rows to {output}")
        return
    if output:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}", field="--output") from None
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
