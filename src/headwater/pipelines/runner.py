"""The runner: executes a planned pipeline, independent steps in parallel.

Step attempts are submitted through one place, :meth:`Runner._submit`, to a
``concurrent.futures.Executor`` (a thread pool by default: DuckDB, Arrow and deltalake
release the GIL). The control flow stays here, in the calling thread:

* a step starts when every step before it succeeded (or failed with
  ``on_failure: continue``); when one failed or was skipped, it is ``skipped``;
* ``when:`` is evaluated just before a step would start; false means ``skipped``;
* a ``Transient`` error is retried up to ``retries`` times after an exponential backoff
  with jitter (``retry_delay * 2**(attempt-1)``, shortened by up to half at random); the
  wait happens here, not in a worker;
* ``timeout:`` bounds each attempt; an attempt past it fails with
  :class:`~headwater.errors.StepTimeoutError` (a thread cannot be stopped from outside:
  its late result is discarded);
* ``on_failure: <handler>`` runs the handler step after the failure;
* a resume hands in the outcomes of the steps it reuses: they are recorded as
  ``reused`` and never run again.

Every run and step is recorded in metadata as it happens, so a crashed process leaves
a truthful trail; each succeeded step records the versions of the datasets it wrote.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from headwater.errors import HeadwaterError, StepTimeoutError, Transient
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
    StepSkipped,
    StepStarted,
)
from headwater.pipelines.steps import RunContext, execute_step
from headwater.transform.refs import DATASET_NAME_PATTERN

__all__ = ["Runner", "format_seconds", "new_run_id", "run_step_attempt"]

_DATASET = re.compile(DATASET_NAME_PATTERN)
_MAX_DELAY = 3600.0


def new_run_id() -> str:
    return uuid.uuid4().hex


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HeadwaterError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def format_seconds(seconds: float) -> str:
    """``90.0`` -> ``90s``, ``900`` -> ``15m``, ``7200`` -> ``2h``."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def run_step_attempt(ctx: RunContext, step: Any) -> StepOutcome:
    """The work of one attempt of one step (what the executor runs)."""
    return execute_step(ctx, step)


def retry_delay(base: float, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before the retry after failed attempt ``attempt`` (1-based), with jitter."""
    full = min(base * 2.0 ** min(attempt - 1, 32), _MAX_DELAY)
    fraction: float = (rng or random).random()
    return full * (0.5 + 0.5 * fraction)


@dataclass
class _Attempt:
    name: str
    attempt: int
    started: float
    deadline: float | None


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
        executor: Executor | None = None,
        reuse: Mapping[str, StepOutcome] | None = None,
        run_params: Mapping[str, Any] | None = None,
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
        self._executor = executor
        self._reuse = dict(reuse or {})
        self._run_params = dict(run_params or {})
        self._abandoned: list[Future[StepOutcome]] = []
        # how one step attempt executes: in this thread, or on a process/Dask executor
        self._execute = execute or run_step_attempt

    def _emit(self, event: Event) -> None:
        for handler in self._handlers:
            with contextlib.suppress(Exception):  # a display must never break a run
                handler(event)

    def _submit(self, executor: Executor, name: str) -> Future[StepOutcome]:
        """The one place step work goes to the executor."""
        return executor.submit(self._execute, self.ctx, self._steps[name])

    # -- the run -------------------------------------------------------------------------

    def run(self) -> RunResult:
        own = self._executor is None
        executor = self._executor or ThreadPoolExecutor(
            max_workers=self.max_parallel, thread_name_prefix="hw-step"
        )
        try:
            return self._run(executor)
        finally:
            if own:
                # a timed-out attempt's thread cannot be stopped: do not wait for it
                executor.shutdown(wait=not self._abandoned, cancel_futures=True)

    def _run(self, executor: Executor) -> RunResult:
        ctx = self.ctx
        started = time.monotonic()
        order: list[str] = list(self.plan.order)
        ctx.store.start_run(
            ctx.run_id,
            ctx.pipeline,
            pipeline_file=self.pipeline_file,
            trigger=self.trigger,
            params={"pid": os.getpid(), "host": socket.gethostname(), **self._run_params},
        )
        ids = ctx.store.add_step_runs(ctx.run_id, [(n, self._steps[n].type) for n in order])
        self._rows = dict(zip(order, ids, strict=True))
        self._emit(
            RunStarted(
                ctx.run_id,
                pipeline=ctx.pipeline,
                steps=tuple((n, self._steps[n].type) for n in order),
            )
        )
        handlers = {
            s.on_failure for s in self._steps.values() if s.on_failure not in ("fail", "continue")
        }
        self._outcomes: dict[str, StepOutcome] = {}
        passable: set[str] = set()  # settled so that the steps after it may run
        triggered: set[str] = set()
        self._passable, self._triggered = passable, triggered
        running: dict[Future[StepOutcome], _Attempt] = {}
        waiting: dict[str, tuple[float, int]] = {}  # retry: name -> (not before, attempt)

        for name in order:
            if name in self._reuse:
                self._settle_reused(name)
                passable.add(name)

        def busy(name: str) -> bool:
            return (
                name in self._outcomes
                or name in waiting
                or any(a.name == name for a in running.values())
            )

        while len(self._outcomes) < len(order):
            now = time.monotonic()
            settled_before = len(self._outcomes)
            for name in order:
                if busy(name):
                    continue
                ups = self.plan.upstream(name)
                if name in handlers:
                    if name not in triggered or not all(u in self._outcomes for u in ups):
                        continue
                else:
                    blocked = [u for u in ups if u in self._outcomes and u not in passable]
                    if blocked:
                        self._skip(name, f"upstream step `{blocked[0]}` " + self._why(blocked[0]))
                        continue
                    if not all(u in passable for u in ups):
                        continue
                if not self._condition_holds(name):
                    continue
                running[self._start(executor, name, 1)] = self._attempt(name, 1)
            for name, (not_before, attempt) in list(waiting.items()):
                if not_before <= now:
                    del waiting[name]
                    running[self._start(executor, name, attempt)] = self._attempt(name, attempt)
            if not running and not waiting:
                if len(self._outcomes) > settled_before:
                    continue  # something settled: look again
                for name in [n for n in order if n not in self._outcomes]:
                    reason = (
                        "no step failed that it handles"
                        if name in handlers
                        else "its upstream steps did not all succeed"
                    )
                    self._skip(name, reason)
                break
            timeout = self._next_wakeup(running, waiting) - time.monotonic()
            finished, _ = wait(
                list(running), timeout=max(0.0, timeout), return_when=FIRST_COMPLETED
            )
            for future in finished:
                info = running.pop(future)
                outcome = self._finish(future, info, waiting)
                if outcome is not None:
                    self._after(outcome, passable, triggered)
            now = time.monotonic()
            for future, info in list(running.items()):
                if info.deadline is not None and now >= info.deadline:
                    running.pop(future)
                    future.cancel()
                    self.ctx.cancelled.add(info.name)  # its next batch stops it
                    self._abandoned.append(future)
                    outcome = self._timed_out(info)
                    self._after(outcome, passable, triggered)

        failures = [
            o
            for o in self._outcomes.values()
            if o.status == "failed" and self._steps[o.name].on_failure != "continue"
        ]
        status = "failed" if failures else "succeeded"
        error = "; ".join(f"{o.name}: {o.error}" for o in failures) or None
        ctx.store.finish_run(ctx.run_id, status, error)
        result = RunResult(
            ctx.run_id,
            ctx.pipeline,
            status,
            [self._outcomes[name] for name in order if name in self._outcomes],
            seconds=time.monotonic() - started,
            error=error,
        )
        self._emit(RunFinished(ctx.run_id, result=result))
        return result

    def _why(self, name: str) -> str:
        status = self._outcomes[name].status
        return "failed" if status == "failed" else "was skipped"

    def _attempt(self, name: str, attempt: int) -> _Attempt:
        timeout = self._steps[name].timeout
        now = time.monotonic()
        return _Attempt(name, attempt, now, now + timeout if timeout else None)

    @staticmethod
    def _next_wakeup(
        running: dict[Future[StepOutcome], _Attempt], waiting: dict[str, tuple[float, int]]
    ) -> float:
        times = [a.deadline for a in running.values() if a.deadline is not None]
        times += [t for t, _ in waiting.values()]
        return min(times) if times else time.monotonic() + 3600.0

    # -- one step ------------------------------------------------------------------------

    def _start(self, executor: Executor, name: str, attempt: int) -> Future[StepOutcome]:
        step = self._steps[name]
        if attempt == 1:
            self._emit(StepQueued(self.ctx.run_id, step=name, kind=step.type))
        self.ctx.store.update_step_run(
            self._rows[name], status="running", started_at=utcnow(), attempt=attempt
        )
        self._emit(StepStarted(self.ctx.run_id, step=name, kind=step.type, attempt=attempt))
        return self._submit(executor, name)

    def _finish(
        self,
        future: Future[StepOutcome],
        info: _Attempt,
        waiting: dict[str, tuple[float, int]],
    ) -> StepOutcome | None:
        name, step = info.name, self._steps[info.name]
        seconds = time.monotonic() - info.started
        try:
            outcome = future.result()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # also Rust panics (pyo3 PanicException)
            if isinstance(exc, Transient) and info.attempt <= step.retries:
                delay = retry_delay(step.retry_delay, info.attempt)
                waiting[name] = (time.monotonic() + delay, info.attempt + 1)
                self._emit(
                    StepRetried(
                        self.ctx.run_id,
                        step=name,
                        kind=step.type,
                        attempt=info.attempt,
                        delay=delay,
                        error=self.ctx.connections.scrub(
                            exc.message if isinstance(exc, HeadwaterError) else _describe(exc)
                        ),
                    )
                )
                return None
            return self._record(self._failed(name, exc, seconds))
        outcome = StepOutcome(**{**outcome.__dict__, "seconds": seconds})
        versions = self._versions(step, outcome)
        if versions:
            outcome.details["dataset_versions"] = versions
            from headwater.metadata.versions import record_step_outputs

            record_step_outputs(self.ctx.store, self.ctx.run_id, name, versions)
        return self._record(outcome)

    def _failed(self, name: str, exc: BaseException, seconds: float) -> StepOutcome:
        step = self._steps[name]
        if isinstance(exc, HeadwaterError):
            self.ctx.connections.scrub_error(exc)
        if isinstance(exc, HeadwaterError):
            details: dict[str, Any] = {"error": exc.attrs()}
            if exc.remote_traceback:  # raised in a process or Dask worker
                details["traceback"] = exc.remote_traceback
        else:
            details = {"traceback": self.ctx.connections.scrub(traceback.format_exc())}
        return StepOutcome(
            name,
            step.type,
            "failed",
            seconds=seconds,
            error=self.ctx.connections.scrub(_describe(exc)),
            error_type=type(exc).__name__,
            details=details,
        )

    def _timed_out(self, info: _Attempt) -> StepOutcome:
        step = self._steps[info.name]
        limit = format_seconds(step.timeout or 0.0)
        exc = StepTimeoutError(
            f"step `{info.name}` timed out: attempt {info.attempt} ran longer than its "
            f"`timeout: {limit}`",
            step=info.name,
            field="timeout",
            location=getattr(step, "location", None),
            hint="Raise `timeout:` on the step, or make the step do less per run.",
            timeout=step.timeout,
        )
        return self._record(self._failed(info.name, exc, time.monotonic() - info.started))

    def _record(self, outcome: StepOutcome) -> StepOutcome:
        self.ctx.store.update_step_run(
            self._rows[outcome.name],
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
        self._outcomes[outcome.name] = outcome
        self._emit(StepFinished(self.ctx.run_id, outcome=outcome))
        return outcome

    def _after(self, outcome: StepOutcome, passable: set[str], triggered: set[str]) -> None:
        step = self._steps[outcome.name]
        if outcome.status in ("succeeded", "up_to_date"):
            passable.add(outcome.name)
        elif outcome.status == "failed":
            if step.on_failure == "continue":
                passable.add(outcome.name)
            elif step.on_failure != "fail":
                triggered.add(step.on_failure)

    def _skip(self, name: str, reason: str, *, status: str = "skipped") -> None:
        outcome = StepOutcome(
            name, self._steps[name].type, status, error=reason, details={"reason": reason}
        )
        self.ctx.store.update_step_run(
            self._rows[name], status=status, error=reason, details={"reason": reason}
        )
        self._outcomes[name] = outcome
        self._emit(StepSkipped(self.ctx.run_id, step=name, reason=reason))
        self._emit(StepFinished(self.ctx.run_id, outcome=outcome))

    def _settle_reused(self, name: str) -> None:
        previous = self._reuse[name]
        outcome = StepOutcome(**{**previous.__dict__, "status": "reused"})
        versions = dict(previous.details.get("dataset_versions") or {})
        self.ctx.store.update_step_run(
            self._rows[name],
            status="reused",
            rows_in=outcome.rows_in,
            rows_out=outcome.rows_out,
            rows_quarantined=outcome.rows_quarantined,
            bytes=outcome.bytes,
            inputs=list(outcome.inputs),
            outputs=list(outcome.outputs),
            details=_jsonable(outcome.details),
        )
        if versions:
            from headwater.metadata.versions import record_step_outputs

            record_step_outputs(self.ctx.store, self.ctx.run_id, name, versions)
        self._outcomes[name] = outcome
        reused_from = outcome.details.get("reused_from", "")
        self._emit(StepSkipped(self.ctx.run_id, step=name, reason=f"reused from {reused_from}"))
        self._emit(StepFinished(self.ctx.run_id, outcome=outcome))

    def _versions(self, step: Any, outcome: StepOutcome) -> dict[str, int]:
        """The versions of the datasets the step wrote, as they are right after it."""
        names = [d for d in (*step.outputs(), *outcome.outputs) if _DATASET.match(d)]
        versions: dict[str, int] = {}
        for dataset in dict.fromkeys(names):
            with contextlib.suppress(HeadwaterError):
                if self.ctx.lake.exists(dataset):
                    versions[dataset] = int(self.ctx.lake.version(dataset))
        return versions

    # -- conditions ----------------------------------------------------------------------

    def _condition_holds(self, name: str) -> bool:
        """Evaluate ``when:``; a false condition (or one that fails) settles the step."""
        condition = self._steps[name].when
        if condition is None:
            return True
        from headwater.pipelines.templating import (
            TemplateRenderError,
            evaluate,
            expression_text,
        )

        bindings = self.spec.bindings
        context = bindings.context(bindings.items.get(name), with_item=name in bindings.items)
        context["steps"] = {n: step_context(o) for n, o in self._outcomes.items()}
        try:
            value = evaluate(expression_text(condition), context)
        except TemplateRenderError as exc:
            error = HeadwaterError(
                f"step `{name}`: `when` could not be evaluated: {exc.message}",
                step=name,
                field="when",
                location=self.spec.location_of(("steps", name, "when")),
            )
            outcome = self._record(self._failed(name, error, 0.0))
            self._after(outcome, self._passable, self._triggered)
            return False
        if value:
            return True
        self._skip(name, f"`when: {condition}` is false")
        return False


def step_context(outcome: StepOutcome) -> dict[str, Any]:
    """What ``steps.<name>`` holds in a ``when:`` condition."""
    raw_checks = outcome.details.get("checks")
    if raw_checks is None and isinstance(outcome.details.get("error"), dict):
        raw_checks = outcome.details["error"].get("checks")
    checks = {
        str(c.get("name")): {
            "passed": bool(c.get("passed")),
            "rows_failed": int(c.get("rows_failed") or 0),
            "severity": c.get("severity"),
        }
        for c in (raw_checks or [])
        if isinstance(c, dict)
    }
    succeeded = outcome.status in ("succeeded", "reused", "up_to_date")
    return {
        "status": outcome.status,
        "succeeded": succeeded,
        "failed": outcome.status == "failed",
        "skipped": outcome.status == "skipped",
        "passed": succeeded and all(c["passed"] for c in checks.values()),
        "checks": checks,
        "rows_in": outcome.rows_in,
        "rows_out": outcome.rows_out,
        "rows_quarantined": outcome.rows_quarantined,
        "bytes": outcome.bytes,
        "seconds": outcome.seconds,
        "error": outcome.error or "",
        "outputs": list(outcome.outputs),
    }


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
