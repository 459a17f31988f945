"""Alert channels against real local servers (HTTP and aiosmtpd SMTP), and incidents across
real runs: one alert per incident, one recovery notice, throttling, clear config errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller

from headwater import Workspace
from headwater.cli._state import console
from headwater.cli.app import main
from headwater.errors import ConfigError
from headwater.metadata.models import AlertDeliveryRow
from headwater.quality.alerts import Alerts, Notification, Signal, build_channel, list_incidents
from headwater.quality.alerts.incidents import evaluate_signals
from headwater.quality.metrics import Measurement, record_metrics
from headwater.quality.settings import AlertRule
from tests.workspace_helpers import ORDERS_CSV, make_workspace

SECRET = "s3cr3t-hmac-key"


@dataclass
class Hook:
    """A local HTTP receiver: records every POST; answers `fail_first` of them with 503."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    status: int = 503

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(r["body"])
            for r in self.requests
            if r["ok"] and (path is None or r["path"] == path)
        ]


@pytest.fixture
def hook() -> Iterator[Hook]:
    box: dict[str, Hook] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = box["hook"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            failing = len(receiver.requests) < receiver.fail_first
            receiver.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "ok": not failing,
                }
            )
            self.send_response(receiver.status if failing else 200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["hook"] = Hook(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["hook"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


NOTE = Notification(
    event="opened",
    rule="failed-checks",
    kind="check_failure",
    subject="staging.orders/range_amount",
    summary="check `range_amount` on staging.orders: 1 of 5 rows fail",
    incident_id=7,
    run_id="r1",
)


# --- channels ------------------------------------------------------------------------------------


def test_webhook_is_signed_and_retried(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_SECRET", SECRET)
    hook.fail_first = 1
    channel = build_channel(
        "ops",
        {
            "type": "webhook",
            "url": hook.url + "/hw",
            "secret": "${HW_TEST_HOOK_SECRET}",
            "retries": 2,
            "backoff": 0.05,
        },
    )
    delivery = channel.send(NOTE)
    assert delivery.ok and delivery.attempts == 2
    assert [r["ok"] for r in hook.requests] == [False, True]
    request = hook.requests[1]
    expected = "sha256=" + hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Headwater-Signature"] == expected
    assert request["headers"]["Content-Type"] == "application/json"
    payload = json.loads(request["body"])
    assert payload["event"] == "opened" and payload["subject"] == "staging.orders/range_amount"
    assert payload["incident_id"] == 7 and payload["summary"] == NOTE.summary


def test_webhook_gives_up_and_does_not_retry_a_refusal(hook: Hook) -> None:
    hook.fail_first, hook.status = 100, 500
    channel = build_channel(
        "ops", {"type": "webhook", "url": hook.url, "retries": 2, "backoff": 0.01}
    )
    failed = channel.send(NOTE)
    assert (
        not failed.ok and failed.attempts == 3 and failed.error == "HTTP 500 Internal Server Error"
    )
    hook.requests.clear()
    hook.status = 404
    refused = channel.send(NOTE)
    assert not refused.ok and refused.attempts == 1 and "HTTP 404" in (refused.error or "")
    closed = build_channel(
        "ops",
        {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}", "retries": 1, "backoff": 0},
    ).send(NOTE)
    assert not closed.ok and closed.attempts == 2 and "refused" in (closed.error or "").lower()


def test_slack_message(hook: Hook) -> None:
    channel = build_channel("team", {"type": "slack", "url": hook.url + "/services/T0/B0/x"})
    assert channel.send(NOTE).ok
    (body,) = hook.bodies("/services/T0/B0/x")
    assert list(body) == ["text"]
    assert body["text"].startswith(
        ":rotating_light: [headwater] ALERT failed-checks: staging.orders/range_amount\n"
        "check `range_amount` on staging.orders: 1 of 5 rows fail"
    )


def test_email_through_a_local_smtp_server(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    channel = build_channel(
        "oncall",
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "headwater@example.com",
            "to": ["a@example.com", "b@example.com"],
        },
    )
    delivery = channel.send(NOTE)
    assert delivery.ok, delivery.error
    ((sender, recipients, raw),) = inbox.messages
    assert sender == "headwater@example.com"
    assert recipients == ["a@example.com", "b@example.com"]
    message = message_from_bytes(raw)
    assert message["Subject"] == "[headwater] ALERT failed-checks: staging.orders/range_amount"
    assert "1 of 5 rows fail" in message.get_payload()
    # the local server offers no STARTTLS: asking for it is a failed delivery, not a crash
    tls = build_channel(
        "oncall",
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "starttls": True,
            "from": "headwater@example.com",
            "to": ["a@example.com"],
        },
    ).send(NOTE)
    assert not tls.ok and "STARTTLS" in (tls.error or "")
    assert len(inbox.messages) == 1


@pytest.mark.parametrize(
    ("name", "data", "message", "field"),
    [
        ("ops", {"type": "webhok", "url": "http://x"}, "unknown type `webhok`", "type"),
        ("ops", {"url": "http://x"}, "needs a `type`", "type"),
        (
            "ops",
            {"type": "webhook", "url": "http://x", "secret": "plain-value-123"},
            "`secret` must be a ${ENV_VAR} reference",
            "secret",
        ),
        ("mail", {"type": "email", "host": "h", "to": ["a@b.c"]}, "Field required", "from"),
    ],
)
def test_channel_config_errors(name: str, data: dict[str, Any], message: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_channel(name, data)
    assert message in info.value.message
    assert info.value.field == f"alerts.channels.{name}.{field}"
    assert "plain-value-123" not in str(info.value) + (info.value.hint or "")
    if data.get("type") == "webhok":
        assert "Did you mean `webhook`?" in (info.value.hint or "")


def test_rule_must_name_a_declared_channel(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        with pytest.raises(ConfigError) as info:
            Alerts(
                ws.store,
                {
                    "channels": {"ops": {"type": "slack", "url": "http://x"}},
                    "rules": [{"name": "r", "on": "check_failure", "channels": ["opz"]}],
                },
            )
        assert "names channel `opz`, which alerts.channels does not declare" in info.value.message
        assert info.value.field == "alerts.rules.0.channels"
        assert info.value.hint == "Did you mean `ops`?"
        with pytest.raises(ConfigError) as bad_kind:
            Alerts(ws.store, {"rules": [{"name": "r", "on": "check_fail", "channels": []}]})
        assert bad_kind.value.field == "alerts.rules.0.on"


# --- incidents across runs -----------------------------------------------------------------------


def alerting_workspace(root: Path, hook: Hook, port: int) -> Workspace:
    make_workspace(root).close()
    (root / "headwater.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: test
            connections:
              landing: {{type: files, path: data}}
              exports: {{type: files, path: exports}}
            alerts:
              channels:
                ops: {{type: webhook, url: "{hook.url}/hw", secret: "${{HW_TEST_HOOK_SECRET}}",
                       backoff: 0.05}}
                team: {{type: slack, url: "{hook.url}/slack"}}
                oncall: {{type: email, host: 127.0.0.1, port: {port},
                          from: headwater@example.com, to: [oncall@example.com]}}
              rules:
                - {{name: failed-checks, on: check_failure, severity: error, channels: [ops]}}
                - {{name: failed-runs, on: run_failure, channels: [team, oncall]}}
            """
        )
    )
    return Workspace.open(root)


def test_three_failing_runs_alert_once_then_recover_once(
    tmp_path: Path,
    hook: Hook,
    smtp: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
    metadata_url: str,
) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("HEADWATER_METADATA_URL", metadata_url)  # SQLite and PostgreSQL
    inbox, port = smtp
    with alerting_workspace(tmp_path, hook, port) as ws:
        hook.fail_first = 1  # the first delivery attempt fails and is retried
        for _ in range(3):
            assert ws.run("shop").ok  # the error check blocks a row (amount -1.00)
        opened = hook.bodies("/hw")
        assert len(opened) == 1
        assert opened[0]["event"] == "opened" and opened[0]["rule"] == "failed-checks"
        assert opened[0]["subject"] == "staging.orders/range_amount"
        assert len(hook.requests) == 2  # one failed attempt + one delivery
        (incident,) = list_incidents(ws.store)
        assert incident.status == "open" and incident.occurrences == 3 and incident.notified

        # fix the data: the next run passes the check and the incident recovers
        (tmp_path / "data" / "orders.csv").write_text(ORDERS_CSV.replace("-1.00", "1.00"))
        recovered_run = ws.run("shop")
        assert recovered_run.ok
        bodies = hook.bodies("/hw")
        assert [b["event"] for b in bodies] == ["opened", "recovered"]
        assert bodies[1]["occurrences"] == 3 and bodies[1]["run_id"] == recovered_run.run_id
        signature = hook.requests[-1]["headers"]["X-Headwater-Signature"]
        body = hook.requests[-1]["body"]
        assert signature == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        (incident,) = list_incidents(ws.store)
        assert incident.status == "resolved" and incident.resolved_at is not None
        # another passing run sends nothing more
        assert ws.run("shop").ok
        assert len(hook.bodies("/hw")) == 2
        # no run failed: the run-failure rule stayed silent
        assert hook.bodies("/slack") == [] and inbox.messages == []
        with ws.store.session() as s:
            deliveries = s.query(AlertDeliveryRow).order_by(AlertDeliveryRow.id).all()
            assert [(d.channel, d.event, d.ok, d.attempts) for d in deliveries] == [
                ("ops", "opened", True, 2),
                ("ops", "recovered", True, 1),
            ]


def test_run_failure_alerts_by_slack_and_email(
    tmp_path: Path, hook: Hook, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_SECRET", SECRET)
    inbox, port = smtp
    with alerting_workspace(tmp_path, hook, port) as ws:
        customers = tmp_path / "data" / "customers.csv"
        saved = customers.read_text()
        customers.unlink()
        failed = ws.run("shop")
        assert not failed.ok
        assert not ws.run("shop").ok  # still failing: no second alert
        (slack,) = hook.bodies("/slack")
        assert slack["text"].startswith(":rotating_light: [headwater] ALERT failed-runs: shop\n")
        assert f"run {failed.run_id} of pipeline `shop` failed" in slack["text"]
        ((_, recipients, raw),) = inbox.messages
        assert recipients == ["oncall@example.com"]
        assert message_from_bytes(raw)["Subject"] == "[headwater] ALERT failed-runs: shop"
        customers.write_text(saved)
        assert ws.run("shop").ok
        assert hook.bodies("/slack")[-1]["text"].startswith(
            ":white_check_mark: [headwater] RECOVERED failed-runs: shop"
        )
        assert len(inbox.messages) == 2
        assert "RECOVERED" in message_from_bytes(inbox.messages[1][2])["Subject"]


def test_throttle_suppresses_a_flapping_condition(
    tmp_path: Path, hook: Hook, metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_METADATA_URL", metadata_url)
    with Workspace.init(tmp_path / "ws") as ws:
        channels = {"team": build_channel("team", {"type": "slack", "url": hook.url})}
        rule = AlertRule.model_validate(
            {"name": "stale", "on": "freshness", "channels": ["team"], "throttle": "1h"}
        )
        t0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

        def step(firing: bool, minutes: int) -> str:
            signal = Signal("freshness", "raw.orders", firing, f"late={firing}", "raw.orders")
            outcomes = evaluate_signals(
                ws.store, [rule], channels, [signal], now=t0 + timedelta(minutes=minutes)
            )
            return outcomes[0].action if outcomes else "none"

        assert [
            step(True, 0),  # opens and alerts
            step(True, 10),  # still open: deduplicated
            step(False, 20),  # recovers: recovery notice
            step(True, 30),  # opens again within the hour: recorded, not sent
            step(False, 40),  # its recovery is not sent either
            step(False, 45),  # nothing open: nothing happens
            step(True, 90),  # an hour after the last alert: sent again
        ] == ["opened", "repeated", "resolved", "throttled", "resolved", "none", "opened"]
        texts = [b["text"].split("\n")[0] for b in hook.bodies()]
        assert texts == [
            ":rotating_light: [headwater] ALERT stale: raw.orders",
            ":white_check_mark: [headwater] RECOVERED stale: raw.orders",
            ":rotating_light: [headwater] ALERT stale: raw.orders",
        ]


def test_alerts_commands(
    tmp_path: Path,
    hook: Hook,
    smtp: tuple[Inbox, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setattr(console, "width", 220)
    inbox, port = smtp
    alerting_workspace(tmp_path, hook, port).close()
    root = str(tmp_path)
    assert main(["-w", root, "alerts", "list"]) == 0
    assert "no incidents" in capsys.readouterr().out
    assert main(["-w", root, "alerts", "test", "oncall"]) == 0
    assert "sent a test notification through `oncall`" in capsys.readouterr().out
    assert message_from_bytes(inbox.messages[0][2])["Subject"] == (
        "[headwater] test alert from rule test"
    )
    assert main(["-w", root, "alerts", "test", "opz"]) == 1
    assert "no alert channel named `opz`" in capsys.readouterr().err
    assert main(["-w", root, "run", "shop"]) == 0
    capsys.readouterr()
    assert main(["-w", root, "alerts", "list", "--open"]) == 0
    out = capsys.readouterr().out
    assert "failed-checks" in out and "staging.orders/range_amount" in out and "open" in out


EVENTS_PIPELINE = """\
name: events
steps:
  - name: extract_events
    type: extract
    connection: landing
    stream: events.csv
    options: {format: csv, schema: {id: BIGINT, happened_on: DATE}}
    to: raw.events
"""


def test_anomaly_and_freshness_rules_after_a_real_run(
    tmp_path: Path, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_workspace(tmp_path, EVENTS_PIPELINE).close()
    (tmp_path / "data" / "events.csv").write_text(
        "id,happened_on\n" + "".join(f"{i},2024-01-0{1 + i % 5}\n" for i in range(12))
    )
    (tmp_path / "headwater.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: test
            connections:
              landing: {{type: files, path: data}}
            quality:
              freshness:
                raw.events: {{max_age: 1d}}
            alerts:
              channels:
                team: {{type: slack, url: "{hook.url}/slack"}}
              rules:
                - {{name: anomalies, on: anomaly, datasets: ["raw.*"], channels: [team]}}
                - {{name: stale, on: freshness, channels: [team]}}
            """
        )
    )
    with Workspace.open(tmp_path) as ws:
        # two weeks of daily history around 10,000 rows, recorded before this run
        now = datetime.now(UTC)
        for day in range(14, 0, -1):
            record_metrics(
                ws.store,
                Measurement("raw.events", now - timedelta(days=day), {"row_count": 10_000.0 + day}),
            )
        result = ws.run("shop")
        assert result.ok
        texts = sorted(b["text"] for b in hook.bodies("/slack"))
        assert len(texts) == 2
        anomaly, stale = texts
        assert anomaly.startswith(
            ":rotating_light: [headwater] ALERT anomalies: raw.events/row_count\n"
            "raw.events: row count 12 is "
        )
        assert "MADs below the 28-day median of 10,007.5" in anomaly
        assert stale.startswith(":rotating_light: [headwater] ALERT stale: raw.events\n")
        assert (
            "over the allowed 24.0 h" in stale and "freshness (age of the newest row) is " in stale
        )
        (warn,) = [r for r in ws.store.check_results(run_id=result.run_id) if r.kind == "anomaly"]
        assert warn.severity == "warn" and warn.check == "anomaly:row_count"
        # the same conditions on the next run: deduplicated
        assert ws.run("shop").ok
        assert len(hook.bodies("/slack")) == 2


def test_unreachable_channel_does_not_fail_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_workspace(tmp_path).close()
    port = free_port()  # nothing listens there
    text = (tmp_path / "headwater.yaml").read_text()
    (tmp_path / "headwater.yaml").write_text(
        text
        + textwrap.dedent(
            f"""\
            alerts:
              channels:
                ops: {{type: webhook, url: "http://127.0.0.1:{port}/hw", retries: 1, backoff: 0}}
              rules:
                - {{name: failed-checks, on: check_failure, channels: [ops]}}
            """
        )
    )
    with Workspace.open(tmp_path) as ws:
        with caplog.at_level("WARNING", logger="headwater.quality"):
            assert ws.run("shop").ok
        assert "alert failed-checks via ops failed after 2 attempt(s)" in caplog.text
        with ws.store.session() as s:
            rows = s.query(AlertDeliveryRow).all()
        assert rows and all(not r.ok and r.attempts == 2 for r in rows)
        assert all("refused" in (r.error or "").lower() for r in rows)


def test_freshness_check_between_runs(
    tmp_path: Path,
    hook: Hook,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "width", 220)
    root = tmp_path / "ws"
    Workspace.init(root).close()
    (root / "headwater.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: test
            quality:
              freshness:
                raw.events: {{max_age: 1h, column: at}}
            alerts:
              channels:
                team: {{type: slack, url: "{hook.url}/slack"}}
              rules:
                - {{name: stale, on: freshness, channels: [team]}}
            """
        )
    )
    now = datetime.now(UTC)
    with Workspace.open(root) as ws:
        ws.write("raw.events", pa.table({"at": [now - timedelta(hours=3)], "n": [1]}))
        ws.write("raw.other", pa.table({"at": [now - timedelta(days=30)]}))  # no expectation
    assert main(["-w", str(root), "alerts", "check"]) == 0
    assert "stale raw.events: opened (team ok)" in capsys.readouterr().out
    (body,) = hook.bodies("/slack")
    assert body["text"].startswith(":rotating_light: [headwater] ALERT stale: raw.events\n")
    assert "is 3.0 h, over the allowed 60.0 min" in body["text"]
    assert main(["-w", str(root), "alerts", "check"]) == 0  # still stale: nothing new sent
    assert "stale raw.events: repeated" in capsys.readouterr().out
    with Workspace.open(root) as ws:
        ws.write("raw.events", pa.table({"at": [now], "n": [2]}))
    assert main(["-w", str(root), "alerts", "check"]) == 0
    assert "stale raw.events: resolved (team ok)" in capsys.readouterr().out
    assert [b["text"].split("\n")[0] for b in hook.bodies("/slack")] == [
        ":rotating_light: [headwater] ALERT stale: raw.events",
        ":white_check_mark: [headwater] RECOVERED stale: raw.events",
    ]
