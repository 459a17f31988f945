"""Prometheus metrics of runs and connections, computed from the stored event stream.

:class:`RunMetrics` turns event records into counters, histograms and gauges in its own
registry. :class:`WorkspaceMetrics` feeds it from a workspace's metadata (every
``run_events`` row, then only new ones at each scrape, plus the latest connection
checks), so the numbers cover runs made by any process (CLI runs, the scheduler, the
API) and survive restarts of the exporter. Serve them with ``headwater metrics serve``
or get the text exposition with :func:`metrics_text` (for an API route).

Metrics (all prefixed ``headwater_``):

==================================  =========  ==========================================
name                                type       labels
==================================  =========  ==========================================
runs_total                          counter    pipeline, status
step_duration_seconds               histogram  pipeline, step, status
rows_processed_total                counter    pipeline, step (rows a step wrote)
bytes_processed_total               counter    pipeline, step
step_retries_total                  counter    pipeline, step
scheduler_lag_seconds               gauge      pipeline (queued -> started, last step)
connection_up                       gauge      connection (1 ok, 0 failed; last check)
connection_check_latency_seconds    gauge      connection (last check)
==================================  =========  ==========================================
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.monitoring.records import EventRecord

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from headwater.metadata.store import MetadataStore

__all__ = ["DURATION_BUCKETS", "RunMetrics", "WorkspaceMetrics", "metrics_text", "serve"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class RunMetrics:
    """Counters, histograms and gauges fed by :meth:`observe` (thread-safe)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "headwater_runs",
            "Finished runs by pipeline and status.",
            ["pipeline", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            "headwater_step_duration_seconds",
            "Duration of finished step attempts.",
            ["pipeline", "step", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "headwater_rows_processed", "Rows written by steps.", ["pipeline", "step"], registry=r
        )
        self.bytes = Counter(
            "headwater_bytes_processed", "Bytes written by steps.", ["pipeline", "step"], registry=r
        )
        self.retries = Counter(
            "headwater_step_retries",
            "Step attempts retried after a transient error.",
            ["pipeline", "step"],
            registry=r,
        )
        self.lag = Gauge(
            "headwater_scheduler_lag_seconds",
            "Time the most recently started step waited between queued and started.",
            ["pipeline"],
            registry=r,
        )
        self.connection_up = Gauge(
            "headwater_connection_up",
            "1 if the last check of a connection passed, else 0.",
            ["connection"],
            registry=r,
        )
        self.connection_latency = Gauge(
            "headwater_connection_check_latency_seconds",
            "Latency of the last check of a connection.",
            ["connection"],
            registry=r,
        )
        self._queued: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def observe(self, record: EventRecord) -> None:
        pipeline = str(record.payload.get("pipeline") or "")
        step = record.step or ""
        with self._lock:
            if record.type == "step_queued":
                self._queued[(record.run_id, step)] = record.ts
            elif record.type == "step_started":
                queued = self._queued.pop((record.run_id, step), None)
                if queued is not None:
                    self.lag.labels(pipeline).set(max((record.ts - queued).total_seconds(), 0.0))
            elif record.type == "step_retried":
                self.retries.labels(pipeline, step).inc()
            elif record.type == "step_finished":
                status = str(record.payload.get("status"))
                if status != "skipped":
                    self.step_duration.labels(pipeline, step, status).observe(
                        float(record.payload.get("seconds") or 0.0)
                    )
                self.rows.labels(pipeline, step).inc(int(record.payload.get("rows_out") or 0))
                self.bytes.labels(pipeline, step).inc(int(record.payload.get("bytes") or 0))
            elif record.type == "run_finished":
                self.runs.labels(pipeline, str(record.payload.get("status"))).inc()
                for key in [k for k in self._queued if k[0] == record.run_id]:
                    del self._queued[key]

    def observe_check(self, connection: str, status: str, latency_ms: float) -> None:
        self.connection_up.labels(connection).set(1.0 if status == "ok" else 0.0)
        self.connection_latency.labels(connection).set(latency_ms / 1000.0)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class WorkspaceMetrics:
    """A Prometheus collector over a workspace's metadata; refreshes on every scrape."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.metrics = RunMetrics()
        self._last_id = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the events stored since the last refresh, and the latest connection checks."""
        from headwater.monitoring.history import connection_checks, events_after

        with self._lock:
            while True:
                records, last = events_after(self.store, self._last_id)
                for record in records:
                    self.metrics.observe(record)
                self._last_id = last
                if not records:
                    break
            latest: dict[str, Any] = {}
            for row in connection_checks(self.store, limit=1000):
                latest.setdefault(row.connection, row)
            for name, row in latest.items():
                self.metrics.observe_check(name, row.status, row.latency_ms)

    def collect(self) -> Iterable[Metric]:
        self.refresh()
        return self.metrics.registry.collect()

    def text(self) -> bytes:
        self.refresh()
        return self.metrics.text()


def metrics_text(store: MetadataStore) -> bytes:
    """The Prometheus text exposition of a workspace's metrics, from scratch."""
    return WorkspaceMetrics(store).text()


def serve(store: MetadataStore, port: int, addr: str = "127.0.0.1") -> tuple[Any, Any]:
    """Start prometheus_client's HTTP server on ``addr:port`` (a daemon thread).

    Returns ``(server, thread)``; ``server.server_port`` is the bound port (``port=0``
    picks a free one); ``server.shutdown()`` stops it.
    """
    from prometheus_client import start_http_server

    return start_http_server(port, addr=addr, registry=WorkspaceMetrics(store))
