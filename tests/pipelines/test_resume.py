"""Resume: a run killed with SIGKILL, or failed, reruns only what did not finish."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.errors import ResumeError
from headwater.testing import memory_tables, workspace_for_test

HOOKS = '''\
import time
from pathlib import Path

import pyarrow.compute as pc


def enrich(orders, hold="", started=""):
    """Tag each order; while the file `hold` exists, wait (so a test can kill the run)."""
    if hold and Path(hold).exists():
        Path(started).write_text("started")
        deadline = time.monotonic() + 120
        while Path(hold).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return orders.append_column("big", pc.greater(orders.column("amount"), 50))


def fail_once(orders, flag=""):
    if flag and Path(flag).exists():
        Path(flag).unlink()
        raise RuntimeError("failing on purpose")
    return enrich(orders)
'''

PIPELINE = """\
name: orders
steps:
  - name: extract_orders
    type: extract
    connection: landing
    stream: orders.csv
    to: raw.orders
  - name: clean
    type: transform
    sql: select id, amount from {{ ref('raw.orders') }} where amount is not null
    to: staging.orders
  - name: enrich
    type: python
    function: hooks:enrich
    inputs: [staging.orders]
    args: {hold: "{{ params.hold }}", started: "{{ params.started }}"}
    to: staging.enriched
  - name: summary
    type: transform
    sql: |
      select big, count(*) as orders, sum(amount) as amount
      from {{ ref('staging.enriched') }} group by big
    to: marts.summary
params:
  hold: {default: ""}
  started: {default: ""}
"""

ORDERS = "id,amount\n" + "".join(f"{i},{i * 7 % 100}\n" for i in range(1, 201)) + "201,\n"


def _workspace(root: Path) -> None:
    root.mkdir(parents=True)
    Workspace.init(root).close()
    (root / "headwater.yaml").write_text(
        "name: resume\nconnections:\n  landing: {type: files, path: data}\n"
    )
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "orders.csv").write_text(ORDERS)
    (root / "pipelines" / "orders.yaml").write_text(PIPELINE)
    (root / "hooks.py").write_text(HOOKS)


def _checksum(ws: Workspace, name: str) -> str:
    table = ws.read(name)
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _headwater(*args: str) -> list[str]:
    """The real `headwater` command of this environment."""
    return [str(Path(sys.executable).with_name("headwater")), *args]


DATASETS = ("raw.orders", "staging.orders", "staging.enriched", "marts.summary")


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _workspace(killed)
    _workspace(clean)
    hold, started = killed / "hold", killed / "started"
    hold.write_text("wait")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        _headwater(
            "run",
            "pipelines/orders.yaml",
            "--param",
            f"hold={hold}",
            "--param",
            f"started={started}",
        ),
        cwd=killed,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not started.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the python step never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # kill -9, mid-run
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    hold.unlink()

    with Workspace.open(killed) as ws:  # opening reaps the dead run
        (run,) = ws.runs()
        assert run.status == "failed"
        assert [(s.step, s.status) for s in run.steps] == [
            ("extract_orders", "succeeded"),
            ("clean", "succeeded"),
            ("enrich", "failed"),
            ("summary", "skipped"),
        ]
        before = {d: ws.lake.version(d) for d in ("raw.orders", "staging.orders")}
        assert not ws.lake.exists("staging.enriched")

    done = subprocess.run(
        _headwater("run", "--resume", run.id[:12]),
        cwd=killed,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    with Workspace.open(clean) as ws:
        assert ws.run("orders").ok
        expected = {d: _checksum(ws, d) for d in DATASETS}
    with Workspace.open(killed) as ws:
        assert {d: _checksum(ws, d) for d in DATASETS} == expected
        resumed = ws.runs()[0]
        assert resumed.trigger == "resume" and resumed.status == "succeeded"
        assert resumed.params["resumed_from"] == run.id
        assert resumed.params["spec_hash"] == run.params["spec_hash"]
        assert [(s.step, s.status) for s in resumed.steps] == [
            ("extract_orders", "reused"),
            ("clean", "reused"),
            ("enrich", "succeeded"),
            ("summary", "succeeded"),
        ]
        # the completed steps did not run again: their datasets have no new version
        assert {d: ws.lake.version(d) for d in before} == before


def test_resume_reads_the_versions_the_reused_steps_committed(tmp_path: Path) -> None:
    _workspace(tmp_path / "ws")
    root = tmp_path / "ws"
    pipeline = PIPELINE.replace("hooks:enrich", "hooks:fail_once").replace(
        'args: {hold: "{{ params.hold }}", started: "{{ params.started }}"}',
        'args: {flag: "{{ params.hold }}"}',
    )
    (root / "pipelines" / "orders.yaml").write_text(pipeline)
    flag = root / "flag"
    flag.write_text("fail")
    with Workspace.open(root) as ws:
        first = ws.run("orders", params={"hold": str(flag)})
        assert first.status == "failed"
        assert first.step("enrich").error_type == "UserCodeError"
        committed = ws.lake.version("staging.orders")
        rows = ws.read("staging.orders").num_rows
        # someone rewrites staging.orders between the failure and the resume
        ws.write("staging.orders", pa.table({"id": [999], "amount": [1]}), mode="overwrite")

        resumed = ws.resume(first.run_id)

        assert resumed.ok, resumed.error
        assert [(s.name, s.status) for s in resumed.steps] == [
            ("extract_orders", "reused"),
            ("clean", "reused"),
            ("enrich", "succeeded"),
            ("summary", "succeeded"),
        ]
        # the resumed step read the version `clean` committed, not the later rewrite
        assert ws.read("staging.enriched").num_rows == rows == 200
        assert resumed.step("clean").details["dataset_versions"] == {"staging.orders": committed}

        with pytest.raises(ResumeError, match="succeeded: there is nothing to resume"):
            ws.resume(resumed.run_id)


def test_resume_of_an_unknown_run() -> None:
    memory_tables("resume")["t"] = pa.table({"x": [1]})
    with workspace_for_test() as ws, pytest.raises(Exception, match="no run with id `nope`"):
        ws.resume("nope")
