"""Backfills: one run of a pipeline per time interval, a few at a time, resumable.

``headwater backfill FILE --from 2024-01-01 --to 2024-02-01 --every day`` runs the
pipeline once per interval (templates see ``{{ interval.start }}``,
``{{ interval.end }}``), at most ``concurrency`` at once. Each run is an ordinary run
with trigger ``backfill`` that records its interval; running the same backfill again
(same pipeline, ``every`` and parameters) skips the intervals that already succeeded and
runs the failed and missing ones again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, HeadwaterError
from headwater.metadata.versions import runs_by_trigger
from headwater.pipelines.intervals import Interval, intervals
from headwater.pipelines.params import to_json

if TYPE_CHECKING:
    from headwater.workspace import Workspace

__all__ = ["BackfillResult", "IntervalOutcome", "backfill"]

TRIGGER = "backfill"


@dataclass(frozen=True)
class IntervalOutcome:
    """What happened to one interval: ``succeeded``, ``failed`` or ``skipped`` (done before)."""

    interval: Interval
    status: str
    run_id: str | None = None
    seconds: float = 0.0
    error: str | None = None
    done: int = 0  # intervals finished so far, this one included
    total: int = 0


@dataclass
class BackfillResult:
    pipeline: str
    outcomes: list[IntervalOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def _succeeded_keys(
    ws: Workspace, pipeline: str, every: str, params: Mapping[str, Any]
) -> dict[str, str]:
    """Interval key -> id of a succeeded backfill run with the same every and params."""
    out: dict[str, str] = {}
    for run in runs_by_trigger(ws.store, pipeline, TRIGGER):
        p = run.params or {}
        interval = p.get("interval")
        if run.status != "succeeded" or not isinstance(interval, dict):
            continue
        if interval.get("every") == every and (p.get("params") or {}) == dict(params):
            out[str(interval.get("key"))] = run.id
    return out


def backfill(
    ws: Workspace,
    pipeline: str | Path,
    *,
    start: str,
    end: str,
    every: str,
    concurrency: int = 1,
    params: Mapping[str, Any] | None = None,
    on_progress: Callable[[IntervalOutcome], None] | None = None,
) -> BackfillResult:
    """Run ``pipeline`` once per interval in ``[start, end)``; see the module docstring."""
    if concurrency < 1:
        raise ConfigError(
            f"`--concurrency` must be at least 1, got {concurrency}", field="concurrency"
        )
    try:
        todo = intervals(start, end, every)
    except ValueError as exc:
        raise ConfigError(
            f"invalid backfill range: {exc}",
            field="every" if "every" in str(exc) else "from",
            hint="For example `--from 2024-01-01 --to 2024-02-01 --every day` "
            "(the last interval ends at --to).",
        ) from None
    path = ws.pipeline_path(pipeline)
    first = ws.load_pipeline(path, params=params, interval=todo[0])  # fails early on bad input
    resolved = {k: to_json(v) for k, v in first.bindings.params.items()}
    done_before = _succeeded_keys(ws, first.name, every, resolved)
    result = BackfillResult(first.name)
    lock = threading.Lock()
    total = len(todo)

    def report(outcome: IntervalOutcome) -> None:
        with lock:
            counted = IntervalOutcome(
                **{**outcome.__dict__, "done": len(result.outcomes) + 1, "total": total}
            )
            result.outcomes.append(counted)
            if on_progress is not None:
                with contextlib.suppress(Exception):  # a display must never stop a backfill
                    on_progress(counted)

    def one(interval: Interval) -> None:
        started = time.monotonic()
        try:
            run = ws.run(path, params=params, interval=interval, trigger=TRIGGER)
        except HeadwaterError as exc:
            report(
                IntervalOutcome(
                    interval, "failed", seconds=time.monotonic() - started, error=str(exc)
                )
            )
            return
        report(
            IntervalOutcome(
                interval,
                "succeeded" if run.ok else "failed",
                run.run_id,
                time.monotonic() - started,
                run.error,
            )
        )

    pending = []
    for interval in todo:
        previous = done_before.get(interval.key)
        if previous is not None:
            report(IntervalOutcome(interval, "skipped", previous))
        else:
            pending.append(interval)
    if concurrency == 1:
        for interval in pending:
            one(interval)
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hw-backfill") as pool:
            list(pool.map(one, pending))
    result.outcomes.sort(key=lambda o: o.interval.start)
    return result
