"""`headwater connections check NAME`: status and latency recorded, history shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from headwater.errors import ConnectionNotFoundError
from headwater.monitoring.health import check_connection, check_history
from headwater.workspace import Workspace

HEADWATER = Path(sys.executable).parent / "headwater"


def test_checks_are_recorded_with_status_and_latency(ws: Workspace) -> None:
    ok = check_connection(ws, "landing")
    assert ok.ok and ok.status == "ok" and ok.latency_ms > 0 and ok.error is None
    down = check_connection(ws, "down")
    assert down.status == "failed" and down.latency_ms > 0
    assert down.error is not None and "Cannot reach PostgreSQL" in down.error
    again = check_connection(ws, "landing")
    history = check_history(ws, "landing")
    assert [h.status for h in history] == ["ok", "ok"]
    assert history[0].latency_ms == again.latency_ms and history[1].latency_ms == ok.latency_ms
    assert history[0].checked_at is not None and history[1].checked_at is not None
    assert history[0].checked_at >= history[1].checked_at
    assert [h.status for h in check_history(ws, "down")] == ["failed"]


def test_an_undeclared_connection_is_a_mistake_not_an_outage(ws: Workspace) -> None:
    with pytest.raises(ConnectionNotFoundError, match="landng"):
        check_connection(ws, "landng")
    assert check_history(ws, "landng") == []


def test_the_cli_checks_and_shows_the_history(tmp_path: Path) -> None:
    from tests.monitoring.conftest import make_workspace

    root = make_workspace(tmp_path / "ws")
    cli = [str(HEADWATER), "-w", str(root), "connections", "check"]
    first = subprocess.run([*cli, "landing"], capture_output=True, text=True, timeout=60)
    second = subprocess.run([*cli, "landing"], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "connection `landing` ok in" in second.stdout
    assert second.stdout.count(" ok ") >= 2  # both checks in the history table
    down = subprocess.run([*cli, "down"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 1
    text = " ".join(down.stdout.split())  # the console wraps long lines
    assert "connection `down` failed" in text and "Cannot reach PostgreSQL" in text
    typo = subprocess.run([*cli, "landng"], capture_output=True, text=True, timeout=60)
    assert typo.returncode == 1 and "landng" in typo.stderr and "Traceback" not in typo.stderr
    with Workspace.open(root) as ws:
        assert [h.status for h in check_history(ws, "landing")] == ["ok", "ok"]
