"""Webhook subscriptions against a real local HTTP server that checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headwater.cli.app import main
from headwater.errors import SubscriptionError
from headwater.pipelines.scheduling.queue import SchedulerStore
from headwater.pipelines.scheduling.webhooks import Subscriptions, verify
from headwater.workspace import Workspace
from tests.pipelines.scheduling_helpers import make_workspace, pipeline_yaml

SECRET = "s3cr3t-hook-key"


@dataclass
class Receiver:
    """A webhook endpoint: answers each attempt with the next planned status code."""

    secret: str
    plan: list[int] = field(default_factory=list)  # status codes for the first attempts
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def handle(self, headers: Any, body: bytes) -> int:
        signature = headers.get("X-Headwater-Signature")
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        valid = signature is not None and hmac.compare_digest(signature, expected)
        code = self.plan.pop(0) if self.plan else (200 if valid else 401)
        self.received.append({"body": json.loads(body), "valid": valid, "code": code, "raw": body})
        return code


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = rec.handle(self.headers, body)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/headwater"
    yield rec
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def ws(tmp_path: Path, metadata_url: str) -> Iterator[Workspace]:
    w = make_workspace(
        tmp_path / "ws", metadata_url, {"orders": pipeline_yaml("orders", writes="raw.orders")}
    )
    yield w
    w.close()


def test_a_new_version_is_posted_signed_and_retried_after_a_5xx(
    ws: Workspace, receiver: Receiver
) -> None:
    sub = Subscriptions(ws).add("raw.orders", receiver.url, SECRET)
    receiver.plan = [503]  # the first attempt fails
    result = ws.run("orders")
    assert result.ok
    assert [r["code"] for r in receiver.received] == [503, 200]
    assert all(r["valid"] for r in receiver.received)
    body = receiver.received[-1]["body"]
    version = ws.lake.version("raw.orders")
    assert {k: body[k] for k in ("dataset", "version", "run_id", "pipeline")} == {
        "dataset": "raw.orders",
        "version": version,
        "run_id": result.run_id,
        "pipeline": "orders",
    }
    assert body["committed_at"].startswith(str(ws.history("raw.orders")[0].timestamp.year))
    assert verify(SECRET, receiver.received[-1]["raw"], "sha256=" + "0" * 64) is False
    (delivery,) = SchedulerStore(ws.store).deliveries(subscription_id=sub.id)
    assert (delivery.status, delivery.attempts, delivery.version) == ("delivered", 2, version)
    assert [a["status_code"] for a in delivery.attempt_log] == [503, 200]


def test_a_4xx_is_not_retried_and_a_wrong_secret_is_refused(
    ws: Workspace, receiver: Receiver
) -> None:
    Subscriptions(ws).add("raw.orders", receiver.url, "not-the-receivers-key")
    ws.run("orders")
    assert [(r["valid"], r["code"]) for r in receiver.received] == [(False, 401)]
    (delivery,) = SchedulerStore(ws.store).deliveries()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.attempt_log[0]["error"] == "HTTP 401"


def test_an_unreachable_url_is_retried_then_failed(ws: Workspace) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    Subscriptions(ws).add("raw.orders", f"http://127.0.0.1:{port}/x", SECRET)
    ws.run("orders")
    (delivery,) = SchedulerStore(ws.store).deliveries()
    assert delivery.status == "failed" and delivery.attempts == 5
    assert all(a["status_code"] is None for a in delivery.attempt_log)
    assert "cannot reach the URL" in delivery.attempt_log[0]["error"]


def test_subscriptions_to_other_datasets_are_not_notified(
    ws: Workspace, receiver: Receiver
) -> None:
    Subscriptions(ws).add("raw.customers", receiver.url, SECRET)
    ws.run("orders")
    assert receiver.received == []


def test_secret_from_an_environment_reference(
    ws: Workspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    row = Subscriptions(ws).add("raw.orders", receiver.url, "${HOOK_SECRET}")
    assert row.secret_ref == "${HOOK_SECRET}" and row.secret_name is None
    ws.run("orders")
    assert [(r["valid"], r["code"]) for r in receiver.received] == [(True, 200)]


def test_bad_subscriptions_are_refused(ws: Workspace) -> None:
    subs = Subscriptions(ws)
    with pytest.raises(SubscriptionError, match="invalid webhook URL `ftp://x`"):
        subs.add("raw.orders", "ftp://x", SECRET)
    with pytest.raises(SubscriptionError, match="invalid dataset name `Orders`"):
        subs.add("Orders", "https://example.com/h", SECRET)
    with pytest.raises(SubscriptionError, match="no subscription with id 42"):
        subs.remove(42)


def test_cli_add_list_remove(
    ws: Workspace, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(ws.root)
    assert (
        main(
            [
                "-w",
                root,
                "subscriptions",
                "add",
                "--dataset",
                "raw.orders",
                "--url",
                receiver.url,
                "--secret",
                SECRET,
            ]
        )
        == 0
    )
    assert "subscription 1:" in capsys.readouterr().out
    assert main(["-w", root, "subscriptions", "list"]) == 0
    listing = capsys.readouterr().out
    assert "raw.orders" in listing and "stored encrypted" in listing
    assert SECRET not in listing
    # the secret is stored encrypted, never as text
    stored = ws.store.get_secret("subscription.1.secret")
    assert stored is not None and SECRET.encode() not in stored
    ws.run("orders")
    assert main(["-w", root, "subscriptions", "deliveries"]) == 0
    assert "delivered" in capsys.readouterr().out
    assert main(["-w", root, "subscriptions", "remove", "1"]) == 0
    assert ws.store.get_secret("subscription.1.secret") is None
    assert main(["-w", root, "subscriptions", "remove", "1"]) == 1
    assert "no subscription with id 1" in capsys.readouterr().err


def test_the_scheduler_retries_a_notice_whose_sender_died(
    ws: Workspace, receiver: Receiver
) -> None:
    from datetime import UTC, datetime

    from headwater.pipelines.scheduling.scheduler import Scheduler
    from tests.pipelines.scheduling_helpers import FakeClock

    sub = Subscriptions(ws).add("raw.orders", receiver.url, SECRET)
    queue = SchedulerStore(ws.store)
    payload = {
        "dataset": "raw.orders",
        "version": 3,
        "run_id": "r1",
        "pipeline": "orders",
        "committed_at": "2026-06-01T06:00:00+00:00",
    }
    # a sender that recorded the notice, then died before sending it
    delivery = queue.add_delivery(sub.id, "raw.orders", 3, "r1", payload)
    clock = FakeClock(datetime.now(UTC))
    scheduler = Scheduler(ws, clock=clock, holder="one")
    scheduler.run_pass()
    assert scheduler.wait_idle()
    assert receiver.received == []  # too recent: its sender may still be at it
    clock.advance(minutes=10)
    scheduler.run_pass()
    scheduler.close()
    assert [(r["body"], r["valid"]) for r in receiver.received] == [(payload, True)]
    (row,) = queue.deliveries()
    assert (row.id, row.status, row.attempts) == (delivery, "delivered", 1)
