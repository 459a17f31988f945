"""Run events as flat records: one shape for the metadata table, the JSON log and metrics.

A record is ``{"run_id", "seq", "ts", "type", "step", "level", ...payload}``; the
``type`` is one of :data:`EVENT_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headwater.pipelines.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepProgress,
    StepQueued,
    StepRetried,
    StepStarted,
)

__all__ = ["EVENT_TYPES", "EventRecord", "to_record"]

EVENT_TYPES = (
    "run_started",
    "step_queued",
    "step_started",
    "step_progress",
    "step_retried",
    "step_finished",
    "run_finished",
)


@dataclass(frozen=True)
class EventRecord:
    run_id: str
    seq: int
    ts: datetime
    type: str
    step: str | None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> str:
        if self.type == "step_retried":
            return "warning"
        if self.payload.get("status") == "failed":
            return "error"
        return "info"

    def to_json(self) -> dict[str, Any]:
        """The JSON log line (and ``headwater runs logs`` output) of this record."""
        return {
            "ts": self.ts.isoformat(),
            "run_id": self.run_id,
            "seq": self.seq,
            "level": self.level,
            "event": self.type,
            **({"step": self.step} if self.step else {}),
            **self.payload,
        }


def to_record(event: Event, seq: int, pipeline: str) -> EventRecord | None:
    """The record of a runner event, or None for an event type not recorded."""
    base: dict[str, Any] = {"pipeline": pipeline}
    if isinstance(event, RunStarted):
        steps = [{"name": n, "kind": k} for n, k in event.steps]
        return EventRecord(
            event.run_id, seq, event.at, "run_started", None, base | {"steps": steps}
        )
    if isinstance(event, StepQueued):
        return EventRecord(
            event.run_id, seq, event.at, "step_queued", event.step, base | {"kind": event.kind}
        )
    if isinstance(event, StepStarted):
        payload = base | {"kind": event.kind, "attempt": event.attempt}
        return EventRecord(event.run_id, seq, event.at, "step_started", event.step, payload)
    if isinstance(event, StepProgress):
        payload = base | {"rows": event.rows}
        return EventRecord(event.run_id, seq, event.at, "step_progress", event.step, payload)
    if isinstance(event, StepRetried):
        payload = base | {
            "kind": event.kind,
            "attempt": event.attempt,
            "error": event.error,
            "delay_s": round(event.delay, 3),
        }
        return EventRecord(event.run_id, seq, event.at, "step_retried", event.step, payload)
    if isinstance(event, StepFinished):
        o = event.outcome
        payload = base | {
            "kind": o.kind,
            "status": o.status,
            "rows_in": o.rows_in,
            "rows_out": o.rows_out,
            "rows_quarantined": o.rows_quarantined,
            "bytes": o.bytes,
            "seconds": round(o.seconds, 6),
        }
        if o.error:
            payload |= {"error": o.error, "error_type": o.error_type}
        return EventRecord(event.run_id, seq, event.at, "step_finished", o.name, payload)
    if isinstance(event, RunFinished):
        r = event.result
        payload = base | {
            "status": r.status,
            "seconds": round(r.seconds, 6),
            "rows_out": sum(s.rows_out for s in r.steps),
            "bytes": sum(s.bytes for s in r.steps),
        }
        if r.error:
            payload["error"] = r.error
        return EventRecord(event.run_id, seq, event.at, "run_finished", None, payload)
    return None
