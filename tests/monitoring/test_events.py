"""The run event stream: stored in order in metadata and as JSON lines, read back by
`headwater runs logs ID [--follow]`, on SQLite and PostgreSQL metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from headwater.monitoring.history import run_events
from headwater.pipelines.events import Event, StepStarted
from headwater.workspace import Workspace

HEADWATER = Path(sys.executable).parent / "headwater"


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HEADWATER), "-w", str(root), *args], capture_output=True, text=True, timeout=120
    )


def test_a_run_stores_its_events_in_order_and_as_json_lines(ws: Workspace) -> None:
    result = ws.run("pipelines/orders.yaml")
    assert result.ok
    events = run_events(ws.store, result.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    assert events[0].payload["steps"][0] == {"name": "extract_orders", "kind": "extract"}
    assert events[-1].payload["status"] == "succeeded"
    assert all(e.payload["pipeline"] == "orders" for e in events)
    for outcome in result.steps:
        mine = [e for e in events if e.step == outcome.name and e.type != "step_progress"]
        assert [e.type for e in mine] == ["step_queued", "step_started", "step_finished"]
        assert mine[0].ts <= mine[1].ts <= mine[2].ts
        finished = mine[2].payload
        assert (finished["rows_in"], finished["rows_out"], finished["rows_quarantined"]) == (
            outcome.rows_in,
            outcome.rows_out,
            outcome.rows_quarantined,
        )
        assert finished["bytes"] == outcome.bytes and finished["status"] == "succeeded"
    # a step starts only after the steps it reads from finished
    seq = {(e.step, e.type): e.seq for e in events}
    assert seq[("extract_orders", "step_finished")] < seq[("clean_orders", "step_queued")]
    # the same records, as JSON lines under .headwater/logs
    log = ws.root / ".headwater" / "logs" / f"{result.run_id}.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [json.loads(json.dumps(e.to_json(), default=str)) for e in events]
    assert lines[-1]["event"] == "run_finished" and lines[-1]["level"] == "info"


def test_retries_and_failures_are_events(ws: Workspace) -> None:
    result = ws.run("pipelines/down.yaml")
    assert not result.ok
    events = [e for e in run_events(ws.store, result.run_id) if e.step == "pull"]
    assert [(e.type, e.payload.get("attempt")) for e in events] == [
        ("step_queued", None),
        ("step_started", 1),
        ("step_retried", 1),
        ("step_started", 2),
        ("step_retried", 2),
        ("step_started", 3),
        ("step_finished", None),
    ]
    retried = events[2]
    assert retried.level == "warning" and "Cannot reach PostgreSQL" in retried.payload["error"]
    # doubling backoff with jitter: each wait is between half and all of 0.01 s, 0.02 s
    assert 0.005 <= retried.payload["delay_s"] <= 0.01
    assert 0.01 <= events[4].payload["delay_s"] <= 0.02
    finished = events[-1]
    assert finished.level == "error"
    assert finished.payload["status"] == "failed"
    assert finished.payload["error_type"] == "ConnectorUnavailableError"


def test_runs_logs_prints_the_stored_events(ws: Workspace) -> None:
    result = ws.run("pipelines/orders.yaml")
    proc = _cli(ws.root, "runs", "logs", result.run_id[:8])
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    stored = run_events(ws.store, result.run_id)
    assert [p["seq"] for p in printed] == [e.seq for e in stored]
    assert printed[-1]["event"] == "run_finished" and printed[-1]["status"] == "succeeded"
    missing = _cli(ws.root, "runs", "logs", "ffffffffffff")
    assert missing.returncode == 1 and "no run with id `ffffffffffff`" in missing.stderr


def test_runs_logs_follow_tails_a_running_run_until_it_ends(ws: Workspace) -> None:
    started, release = threading.Event(), threading.Event()
    run_ids: list[str] = []

    def hold(event: Event) -> None:
        if isinstance(event, StepStarted) and not started.is_set():
            run_ids.append(event.run_id)
            started.set()
            release.wait(60)  # the first step waits until the follower is attached

    results = []
    runner = threading.Thread(
        target=lambda: results.append(ws.run("pipelines/orders.yaml", on_event=hold))
    )
    runner.start()
    try:
        assert started.wait(60)
        proc = subprocess.Popen(
            [
                str(HEADWATER),
                "-w",
                str(ws.root),
                "runs",
                "logs",
                run_ids[0],
                "--follow",
                "--interval",
                "0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "run_started" and first["run_id"] == run_ids[0]
        assert proc.poll() is None  # still following: the run is not over
    finally:
        release.set()
        runner.join(120)
    # read through the same buffered stream as readline() (communicate() would bypass it)
    out = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr is not None else ""
    assert proc.wait(60) == 0, err
    lines = [first, *(json.loads(line) for line in out.splitlines())]
    assert lines[-1]["event"] == "run_finished"
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert len(lines) == len(run_events(ws.store, results[0].run_id))
