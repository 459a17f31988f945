"""The local runner: executes a planned pipeline, independent steps in parallel.

Steps run on a thread pool (DuckDB, Arrow and deltalake release the GIL). A
failed step marks everything downstream ``skipped``; independent branches go
on. Every run and step is recorded in metadata as it happens, so a crashed
process leaves a truthful trail. ``Transient`` errors are retried up to the
step's ``retries``; everything else fails at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from headwater.errors import HeadwaterError, Transient
from headwater.metadata.models import utcnow
from headwater.pipelines.events import (
    Event,
    RunFinished,
    RunResult,
    RunStarted,
    StepFinished,
    StepOutcome,
    StepQueued,
    StepRetried,
    StepStarted,
)
from headwater.pipelines.steps import RunContext, execute_step

__all__ = ["Runner", "new_run_id"]


def new_run_id() -> str:
    return uuid.uuid4().hex


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HeadwaterError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Runner:
    """Runs one plan; ``on_event`` receives progress from worker threads."""

    def __init__(
        self,
        ctx: RunContext,
        spec: Any,
        plan: Any,
        *,
        max_parallel: int = 4,
        pipeline_file: str | None = None,
        trigger: str = "manual",
        on_event: Callable[[Event], None] | None = None,
        execute: Callable[[RunContext, Any], StepOutcome] | None = None,
    ) -> None:
        self.ctx = ctx
        self.spec = spec
        self.plan = plan
        self.max_parallel = max_parallel
        self.pipeline_file = pipeline_file
        self.trigger = trigger
        self._handlers = [on_event] if on_event else []
        ctx.emit = self._emit
        self._steps = {s.name: s for s in spec.steps}
        # how one step attempt executes: in this thread, or on a process/Dask executor
        self._execute = execute or execute_step

    def _emit(self, event: Event) -> None:
        for handler in self._handlers:
            with contextlib.suppress(Exception):  # a display must never break a run
                handler(event)

    def run(self) -> RunResult:
        ctx = self.ctx
        started = time.monotonic()
        order: list[str] = list(self.plan.order)
        ctx.store.start_run(
            ctx.run_id,
            ctx.pipeline,
            pipeline_file=self.pipeline_file,
            trigger=self.trigger,
            params={"pid": os.getpid(), "host": socket.gethostname()},
        )
        ids = ctx.store.add_step_runs(ctx.run_id, [(n, self._steps[n].type) for n in order])
        step_rows = dict(zip(order, ids, strict=True))
        self._emit(
            RunStarted(
                ctx.run_id,
                pipeline=ctx.pipeline,
                steps=tuple((n, self._steps[n].type) for n in order),
            )
        )

        outcomes: dict[str, StepOutcome] = {}
        done: set[str] = set()
        failed_or_skipped: set[str] = set()
        running: dict[Future[StepOutcome], str] = {}
        with ThreadPoolExecutor(
            max_workers=self.max_parallel, thread_name_prefix="hw-step"
        ) as pool:
            while len(outcomes) < len(order):
                for name in self.plan.ready(done, set(running.values())):
                    if name in outcomes or name in running.values():
                        continue
                    self._emit(StepQueued(ctx.run_id, step=name, kind=self._steps[name].type))
                    running[pool.submit(self._run_step, name, step_rows[name])] = name
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    outcome = future.result()
                    outcomes[name] = outcome
                    if outcome.status == "succeeded":
                        done.add(name)
                        continue
                    failed_or_skipped.add(name)
                    for down in self.plan.downstream(name, transitive=True):
                        if down not in outcomes:
                            skipped = StepOutcome(
                                down,
                                self._steps[down].type,
                                "skipped",
                                error=f"upstream step `{name}` failed",
                            )
                            outcomes[down] = skipped
                            failed_or_skipped.add(down)
                            ctx.store.update_step_run(
                                step_rows[down], status="skipped", error=skipped.error
                            )
                            self._emit(StepFinished(ctx.run_id, outcome=skipped))
                    # a step whose upstream failed can never become ready: mark as done-for-loop
                # steps blocked forever (downstream of failures) are already in outcomes

        failures = [o for o in outcomes.values() if o.status == "failed"]
        status = "failed" if failures else "succeeded"
        error = "; ".join(f"{o.name}: {o.error}" for o in failures) or None
        ctx.store.finish_run(ctx.run_id, status, error)
        result = RunResult(
            ctx.run_id,
            ctx.pipeline,
            status,
            [outcomes[name] for name in order if name in outcomes],
            seconds=time.monotonic() - started,
            error=error,
        )
        self._emit(RunFinished(ctx.run_id, result=result))
        return result

    def _run_step(self, name: str, step_run_id: int) -> StepOutcome:
        step = self._steps[name]
        retries = int(getattr(step, "retries", 0) or 0)
        delay = float(getattr(step, "retry_delay", 1.0) or 1.0)
        store = self.ctx.store
        attempt = 0
        while True:
            attempt += 1
            t0 = time.monotonic()
            store.update_step_run(
                step_run_id, status="running", started_at=utcnow(), attempt=attempt
            )
            self._emit(StepStarted(self.ctx.run_id, step=name, kind=step.type, attempt=attempt))
            try:
                outcome = self._execute(self.ctx, step)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # also Rust panics (pyo3 PanicException)
                if isinstance(exc, Transient) and attempt <= retries:
                    wait_s = min(delay * 2 ** (attempt - 1), 3600.0)
                    self._emit(
                        StepRetried(
                            self.ctx.run_id,
                            step=name,
                            kind=step.type,
                            attempt=attempt,
                            error=self.ctx.connections.scrub(_describe(exc)),
                            delay=wait_s,
                        )
                    )
                    time.sleep(wait_s)
                    continue
                if isinstance(exc, HeadwaterError):
                    self.ctx.connections.scrub_error(exc)
                outcome = StepOutcome(
                    name,
                    step.type,
                    "failed",
                    seconds=time.monotonic() - t0,
                    error=self.ctx.connections.scrub(_describe(exc)),
                    error_type=type(exc).__name__,
                    details={"error": exc.attrs()}
                    | ({"traceback": exc.remote_traceback} if exc.remote_traceback else {})
                    if isinstance(exc, HeadwaterError)
                    else {"traceback": self.ctx.connections.scrub(traceback.format_exc())},
                )
            else:
                outcome = StepOutcome(**{**outcome.__dict__, "seconds": time.monotonic() - t0})
            store.update_step_run(
                step_run_id,
                status=outcome.status,
                ended_at=utcnow(),
                rows_in=outcome.rows_in,
                rows_out=outcome.rows_out,
                rows_quarantined=outcome.rows_quarantined,
                bytes=outcome.bytes,
                inputs=list(outcome.inputs),
                outputs=list(outcome.outputs),
                error=outcome.error,
                details=_jsonable(outcome.details),
            )
            self._emit(StepFinished(self.ctx.run_id, outcome=outcome))
            return outcome


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
