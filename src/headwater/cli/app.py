"""Root of the CLI: global options, command groups and error presentation.

A user mistake prints a short located message and exits non-zero; tracebacks
appear only with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from headwater import __version__
from headwater.cli import (
    alerts,
    backfill,
    checkpoints,
    connections,
    datasets,
    lineage,
    metrics,
    pipelines,
    profile,
    quality,
    quarantine,
    query,
    runs,
)
from headwater.cli import scheduler as scheduler_cli
from headwater.cli import subscriptions as subscriptions_cli
from headwater.cli._state import err_console, state
from headwater.errors import HeadwaterError

app = typer.Typer(
    name="headwater",
    help="Headwater: connectors, pipelines, managed datasets, quality and lineage in one tool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"headwater {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="HEADWATER_WORKSPACE",
            help="Workspace directory (default: the nearest one with headwater.yaml).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state.workspace = workspace
    state.debug = debug


pipelines.register(app)
backfill.register(app)
query.register(app)
quarantine.register(app)
lineage.register(app)
profile.register(app)
quality.register(app)
app.add_typer(datasets.app, name="datasets")
app.add_typer(runs.app, name="runs")
app.add_typer(connections.app, name="connections")
app.add_typer(checkpoints.app, name="checkpoints")
scheduler_cli.register(app)
app.add_typer(subscriptions_cli.app, name="subscriptions")
app.add_typer(alerts.app, name="alerts")
app.add_typer(metrics.app, name="metrics")


def _print_error(exc: HeadwaterError) -> None:
    err_console.print(
        f"[bold red]error:[/] {escape(exc.location + ': ' if exc.location else '')}"
        f"{escape(exc.message)}"
    )
    errors = exc.details.get("errors")
    if isinstance(errors, list) and len(errors) > 1:
        for item in errors[1:]:
            if isinstance(item, dict) and str(item.get("message", "")) not in exc.message:
                err_console.print(
                    f"[bold red]error:[/] {escape(str(item.get('location', '')))}: "
                    f"{escape(str(item.get('message', '')))}"
                )
    if exc.hint:
        err_console.print(f"  [cyan]hint:[/] {escape(exc.hint)}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    if "--debug" in (argv if argv is not None else sys.argv[1:]):
        state.debug = True
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="headwater")
    except HeadwaterError as exc:
        if state.debug:
            traceback.print_exc()
        _print_error(exc)
        return 1
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # also Rust panics from native libraries
        if state.debug:
            traceback.print_exc()
        else:
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                "  rerun with --debug for the traceback, and please report it."
            )
        return 70
    return rv if isinstance(rv, int) else 0


def entrypoint() -> None:
    from headwater._startup import defer_collection

    defer_collection()  # see headwater._startup: no GC passes over start-up's imports
    sys.exit(main())
