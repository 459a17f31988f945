"""Rich renderings: the live run display and the end-of-run summary."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from headwater.pipelines.events import (
    Event,
    RunResult,
    RunStarted,
    StepFinished,
    StepProgress,
    StepQueued,
    StepRetried,
    StepStarted,
)

__all__ = ["LiveRunDisplay", "fmt_bytes", "fmt_int", "summary_table"]

_STYLE = {
    "pending": "dim",
    "queued": "dim",
    "running": "yellow",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim red",
    "reused": "cyan",
}


def fmt_int(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def fmt_bytes(n: int | None) -> str:
    if not n:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@dataclass
class _StepView:
    kind: str
    status: str = "pending"
    rows: int = 0
    started: float | None = None
    ended: float | None = None
    attempt: int = 1
    note: str = ""


@dataclass
class LiveRunDisplay:
    """Consumes run events and renders one line per step with rows and rows/s."""

    console: Console
    steps: dict[str, _StepView] = field(default_factory=dict)
    pipeline: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live: Live | None = None

    def __enter__(self) -> LiveRunDisplay:
        self._live = Live(
            self, console=self.console, refresh_per_second=8, transient=not self.console.is_terminal
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def handle(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RunStarted):
                self.pipeline = event.pipeline
                for name, kind in event.steps:
                    self.steps[name] = _StepView(kind)
            elif isinstance(event, StepStarted):
                view = self.steps.setdefault(event.step, _StepView(event.kind))
                view.status, view.started, view.attempt = "running", time.monotonic(), event.attempt
            elif isinstance(event, StepQueued):
                self.steps.setdefault(event.step, _StepView(event.kind)).status = "queued"
            elif isinstance(event, StepRetried):
                view = self.steps.setdefault(event.step, _StepView(event.kind))
                view.status = "retrying"
                view.note = event.error.splitlines()[0][:80]
            elif isinstance(event, StepProgress):
                if event.step in self.steps:
                    self.steps[event.step].rows = event.rows
            elif isinstance(event, StepFinished):
                o = event.outcome
                view = self.steps.setdefault(o.name, _StepView(o.kind))
                view.status, view.ended = o.status, time.monotonic()
                view.rows = max(view.rows, o.rows_in)
                if o.status != "succeeded" and o.error:
                    view.note = o.error.splitlines()[0][:80]

    def __rich__(self) -> Table:
        table = Table(title=f"pipeline {self.pipeline}", title_justify="left", expand=False)
        table.add_column("step")
        table.add_column("kind", style="dim")
        table.add_column("status")
        table.add_column("rows", justify="right")
        table.add_column("rows/s", justify="right")
        table.add_column("time", justify="right")
        now = time.monotonic()
        with self._lock:
            for name, view in self.steps.items():
                elapsed = None
                if view.started is not None:
                    elapsed = (view.ended or now) - view.started
                rate = f"{view.rows / elapsed:,.0f}" if elapsed and view.rows else ""
                status = view.status + (f" (try {view.attempt})" if view.attempt > 1 else "")
                table.add_row(
                    name,
                    view.kind,
                    Text(status, style=_STYLE.get(view.status, "")),
                    fmt_int(view.rows) if view.rows else "",
                    rate,
                    f"{elapsed:.1f}s" if elapsed is not None else "",
                )
        return table


def summary_table(result: RunResult) -> Group:
    table = Table(title=f"run {result.run_id[:12]}  {result.pipeline}", title_justify="left")
    table.add_column("step")
    table.add_column("kind", style="dim")
    table.add_column("status")
    table.add_column("rows in", justify="right")
    table.add_column("rows out", justify="right")
    table.add_column("quarantined", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("time", justify="right")
    for o in result.steps:
        table.add_row(
            o.name,
            o.kind,
            Text(o.status, style=_STYLE.get(o.status, "")),
            fmt_int(o.rows_in) if o.status in ("succeeded", "reused") else "",
            fmt_int(o.rows_out) if o.status in ("succeeded", "reused") else "",
            Text(fmt_int(o.rows_quarantined), style="yellow" if o.rows_quarantined else "")
            if o.status == "succeeded"
            else "",
            fmt_bytes(o.bytes),
            f"{o.seconds:.2f}s" if o.seconds else "",
        )
    parts: list[Any] = [table]
    for o in result.steps:
        for check in o.details.get("checks", []) if isinstance(o.details, dict) else []:
            if not check.get("passed"):
                style = "red" if check.get("severity") == "error" else "yellow"
                parts.append(
                    Text(
                        f"  {o.name}: {check['severity']} check `{check['name']}`: "
                        f"{check['message']}",
                        style=style,
                    )
                )
    for o in result.steps:
        if o.status == "failed" and o.error:
            parts.append(Text(f"  {o.name} failed: {o.error}", style="bold red"))
        elif o.status == "skipped" and o.error:
            parts.append(Text(f"  {o.name} skipped: {o.error}", style="dim"))
        elif o.status == "reused":
            parts.append(Text(f"  {o.name} reused from run {o.details.get('reused_from', '')}"))
    status_style = "bold green" if result.ok else "bold red"
    quarantined = sum(o.rows_quarantined for o in result.steps)
    parts.append(
        Text(
            f"{result.status} in {result.seconds:.2f}s"
            + (f"; {quarantined:,} rows quarantined" if quarantined else ""),
            style=status_style,
        )
    )
    return Group(*parts)
