"""`headwater connections add|list|show|test|check|remove`. Secrets are never printed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.errors import ConfigError

app = typer.Typer(help="Manage named connections.", no_args_is_help=True)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE for {what}, got `{item}`", field=what)
        out[key.strip()] = value
    return out


def _parse_value(value: str) -> Any:
    try:
        return yaml.safe_load(value) if value else value
    except yaml.YAMLError:
        return value


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    type_: Annotated[str, typer.Option("--type", "-t", help="Connector type, e.g. files.")],
    setting: Annotated[
        list[str] | None, typer.Option("--set", help="A setting KEY=VALUE (repeatable).")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="A secret FIELD=VALUE, stored encrypted (or ${ENV_VAR})."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
) -> None:
    """Add (or replace) a connection stored in metadata."""
    config = {k: _parse_value(v) for k, v in _pairs(setting, "--set").items()}
    with open_workspace() as ws:
        info = ws.add_connection(
            name, type_, config, secrets=_pairs(secret, "--secret"), description=description
        )
        console.print(f"[green]connection `{escape(info.name)}` saved[/] ({escape(info.type)})")


@app.command("list")
def list_() -> None:
    """Every connection (headwater.yaml and metadata), secrets hidden."""
    with open_workspace() as ws:
        table = Table()
        for col in ("name", "type", "from", "description"):
            table.add_column(col)
        for info in ws.connections.list():
            table.add_row(info.name, info.type, info.origin, escape(info.description or ""))
        console.print(table if table.rows else "no connections")
        from headwater.connectors.registry import available_connectors

        console.print(f"[dim]connector types: {', '.join(available_connectors())}[/]")


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Connection name.")]) -> None:
    """One connection's settings; secrets show as ****, <encrypted> or their ${ENV} reference."""
    with open_workspace() as ws:
        info = ws.connections.info(name)
        console.print(f"[bold]{escape(info.name)}[/] ({escape(info.type)}) from {info.origin}")
        for key, value in sorted(info.config.items()):
            console.print(f"  {escape(key)}: {escape(str(value))}")


@app.command("test")
def test(name: Annotated[str, typer.Argument(help="Connection name.")]) -> None:
    """Run the connector's check (reachability, credentials, paths)."""
    with open_workspace() as ws:
        ws.test_connection(name)
        console.print(f"[green]connection `{escape(name)}` ok[/]")


@app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    history: Annotated[int, typer.Option(help="How many recent checks to show.")] = 10,
) -> None:
    """Check a connection, record status and latency, and show its recent checks."""
    from headwater.cli.display import _STYLE
    from headwater.monitoring.health import check_connection, check_history

    with open_workspace() as ws:
        result = check_connection(ws, name)
        rows = check_history(ws, name, limit=history)
    style = "green" if result.ok else "bold red"
    console.print(
        f"[{style}]connection `{escape(name)}` {result.status}[/] in {result.latency_ms:.1f} ms"
        + (f": {escape(result.error)}" if result.error else "")
    )
    table = Table(title="recent checks", title_justify="left")
    for col in ("checked at (UTC)", "status", "latency"):
        table.add_column(col, justify="right" if col == "latency" else "left")
    for row in rows:
        table.add_row(
            row.checked_at.strftime("%Y-%m-%d %H:%M:%S") if row.checked_at else "",
            f"[{_STYLE.get('succeeded' if row.ok else 'failed', '')}]{row.status}[/]",
            f"{row.latency_ms:.1f} ms",
        )
    console.print(table)
    if not result.ok:
        raise typer.Exit(1)


@app.command("discover")
def discover(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    stream: Annotated[
        str | None, typer.Option("--stream", "-s", help="Show only this stream's columns.")
    ] = None,
) -> None:
    """List the streams a connection offers (tables, files) with columns, types and keys."""
    with open_workspace() as ws:
        streams = ws.discover(name)
    if stream is not None:
        streams = [s for s in streams if s.name == stream]
        if not streams:
            raise ConfigError(f"connection `{name}` has no stream `{stream}`", field="--stream")
    if not streams:
        console.print(f"connection `{escape(name)}` offers no streams")
        return
    for s in streams:
        keys = f"  key: {', '.join(s.primary_key)}" if s.primary_key else ""
        console.print(f"[bold]{escape(s.name)}[/]{escape(keys)}")
        if s.schema is None:
            console.print("  (schema known only when read)")
            continue
        table = Table(show_header=True, box=None, padding=(0, 2))
        table.add_column("column")
        table.add_column("arrow type")
        table.add_column("nullable")
        for field in s.schema:
            table.add_row(escape(field.name), str(field.type), "yes" if field.nullable else "no")
        console.print(table)


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Connection name.")]) -> None:
    """Remove a connection stored in metadata."""
    with open_workspace() as ws:
        ws.connections.remove(name)
        console.print(f"connection `{escape(name)}` removed")
