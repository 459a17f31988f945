"""Shared machinery for Headwater's benchmarks.

A benchmark script declares its measurements as *child operations*: plain functions that do one
piece of work and time it themselves. The parent process runs each one in a fresh interpreter
(``python <script> --child <name> <task-json>``), so imports, caches and peak memory never leak
from one tool into another, and collects:

* ``seconds``: the operation's wall time, measured inside the child around the work only
  (interpreter start-up, imports and setup such as creating a workspace are excluded);
* ``peak_rss_mb``: the child's peak resident set size, which the child reads itself from
  ``VmHWM`` in ``/proc/self/status`` (or ``getrusage(RUSAGE_SELF)`` off Linux), raised to the
  peak of any process it spawned. The parent cannot ask the kernel instead: the ``ru_maxrss``
  that ``wait4`` or ``getrusage(RUSAGE_CHILDREN)`` return keeps the high-water mark of the
  *parent's* memory that the child inherited at fork, across ``exec``, so a 10 MB child of a
  500 MB parent reports 500 MB (and ``RUSAGE_CHILDREN`` is moreover a maximum over all children);
  it is read when the timed work ends, so verifying the output afterwards does not count;
* ``rows_out``: the number of rows the child counted in what it wrote, after the timer stopped,
  and ``data_error`` when other checks of the output failed. A measurement whose output does not
  hold exactly the input's rows is reported as wrong.

Helpers here parse the common flags (``--rows``, ``--json``, ``--repeat``), take medians over
repeats, print the Rich result table and the Headwater-vs-peer ratios, and write the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CHILD_FLAG = "--child"
RESULT_ENV = "HEADWATER_BENCH_RESULT"
EXIT_UNAVAILABLE = 3
EXIT_FAILED = 2

console = Console()
if not console.is_terminal:  # piped or captured: do not wrap tables at 80 columns
    console = Console(width=140)


# --- command line ------------------------------------------------------------------------------


def row_count(text: str) -> int:
    """Parse a row count: ``1000000``, ``1_000_000``, ``1e6``, ``250k`` or ``10M``."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    multiplier = 1
    suffixes = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    if cleaned[-1:].lower() in suffixes:
        multiplier = suffixes[cleaned[-1].lower()]
        cleaned = cleaned[:-1]
    try:
        value = float(cleaned) * multiplier
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid row count {text!r}: expected a number such as 1000000, 1e6 or 10M"
        ) from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(
            f"invalid row count {text!r}: expected a whole number >= 1"
        )
    return int(value)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def base_parser(description: str, default_rows: int) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark shares; scripts add their own."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        type=row_count,
        default=default_rows,
        help=f"rows of synthetic data (default {default_rows:,}; accepts 1e6, 250k, 10M)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="run every measurement K times and report medians (default 1)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the measurements as a JSON list"
    )
    return parser


def tool_list(valid: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type for ``--tools a,b``: validates names and keeps the given order."""

    def parse(text: str) -> list[str]:
        tools = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [t for t in tools if t not in valid]
        if unknown or not tools:
            raise argparse.ArgumentTypeError(
                f"unknown tool {', '.join(map(repr, unknown)) or repr(text)}; "
                f"choose from {', '.join(valid)}"
            )
        return list(dict.fromkeys(tools))

    return parse


# --- results -----------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One tool doing one operation, possibly the median of several runs."""

    tool: str
    operation: str
    rows: int
    seconds: float | None
    rows_per_s: float | None
    peak_rss_mb: float | None
    group: str = ""  # what ratios compare across tools, e.g. the input format
    rows_out: int | None = None
    process_seconds: float | None = None
    repeats: int = 1
    runs_seconds: list[float] = field(default_factory=list)
    data_error: str | None = None  # the output has the wrong content
    error: str | None = None  # the tool failed

    @property
    def ok(self) -> bool:
        return self.error is None and self.data_error is None and self.rows_out == self.rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChildOutcome:
    """What a child operation reports: its timing and what it found in its output."""

    seconds: float
    peak_rss_mb: float
    rows_out: int
    data_error: str | None = None


class Stopwatch:
    """Times a block and records the process's peak RSS when the block ends.

    ``with Stopwatch() as timed: <the work>`` then ``timed.seconds``, ``timed.peak_rss_mb``.
    Put setup before the block and output verification after it.
    """

    seconds: float
    peak_rss_mb: float

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._started
        self.peak_rss_mb = peak_rss_mb()

    def outcome(self, rows_out: int, data_error: str | None = None) -> ChildOutcome:
        return ChildOutcome(self.seconds, self.peak_rss_mb, rows_out, data_error)


class ToolUnavailable(Exception):
    """Raised by a child operation whose tool cannot run here (not installed, API missing)."""


# --- running children --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    wall_seconds: float
    result: dict[str, Any] | None
    stderr_tail: str


def _maxrss_mb(maxrss: int) -> float:
    # getrusage reports kilobytes on Linux, bytes on macOS.
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def peak_rss_mb() -> float:
    """This process's peak RSS, or that of a process it spawned and reaped if that was higher."""
    own = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024  # kB; the high-water mark since exec
                break
    except OSError:
        pass
    if own is None:
        own = _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # A spawned process's figure includes what it inherited from us at fork, so max, not sum.
    spawned = _maxrss_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return max(own, spawned)


def run_child(
    script: Path,
    operation: str,
    task: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> ChildRun:
    """Run ``script --child operation task`` in a fresh interpreter and collect its report.

    ``python`` picks another interpreter (a peer installed in its own virtualenv)."""
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        stderr_path = Path(tmp) / "output.txt"
        child_env = {**os.environ, **(env or {}), RESULT_ENV: str(result_path)}
        argv = [
            python or sys.executable,
            str(script),
            CHILD_FLAG,
            operation,
            json.dumps(dict(task)),
        ]
        started = time.perf_counter()
        with open(stderr_path, "wb") as output:  # the child's logs stay out of the report
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=child_env
            )
        wall = time.perf_counter() - started
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        tail = stderr_path.read_text(errors="replace")[-2000:]
        return ChildRun(proc.returncode, wall, result, tail)


def child_main(operations: Mapping[str, Callable[[dict[str, Any]], ChildOutcome]]) -> int:
    """Entry point of a child process: ``argv = [script, --child, name, task-json]``."""
    name, task = sys.argv[2], json.loads(sys.argv[3])
    result_path = Path(os.environ[RESULT_ENV])
    try:
        outcome = operations[name](task)
    except ToolUnavailable as exc:
        report = {"unavailable": str(exc), "peak_rss_mb": peak_rss_mb()}
        result_path.write_text(json.dumps(report))
        return EXIT_UNAVAILABLE
    except BaseException as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".strip()
        result_path.write_text(json.dumps({"error": message[:2000], "peak_rss_mb": peak_rss_mb()}))
        return EXIT_FAILED
    result_path.write_text(json.dumps(asdict(outcome)))
    return 0


def is_child_invocation() -> bool:
    return len(sys.argv) >= 4 and sys.argv[1] == CHILD_FLAG


def measure(
    script: Path,
    *,
    tool: str,
    operation: str,
    child: str,
    rows: int,
    task: Mapping[str, Any],
    group: str = "",
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> Measurement:
    """Run one child operation once and turn what it reported into a :class:`Measurement`."""
    run = run_child(script, child, task, env, python)
    result = run.result or {}
    rss = result.get("peak_rss_mb")
    m = Measurement(
        tool=tool,
        operation=operation,
        rows=rows,
        seconds=None,
        rows_per_s=None,
        peak_rss_mb=round(float(rss), 1) if rss is not None else None,
        group=group,
        process_seconds=round(run.wall_seconds, 3),
    )
    if "unavailable" in result:
        m.error = f"not available: {result['unavailable']}"
    elif "error" in result:
        m.error = str(result["error"])
    elif run.returncode != 0 or "seconds" not in result:
        last_line = (run.stderr_tail.strip().splitlines() or ["no output"])[-1]
        m.error = f"child exited with code {run.returncode}: {last_line}"
    else:
        m.seconds = round(float(result["seconds"]), 3)
        m.rows_per_s = round(rows / m.seconds) if m.seconds > 0 else None
        m.rows_out = int(result["rows_out"])
        m.data_error = result.get("data_error")
        m.runs_seconds = [m.seconds]
    return m


def median_of(runs: Sequence[Measurement]) -> Measurement:
    """Combine repeats of the same measurement: median time and peak RSS; any failure wins."""
    first = runs[0]
    failed = [r for r in runs if r.error is not None]
    if failed:
        return failed[0]
    seconds = [r.seconds for r in runs if r.seconds is not None]
    median_s = round(statistics.median(seconds), 3)
    rss = [r.peak_rss_mb for r in runs if r.peak_rss_mb is not None]
    process = [r.process_seconds for r in runs if r.process_seconds is not None]
    counts = {r.rows_out for r in runs}
    data_errors = [r.data_error for r in runs if r.data_error]
    return Measurement(
        tool=first.tool,
        operation=first.operation,
        rows=first.rows,
        seconds=median_s,
        rows_per_s=round(first.rows / median_s) if median_s > 0 else None,
        peak_rss_mb=round(statistics.median(rss), 1) if rss else None,
        group=first.group,
        # Every repeat must have produced the same count; otherwise report the odd one out.
        rows_out=first.rows_out if len(counts) == 1 else next(c for c in counts if c != first.rows),
        process_seconds=round(statistics.median(process), 3) if process else None,
        repeats=len(runs),
        runs_seconds=seconds,
        data_error=data_errors[0] if data_errors else None,
    )


# --- reporting ---------------------------------------------------------------------------------


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value >= 1_000:
        return f"{value / 1_000:.0f}k"
    return f"{value:.0f}"


def print_results(measurements: Sequence[Measurement], title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("tool")
    table.add_column("operation")
    table.add_column("rows in", justify="right")
    table.add_column("rows out", justify="right")
    table.add_column("wall s", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("peak RSS MB", justify="right")
    for m in measurements:
        if m.error is not None:
            table.add_row(m.tool, m.operation, f"{m.rows:,}", "-", "[red]failed[/red]", "-", "-")
            continue
        good = m.rows_out == m.rows and m.data_error is None
        check = "[green]✓[/green]" if good else "[red]✗ WRONG[/red]"
        spread = ""
        if len(m.runs_seconds) > 1:
            spread = f" [dim]({min(m.runs_seconds):.2f}-{max(m.runs_seconds):.2f})[/dim]"
        table.add_row(
            m.tool,
            m.operation,
            f"{m.rows:,}",
            f"{m.rows_out:,} {check}",
            f"{m.seconds:.2f}{spread}",
            _fmt_rate(m.rows_per_s),
            f"{m.peak_rss_mb:,.0f}" if m.peak_rss_mb is not None else "-",
        )
    console.print(table)
    for m in measurements:
        if m.error is not None:
            message = m.error if len(m.error) <= 600 else m.error[:600] + " ..."
            console.print(f"[red]{m.tool} {m.operation} failed:[/red] {message}", highlight=False)
        elif m.rows_out != m.rows or m.data_error:
            problem = m.data_error or f"output holds {m.rows_out:,} rows, expected {m.rows:,}"
            console.print(f"[red]{m.tool} {m.operation} loaded wrong data:[/red] {problem}")


@dataclass(frozen=True)
class Ratio:
    group: str
    subject: Measurement
    peer: Measurement

    @property
    def speedup(self) -> float:
        """How many times faster the subject is (peer seconds / subject seconds)."""
        assert self.subject.seconds and self.peer.seconds
        return self.peer.seconds / self.subject.seconds

    @property
    def memory(self) -> float | None:
        """Subject peak RSS as a multiple of the peer's."""
        if not self.subject.peak_rss_mb or not self.peer.peak_rss_mb:
            return None
        return self.subject.peak_rss_mb / self.peer.peak_rss_mb


def ratios(measurements: Iterable[Measurement], subject: str, peers: Sequence[str]) -> list[Ratio]:
    """Pair the subject tool with each peer on every group both measured successfully."""
    ok = [m for m in measurements if m.ok]
    found = []
    for s in (m for m in ok if m.tool == subject):
        for peer_tool in peers:
            for p in (m for m in ok if m.tool == peer_tool and m.group == s.group):
                found.append(Ratio(s.group, s, p))
    return found


def print_ratios(measurements: Sequence[Measurement], subject: str, peers: Sequence[str]) -> None:
    pairs = ratios(measurements, subject, peers)
    if not pairs:
        console.print(
            f"[yellow]no ratios: {subject} and its peers ({', '.join(peers)}) "
            "did not both succeed on any operation[/yellow]"
        )
        return
    table = Table(
        title=f"{subject} vs peers (speed > 1: {subject} faster; memory < 1: {subject} leaner)",
        title_justify="left",
    )
    for name in ("input", "comparison", "speed", "memory"):
        table.add_column(name, justify="right" if name in ("speed", "memory") else "left")
    for r in pairs:
        memory = f"{r.memory:.2f}x" if r.memory is not None else "-"
        comparison = f"{r.subject.operation} vs {r.peer.tool} {r.peer.operation}"
        table.add_row(r.group, comparison, f"{r.speedup:.2f}x", memory)
    console.print(table)


def write_json(path: Path, measurements: Sequence[Measurement]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([m.to_json() for m in measurements], indent=2) + "\n")
    console.print(f"wrote {path}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
