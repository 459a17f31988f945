"""`headwater scheduler --once`, `headwater schedules` and the lease, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.cli.app import main
from headwater.metadata.store import MetadataStore
from headwater.pipelines.scheduling.queue import SchedulerStore
from tests.pipelines.scheduling_helpers import make_workspace, pipeline_yaml


def test_lease_is_exclusive_renewable_and_taken_over_when_expired(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    queue = SchedulerStore(store)
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert queue.acquire_lease("a", t0, 10)
    assert not queue.acquire_lease("b", t0 + timedelta(seconds=5), 10)
    assert queue.acquire_lease("a", t0 + timedelta(seconds=9), 10)  # renewed until t0+19
    assert not queue.acquire_lease("b", t0 + timedelta(seconds=15), 10)
    assert queue.acquire_lease("b", t0 + timedelta(seconds=20), 10)  # a stopped renewing
    assert not queue.acquire_lease("a", t0 + timedelta(seconds=21), 10)
    lease = queue.lease()
    assert lease is not None and lease.holder == "b"
    queue.release_lease("b")
    assert queue.acquire_lease("a", t0 + timedelta(seconds=22), 10)  # released: at once
    store.close()


def test_schedules_lists_next_fire_times_in_the_pipelines_time_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        None,
        {
            "daily": pipeline_yaml(
                "daily",
                writes="raw.daily",
                schedule="schedule: {cron: '0 6 * * *', timezone: America/New_York}",
            ),
            "after": pipeline_yaml("after", writes="raw.after", trigger=["raw.daily"]),
            "plain": pipeline_yaml("plain", writes="raw.plain"),
        },
    )
    root = str(ws.root)
    ws.close()
    assert main(["-w", root, "schedules", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("06:00:00 E") == 2  # EST or EDT, whichever applies
    assert "America/New_York" in out and "raw.daily" in out
    assert "plain" not in out
    assert "no scheduler is running" in out


def test_scheduler_once_runs_queued_and_triggered_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        None,
        {
            "first": pipeline_yaml("first", writes="raw.first"),
            "second": pipeline_yaml(
                "second", reads="raw.first", writes="mart.second", trigger=["raw.first"]
            ),
        },
    )
    root = str(ws.root)
    assert main(["-w", root, "schedules", "queue", "first"]) == 0
    assert "queued first (request 1)" in capsys.readouterr().out
    assert main(["-w", root, "schedules", "queue", "frist"]) == 1
    assert "Did you mean `first`?" in capsys.readouterr().err
    # a real process, as deployments run it
    proc = subprocess.run(
        [sys.executable, "-m", "headwater", "-w", root, "scheduler", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "queued second (request 2): raw.first v0" in proc.stderr
    assert "scheduler --once: 0 tick(s) fired, 2 run(s) done" in proc.stderr
    assert [(r.pipeline, r.trigger, r.status) for r in reversed(ws.runs())] == [
        ("first", "manual", "succeeded"),
        ("second", "dataset", "succeeded"),
    ]
    assert main(["-w", root, "schedules", "requests"]) == 0
    listing = capsys.readouterr().out
    assert "raw.first v0" in listing and "succeeded" in listing
    ws.close()


def test_a_lease_shorter_than_two_polls_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path / "ws", None, {})
    root = str(ws.root)
    ws.close()
    code = main(["-w", root, "scheduler", "--lease-seconds", "1", "--poll-seconds", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "at least twice the poll interval" in err
    assert "--lease-seconds 30 --poll-seconds 1" in err
