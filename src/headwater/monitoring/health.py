"""Connection health checks: run a connector's check, time it, record the outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from headwater.errors import ConfigError, ConnectionNotFoundError, HeadwaterError

if TYPE_CHECKING:
    from headwater.workspace import Workspace

__all__ = ["HealthCheck", "check_connection", "check_history"]


@dataclass(frozen=True)
class HealthCheck:
    connection: str
    status: str  # ok | failed
    latency_ms: float
    checked_at: datetime | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_connection(ws: Workspace, name: str) -> HealthCheck:
    """Check a connection (reachability, credentials, paths) and record status and latency.

    A connection that is not declared (or declared wrongly) raises: that is a mistake to
    fix, not an outage to record. Any other failure is recorded as ``failed`` with its
    (secret-free) message and returned.
    """
    if name not in ws.connections.names():
        ws.connections.info(name)  # raises ConnectionNotFoundError with the choices
    started = time.perf_counter()
    error: str | None = None
    try:
        ws.connections.test(name)
    except (ConnectionNotFoundError, ConfigError):
        raise
    except HeadwaterError as exc:
        error = ws.connections.scrub(str(exc))
    latency_ms = (time.perf_counter() - started) * 1000.0
    from headwater.monitoring.history import add_connection_check

    row = add_connection_check(
        ws.store, name, "failed" if error else "ok", round(latency_ms, 3), error
    )
    return HealthCheck(name, row.status, row.latency_ms, row.checked_at, error)


def check_history(ws: Workspace, name: str, *, limit: int = 10) -> list[HealthCheck]:
    """The most recent checks of a connection, newest first."""
    from headwater.metadata.store import MetadataStore
    from headwater.monitoring.history import connection_checks

    return [
        HealthCheck(
            r.connection, r.status, r.latency_ms, MetadataStore.as_utc(r.checked_at), r.error
        )
        for r in connection_checks(ws.store, name, limit=limit)
    ]
