"""Prometheus metrics: scrape the real `headwater metrics serve` endpoint after runs."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headwater.monitoring.health import check_connection
from headwater.workspace import Workspace
from tests.monitoring.conftest import closed_port

HEADWATER = Path(sys.executable).parent / "headwater"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def server(ws: Workspace) -> Iterator[str]:
    port = closed_port()
    proc = subprocess.Popen(
        [str(HEADWATER), "-w", str(ws.root), "metrics", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _, err = proc.communicate(timeout=10)
                    raise AssertionError(f"metrics server did not start: {err}") from exc
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return _parse(response.read().decode())


def test_scraped_metrics_match_the_runs(ws: Workspace, server: str) -> None:
    ok = ws.run("pipelines/orders.yaml")
    failed = ws.run("pipelines/down.yaml")
    assert ok.ok and not failed.ok
    samples = _scrape(server)
    assert _value(samples, "headwater_runs_total", pipeline="orders", status="succeeded") == 1
    assert _value(samples, "headwater_runs_total", pipeline="down", status="failed") == 1
    for step in ok.steps:
        labels = {"pipeline": "orders", "step": step.name}
        assert _value(samples, "headwater_rows_processed_total", **labels) == step.rows_out
        assert _value(samples, "headwater_bytes_processed_total", **labels) == step.bytes
        timing = {**labels, "status": "succeeded"}
        assert _value(samples, "headwater_step_duration_seconds_count", **timing) == 1
        assert _value(samples, "headwater_step_duration_seconds_sum", **timing) == pytest.approx(
            step.seconds, abs=1e-5
        )
    assert _value(samples, "headwater_step_retries_total", pipeline="down", step="pull") == 2
    assert (
        _value(
            samples,
            "headwater_step_duration_seconds_count",
            pipeline="down",
            step="pull",
            status="failed",
        )
        == 1
    )
    lag = _value(samples, "headwater_scheduler_lag_seconds", pipeline="orders")
    assert 0 <= lag < 30

    # the exporter reads new events at every scrape: a second run and two checks show up
    again = ws.run("pipelines/orders.yaml")
    assert again.ok
    check_connection(ws, "landing")
    check_connection(ws, "down")
    samples = _scrape(server)
    assert _value(samples, "headwater_runs_total", pipeline="orders", status="succeeded") == 2
    rows = sum(s.rows_out for s in ok.steps if s.name == "export")
    assert (
        _value(samples, "headwater_rows_processed_total", pipeline="orders", step="export")
        == 2 * rows
    )
    assert _value(samples, "headwater_connection_up", connection="landing") == 1
    assert _value(samples, "headwater_connection_up", connection="down") == 0
    assert _value(samples, "headwater_connection_check_latency_seconds", connection="landing") > 0


def test_metrics_show_prints_the_exposition(ws: Workspace) -> None:
    result = ws.run("pipelines/orders.yaml")
    proc = subprocess.run(
        [str(HEADWATER), "-w", str(ws.root), "metrics", "show"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    samples = _parse(proc.stdout)
    assert _value(samples, "headwater_runs_total", pipeline="orders", status="succeeded") == 1
    export = result.step("export")
    assert (
        _value(samples, "headwater_rows_processed_total", pipeline="orders", step="export")
        == export.rows_out
        == 2
    )
