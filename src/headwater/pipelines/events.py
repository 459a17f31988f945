"""Events a run emits, for progress displays, logs, SSE and metrics.

Handlers are called from the runner's worker threads; they must be quick and
thread-safe (the CLI only updates counters that its display reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Event",
    "EventHandler",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "StepFinished",
    "StepOutcome",
    "StepProgress",
    "StepQueued",
    "StepRetried",
    "StepSkipped",
    "StepStarted",
]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StepOutcome:
    """What one step did."""

    name: str
    kind: str
    status: str  # succeeded | failed | skipped
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """rows_in == rows_out + rows_quarantined (+ rows a merge superseded by a later row
        with the same key): nothing lost, nothing doubled."""
        superseded = int(self.details.get("rows_superseded", 0) or 0)
        return self.rows_in == self.rows_out + self.rows_quarantined + superseded


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run."""

    run_id: str
    pipeline: str
    status: str  # succeeded | failed
    steps: list[StepOutcome]
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def step(self, name: str) -> StepOutcome:
        for outcome in self.steps:
            if outcome.name == name:
                return outcome
        raise KeyError(name)


@dataclass(frozen=True)
class Event:
    run_id: str
    at: datetime = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class RunStarted(Event):
    pipeline: str
    steps: tuple[tuple[str, str], ...]  # (name, kind) in plan order


@dataclass(frozen=True)
class StepQueued(Event):
    """The step's upstream steps are done; it was handed to the executor."""

    step: str
    kind: str


@dataclass(frozen=True)
class StepRetried(Event):
    """An attempt failed with a ``Transient`` error; the next starts after ``delay`` s."""

    step: str
    kind: str
    attempt: int  # the attempt that failed
    error: str
    delay: float


@dataclass(frozen=True)
class StepStarted(Event):
    step: str
    kind: str
    attempt: int = 1


@dataclass(frozen=True)
class StepProgress(Event):
    step: str
    rows: int  # rows processed so far by this step


@dataclass(frozen=True)
class StepFinished(Event):
    outcome: StepOutcome


@dataclass(frozen=True)
class StepSkipped(Event):
    """A step will not run: its ``when`` is false, an upstream step failed or was skipped,
    it is a failure handler nothing called, or a resume reused its earlier result."""

    step: str
    reason: str


@dataclass(frozen=True)
class RunFinished(Event):
    result: RunResult


EventHandler = Callable[[Event], None]
