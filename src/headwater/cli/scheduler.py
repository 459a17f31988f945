"""`headwater scheduler` (the daemon) and `headwater schedules` (what it will do)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, err_console, open_workspace

schedules_app = typer.Typer(
    help="List schedules and triggers with their next fire times; queue a run by hand.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)
    app.add_typer(schedules_app, name="schedules")


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def _log_to_stderr(verbose: bool) -> None:
    logger = logging.getLogger("headwater.scheduler")
    if any(getattr(h, "_headwater", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
    handler._headwater = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def scheduler(
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Fire what is due, run the queue (and what it triggers), then exit."
        ),
    ] = False,
    lease_seconds: Annotated[
        float,
        typer.Option(
            help="Leader lease: a standby scheduler takes over this long after the "
            "leader stopped renewing it.",
            min=1,
        ),
    ] = 30.0,
    poll_seconds: Annotated[
        float, typer.Option(help="Seconds between passes (ticks are checked each pass).", min=0.1)
    ] = 1.0,
    grace_seconds: Annotated[
        float | None,
        typer.Option(
            help="A tick older than this when first seen counts as missed and follows the "
            "pipeline's `catchup` (default: max(60, 3 x poll)). With --once from an "
            "external cron, set it to at least the interval between calls.",
            min=0,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Runs executed at the same time.", min=1)] = 4,
    holder: Annotated[
        str | None,
        typer.Option("--id", help="Name of this scheduler in the lease (default host:pid:random)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run schedules and dataset triggers of the workspace's pipelines/ folder.

    Several schedulers may run against one PostgreSQL metadata store: one holds the
    lease and works, the others stand by and take over when it stops; a tick is never
    fired twice. Stop with Ctrl-C or SIGTERM: running runs finish, the lease is released.
    """
    from headwater.pipelines.scheduling.scheduler import Scheduler

    _log_to_stderr(verbose)
    with open_workspace() as ws:
        sched = Scheduler(
            ws,
            holder=holder,
            lease_seconds=lease_seconds,
            poll_seconds=poll_seconds,
            grace_seconds=grace_seconds,
            max_workers=workers,
        )
        if once:
            passes = sched.run_once()
            fired = sum(len(p.fired) for p in passes)
            started = sum(len(p.started) for p in passes)
            err_console.print(f"scheduler --once: {fired} tick(s) fired, {started} run(s) done")
            return
        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            logging.getLogger("headwater.scheduler").info(
                "%s received: finishing running runs", signal.Signals(signum).name
            )
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop)
        sched.run_forever(stop)


@schedules_app.callback()
def schedules(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Next fire times to show per pipeline.", min=1)] = 3,
) -> None:
    """Pipelines with a schedule or a trigger, their next fire times and the active scheduler."""
    if ctx.invoked_subcommand is not None:
        return
    from headwater.pipelines.scheduling.cron import next_ticks
    from headwater.pipelines.scheduling.queue import SchedulerStore
    from headwater.pipelines.scheduling.scheduler import _zone
    from headwater.pipelines.scheduling.triggers import (
        check_trigger_cycles,
        load_workspace_pipelines,
    )

    with open_workspace() as ws:
        pipelines = load_workspace_pipelines(ws.root)
        for path, exc in pipelines.errors.items():
            err_console.print(f"[yellow]skipped[/] {escape(path.name)}: {escape(exc.message)}")
        check_trigger_cycles(pipelines)
        now = datetime.now(UTC)
        table = Table()
        for col in ("pipeline", "schedule", "time zone", "catchup", "max runs", "next", "trigger"):
            table.add_column(col)
        for name, spec in sorted(pipelines.specs.items()):
            s, t = spec.schedule, spec.trigger
            if s is None and t is None:
                continue
            nxt = ""
            if s is not None:
                zone = _zone(s.timezone)
                nxt = "\n".join(
                    tick.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
                    for tick in next_ticks(s.cron, s.timezone, now, count)
                )
            table.add_row(
                escape(name),
                escape(s.cron) if s else "",
                s.timezone if s else "",
                s.catchup if s else "",
                str(s.max_concurrent_runs) if s else "1",
                nxt,
                escape(", ".join(t.datasets)) if t else "",
            )
        console.print(table if table.rows else "no pipeline has a schedule or a trigger")
        lease = SchedulerStore(ws.store).lease()
        expires = ws.store.as_utc(lease.expires_at) if lease is not None else None
        if lease is not None and expires is not None and expires > now:
            console.print(f"active scheduler: {escape(lease.holder)}")
        else:
            console.print("no scheduler is running (start one with `headwater scheduler`)")


@schedules_app.command("queue")
def queue_run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (from pipelines/).")],
) -> None:
    """Queue a run of PIPELINE for the scheduler (reason: manual)."""
    from headwater.errors import ConfigError, choices_hint
    from headwater.pipelines.scheduling.queue import SchedulerStore
    from headwater.pipelines.scheduling.triggers import load_workspace_pipelines

    with open_workspace() as ws:
        pipelines = load_workspace_pipelines(ws.root)
        if pipeline not in pipelines.specs:
            raise ConfigError(
                f"no pipeline named `{pipeline}` in {ws.root / 'pipelines'}",
                hint=choices_hint(pipeline, pipelines.specs, "pipelines"),
            )
        request = SchedulerStore(ws.store).enqueue(
            pipeline, reason="manual", pipeline_file=str(pipelines.files[pipeline])
        )
        console.print(f"queued {escape(pipeline)} (request {request})")


@schedules_app.command("requests")
def requests(
    status: Annotated[
        str | None, typer.Option(help="Only queued, running, succeeded or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """The run queue: why each run was asked for, its status and run id."""
    from headwater.pipelines.scheduling.queue import SchedulerStore

    with open_workspace() as ws:
        rows = SchedulerStore(ws.store).requests(status=status, limit=100_000)[-limit:]
        table = Table()
        for col in ("id", "pipeline", "reason", "status", "scheduled for", "run", "detail"):
            table.add_column(col)
        for row in reversed(rows):
            when = ws.store.as_utc(row.scheduled_for)
            detail = row.error or ""
            if row.reason == "dataset":
                datasets = row.details.get("datasets") or {}
                detail = ", ".join(f"{d} v{v}" for d, v in datasets.items()) + (
                    f" (run {str(row.details.get('run_id', ''))[:12]})"
                )
            table.add_row(
                str(row.id),
                escape(row.pipeline),
                row.reason,
                row.status,
                when.strftime("%Y-%m-%d %H:%M:%S") if when else "",
                (row.run_id or "")[:12],
                escape(detail),
            )
        console.print(table if table.rows else "the run queue is empty")
