"""`headwater runs list|show|logs`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from headwater.cli._state import console, open_workspace
from headwater.cli.display import _STYLE, fmt_bytes, fmt_int

app = typer.Typer(help="Inspect pipeline runs.", no_args_is_help=True)

_FINAL_GRACE_S = 5.0  # how long `--follow` waits for the last events of a finished run


def _duration(start: object, end: object) -> str:
    from headwater.metadata.store import MetadataStore

    s, e = MetadataStore.as_utc(start), MetadataStore.as_utc(end)  # type: ignore[arg-type]
    if s is None or e is None:
        return ""
    return f"{(e - s).total_seconds():.2f}s"


@app.command("list")
def list_(
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
) -> None:
    """Recent runs, newest first."""
    with open_workspace() as ws:
        table = Table()
        for col in (
            "run",
            "pipeline",
            "status",
            "started (UTC)",
            "time",
            "rows out",
            "quarantined",
        ):
            table.add_column(col)
        for run in ws.runs(pipeline=pipeline, limit=limit):
            table.add_row(
                run.id[:12],
                run.pipeline,
                Text(run.status, style=_STYLE.get(run.status, "")),
                run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                _duration(run.started_at, run.ended_at),
                fmt_int(sum(s.rows_out for s in run.steps)),
                fmt_int(sum(s.rows_quarantined for s in run.steps)),
            )
        console.print(table if table.rows else "no runs yet")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    spec: Annotated[
        bool, typer.Option("--spec", help="Also print the pipeline text the run ran.")
    ] = False,
) -> None:
    """One run with every step: status, rows in/out/quarantined, bytes, error; the pipeline
    version (hash of its text), parameters and interval."""
    from headwater.metadata.versions import get_pipeline_version

    with open_workspace() as ws:
        run = ws.get_run(run_id)
        console.print(
            f"[bold]run {run.id}[/]  pipeline {escape(run.pipeline)}  "
            f"[{_STYLE.get(run.status, '')}]{run.status}[/]  trigger {run.trigger}"
        )
        if run.pipeline_file:
            console.print(f"  file: {escape(run.pipeline_file)}")
        params = run.params or {}
        digest = params.get("spec_hash")
        if isinstance(digest, str):
            console.print(f"  version: {digest}")
        if params.get("params"):
            shown = ", ".join(f"{k}={v}" for k, v in params["params"].items())
            console.print(f"  params: {escape(shown)}")
        if isinstance(params.get("interval"), dict):
            iv = params["interval"]
            console.print(f"  interval: {iv.get('start')} .. {iv.get('end')} ({iv.get('every')})")
        if params.get("resumed_from"):
            console.print(f"  resumed from: {params['resumed_from']}")
        table = Table()
        for col in (
            "step",
            "kind",
            "status",
            "rows in",
            "rows out",
            "quarantined",
            "bytes",
            "time",
        ):
            table.add_column(col)
        for s in run.steps:
            table.add_row(
                s.step,
                s.kind,
                Text(s.status, style=_STYLE.get(s.status, "")),
                fmt_int(s.rows_in),
                fmt_int(s.rows_out),
                fmt_int(s.rows_quarantined),
                fmt_bytes(s.bytes),
                _duration(s.started_at, s.ended_at),
            )
        console.print(table)
        for s in run.steps:
            if s.error:
                console.print(f"[red]{escape(s.step)}: {escape(s.error)}[/]")
            error = (s.details or {}).get("error")
            if s.status == "failed" and isinstance(error, dict) and error.get("traceback"):
                console.print(f"  traceback of your code in `{escape(s.step)}`:")
                console.out(str(error["traceback"]).rstrip(), highlight=False)
        if spec and isinstance(digest, str):
            version = get_pipeline_version(ws.store, digest)
            if version is not None:
                console.print(f"\n[bold]pipeline text[/] ({digest[:12]}):")
                console.out(version.text, highlight=False)
        for r in ws.store.check_results(run_id=run.id):
            if not r.passed:
                console.print(
                    f"[yellow]{escape(r.step or '')}: {r.severity} check `{escape(r.check)}` "
                    f"on {escape(r.dataset)}: {escape(r.message or '')}[/]"
                )


@app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until the run ends.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 0.5,
) -> None:
    """The run's events as JSON lines (queued, started, progress, retried, finished)."""
    import json
    import time

    from headwater.monitoring.history import run_events

    with open_workspace() as ws:
        run = ws.get_run(run_id)
        seq, finished = 0, False
        final_since: float | None = None
        while True:
            for record in run_events(ws.store, run.id, after_seq=seq):
                typer.echo(json.dumps(record.to_json(), default=str))
                seq = record.seq
                finished = finished or record.type == "run_finished"
            if not follow or finished:
                break
            current = ws.store.get_run(run.id)
            if current is not None and current.status != "running":
                # final: the event writer flushes in batches after the status changed, so
                # wait for its `run_finished` for a while (a killed run never writes one)
                if final_since is None:
                    final_since = time.monotonic()
                elif time.monotonic() - final_since > _FINAL_GRACE_S:
                    break
            time.sleep(interval)
