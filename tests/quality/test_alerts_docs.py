"""The quality/alerts example of docs/alerts.md is a file that runs, and the doc shows it as is."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from email import message_from_bytes
from pathlib import Path

import pytest

from headwater import Workspace
from headwater.quality.monitor import RunMonitor
from tests.quality.test_alerts import SECRET, Hook, Inbox, hook, smtp  # noqa: F401 - fixtures
from tests.workspace_helpers import make_workspace

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "quality_alerts.yaml"


def test_doc_shows_the_example_file() -> None:
    doc = (ROOT / "docs" / "alerts.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert EXAMPLE.read_text() in blocks


def test_example_configuration_runs(
    tmp_path: Path,
    hook: Hook,  # noqa: F811
    smtp: tuple[Inbox, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = smtp
    monkeypatch.setenv("HW_ALERTS_WEBHOOK_URL", hook.url + "/hw")
    monkeypatch.setenv("HW_ALERTS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("HW_ALERTS_SLACK_URL", hook.url + "/slack")
    make_workspace(tmp_path).close()
    # the one change: the doc's SMTP port becomes the test server's free port
    shutil.copy(EXAMPLE, tmp_path / "headwater.yaml")
    text = (tmp_path / "headwater.yaml").read_text()
    assert "port: 2525" in text
    (tmp_path / "headwater.yaml").write_text(text.replace("port: 2525", f"port: {port}"))

    with Workspace.open(tmp_path) as ws:
        monitor = RunMonitor(ws)
        assert [r.name for r in monitor.alerts.settings.rules] == [
            "failed-checks",
            "anomalies",
            "stale-data",
            "failed-runs",
        ]
        fresh = monitor.quality.freshness_for("raw.orders")
        assert fresh is not None and fresh.max_age == 86_400
        assert monitor.quality.freshness_for("staging.orders") is None

        result = ws.run("shop")
        assert result.ok
        # the error check on staging.orders blocked a row: one signed webhook alert
        (request,) = [r for r in hook.requests if r["path"] == "/hw"]
        body = json.loads(request["body"])
        assert body["rule"] == "failed-checks"
        assert body["subject"] == "staging.orders/range_amount"
        digest = hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Headwater-Signature"] == "sha256=" + digest
        # the raw datasets were just written: fresh, no stale-data alert; the run succeeded
        assert hook.bodies("/slack") == [] and inbox.messages == []

        # the email channel of the example works as configured
        delivery = monitor.alerts.test("oncall")
        assert delivery.ok, delivery.error
        assert message_from_bytes(inbox.messages[0][2])["To"] == "oncall@example.com"
