"""`headwater metrics serve|show`: Prometheus metrics of runs and connections."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from headwater.cli._state import console, open_workspace

app = typer.Typer(
    help="Prometheus metrics: runs by status, step durations, rows, bytes, retries, "
    "scheduler lag, connection health.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 9464,
    addr: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 to accept other hosts).")
    ] = "127.0.0.1",
) -> None:
    """Serve /metrics over HTTP until interrupted; every scrape reads newly stored events."""
    from headwater.monitoring.metrics import serve as start

    with open_workspace() as ws:
        server, thread = start(ws.store, port, addr)
        console.print(
            f"serving metrics of {ws.root} on http://{addr}:{server.server_port}/metrics "
            "(Ctrl-C to stop)"
        )
        try:
            while thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()


@app.command("show")
def show() -> None:
    """Print the metrics in Prometheus text format."""
    from headwater.monitoring.metrics import metrics_text

    with open_workspace() as ws:
        typer.echo(metrics_text(ws.store).decode(), nl=False)
