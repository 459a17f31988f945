"""The scheduler: fires cron ticks, runs the queue, keeps one leader among many.

One :class:`Scheduler` per process. Each pass (every ``poll_seconds``):

1. take or renew the leader lease (``lease_seconds`` long); a standby takes over once
   the leader stops renewing, so a killed leader is replaced within the lease time;
2. as leader, reload the workspace's ``pipelines/`` when a file changed (refusing a
   trigger loop), and record the cron ticks due since the last pass, each in one
   transaction with its queued run; the unique (pipeline, scheduled_for) key makes a
   second scheduler's attempt at the same tick fail, so no tick is ever fired twice;
3. start queued runs (ticks, dataset triggers, manual requests) on worker threads,
   at most ``max_concurrent_runs`` per pipeline (1 for pipelines without a schedule);
4. give webhook notices left ``pending`` by a process that died between attempts one
   more attempt (five at most in all).

Runs execute in this process through :meth:`Workspace.run` on a thread pool: the steps
already run on threads (DuckDB, Arrow and Delta release the GIL), the run id and result
come back directly, and the dataset-trigger hook sees which scheduler request led to
the run. A killed scheduler leaves its runs ``running``; the metadata reaper marks them
failed on the host, and the next leader fails their requests, which never run twice
(runs still going in a live process of the host, as after a SIGTERM, are left to finish).

Time comes from ``clock`` (UTC), so tests drive DST nights and downtime precisely.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError, SchedulerError, TriggerCycleError
from headwater.metadata.models import utcnow
from headwater.metadata.store import MetadataStore
from headwater.pipelines.scheduling.cron import due_ticks
from headwater.pipelines.scheduling.queue import SchedulerStore
from headwater.pipelines.scheduling.triggers import (
    WorkspacePipelines,
    check_trigger_cycles,
    load_workspace_pipelines,
    trigger_chain,
)

if TYPE_CHECKING:
    from headwater.pipelines.events import Event
    from headwater.workspace import Workspace

__all__ = ["Pass", "Scheduler", "default_holder"]

log = logging.getLogger("headwater.scheduler")

Clock = Callable[[], datetime]


def default_holder() -> str:
    """``host:pid:random``: unique per process, readable in listings."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pass:
    """What one pass of the scheduler did."""

    leader: bool
    fired: list[tuple[str, datetime, int]] = field(default_factory=list)  # (pipeline, tick, req)
    started: list[int] = field(default_factory=list)  # request ids
    skipped: dict[str, int] = field(default_factory=dict)  # missed ticks not run, by pipeline


class Scheduler:
    """Fires schedules and runs queued pipelines of one workspace."""

    def __init__(
        self,
        ws: Workspace,
        *,
        holder: str | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        grace_seconds: float | None = None,
        max_workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        if lease_seconds <= 0 or poll_seconds <= 0 or poll_seconds * 2 > lease_seconds:
            raise SchedulerError(
                f"a lease of {lease_seconds:g}s with a pass every {poll_seconds:g}s: the lease "
                "must be positive and at least twice the poll interval, or it lapses between "
                "two renewals",
                field="lease_seconds",
                hint="For example --lease-seconds 30 --poll-seconds 1.",
            )
        self.ws = ws
        self.holder = holder or default_holder()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.grace = timedelta(
            seconds=grace_seconds if grace_seconds is not None else max(60.0, 3 * poll_seconds)
        )
        self.max_workers = max_workers
        self.clock: Clock = clock or _utc_now
        self.queue = SchedulerStore(ws.store)
        self.is_leader = False
        self._standing_by = False
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hw-sched")
        self._running: dict[Future[None], int] = {}
        self._notice_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hw-notice")
        self._notices: Future[None] | None = None
        self._pipelines: WorkspacePipelines | None = None
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._reported: set[tuple[str, float]] = set()
        _ = ws.lake  # create the lake once, before worker threads share it

    # -- pipelines -----------------------------------------------------------------------
    def _files_stamp(self) -> tuple[tuple[str, float], ...]:
        folder = self.ws.root / "pipelines"
        if not folder.is_dir():
            return ()
        paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
        out = []
        for path in paths:
            try:
                out.append((str(path), path.stat().st_mtime))
            except OSError:
                continue
        return tuple(out)

    def load(self, *, strict: bool = False) -> WorkspacePipelines:
        """The workspace's pipelines, reloaded when a file changed.

        A trigger loop raises :class:`TriggerCycleError` when ``strict`` (at start);
        later, the previous pipelines stay in force and the loop is logged.
        """
        stamp = self._files_stamp()
        if self._pipelines is not None and stamp == self._stamp:
            return self._pipelines
        loaded = load_workspace_pipelines(self.ws.root)
        for path, exc in loaded.errors.items():
            key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
            if key not in self._reported:
                self._reported.add(key)
                log.error("%s does not load, not scheduled: %s", path.name, exc)
        try:
            check_trigger_cycles(loaded)
        except TriggerCycleError as exc:
            if strict or self._pipelines is None:
                raise
            log.error("%s; keeping the pipelines loaded before", exc)
            self._stamp = stamp
            return self._pipelines
        if self._pipelines is not None:
            log.info("pipelines reloaded: %s", ", ".join(sorted(loaded.specs)) or "none")
        self._pipelines, self._stamp = loaded, stamp
        return loaded

    # -- one pass ------------------------------------------------------------------------
    def run_pass(self) -> Pass:
        """Renew the lease; as leader fire due ticks and start queued runs."""
        self._collect()
        now = self.clock()
        try:
            leader = self.queue.acquire_lease(self.holder, now, self.lease_seconds)
        except Exception as exc:  # metadata unreachable: stop acting as leader
            log.error("cannot renew the scheduler lease: %s", exc)
            leader = False
        if leader and not self.is_leader:
            self.queue.set_acquired(self.holder, now)
            log.info("%s is the active scheduler (lease %ss)", self.holder, self.lease_seconds)
            host = socket.gethostname()
            self.ws.store.reap_abandoned_runs(host, _pid_alive)
            for request in self.queue.abandon_requests(self.holder, host, _pid_alive):
                log.warning("request %s was left running by a stopped scheduler: failed", request)
        elif self.is_leader and not leader:
            log.warning("%s lost the scheduler lease; standing by", self.holder)
        elif not leader and not self._standing_by:
            lease = self.queue.lease()
            log.info(
                "%s is standing by: %s holds the lease",
                self.holder,
                lease.holder if lease is not None else "another scheduler",
            )
        self._standing_by = not leader
        self.is_leader = leader
        if not leader:
            return Pass(False)
        pipelines = self.load()
        result = Pass(True)
        self._fire(pipelines, now, result)
        self._dispatch(pipelines, result)
        self._redeliver(now)
        return result

    def _redeliver(self, now: datetime) -> None:
        """Retry stale webhook notices on their own thread: a slow receiver must not
        delay the lease renewal of the next pass."""
        if self._notices is not None and not self._notices.done():
            return
        self._notices = self._notice_pool.submit(self._redeliver_now, now)

    def _redeliver_now(self, now: datetime) -> None:
        from headwater.pipelines.scheduling.webhooks import redeliver_stale

        try:
            redeliver_stale(self.ws, now)
        except Exception as exc:  # notices must not stop the schedules
            log.error("retrying webhook notices: %s", exc)

    def _fire(self, pipelines: WorkspacePipelines, now: datetime, result: Pass) -> None:
        for name, spec in sorted(pipelines.specs.items()):
            schedule = spec.schedule
            if schedule is None:
                continue
            cursor = self.queue.cursor(name)
            if cursor is None or (cursor.cron, cursor.timezone) != (
                schedule.cron,
                schedule.timezone,
            ):
                # a new (or changed) schedule starts now: no catch-up of ticks before it
                self.queue.set_cursor(name, schedule.cron, schedule.timezone, now)
                log.info("schedule of %s: %s (%s)", name, schedule.cron, schedule.timezone)
                continue
            after = MetadataStore.as_utc(cursor.evaluated_until) or now
            due = due_ticks(
                schedule.cron, schedule.timezone, schedule.catchup, after, now, grace=self.grace
            )
            if due.skipped:
                result.skipped[name] = due.skipped
                log.warning(
                    "%s: %s%s missed tick(s) not run (catchup: %s)",
                    name,
                    due.skipped,
                    "+" if due.skipped_more else "",
                    schedule.catchup,
                )
            for tick in due.fire:
                request = self.queue.fire_tick(
                    name,
                    tick,
                    holder=self.holder,
                    now=now,
                    pipeline_file=str(pipelines.files[name]),
                )
                if request is None:
                    log.info("%s tick %s was already fired", name, tick.isoformat())
                    continue
                result.fired.append((name, tick, request))
                local = tick.astimezone(_zone(schedule.timezone))
                log.info("tick %s %s -> request %s", name, local.isoformat(), request)
            self.queue.set_cursor(name, schedule.cron, schedule.timezone, now)

    def _dispatch(self, pipelines: WorkspacePipelines, result: Pass) -> None:
        queued = self.queue.requests(status="queued", limit=500)
        if not queued:
            return
        running = self.queue.running_counts()
        for request in queued:
            if len(self._running) >= self.max_workers:
                break
            spec = pipelines.specs.get(request.pipeline)
            path = pipelines.files.get(request.pipeline)
            if spec is None or path is None:
                self.queue.update_request(
                    request.id,
                    status="failed",
                    finished_at=utcnow(),
                    error=f"pipeline `{request.pipeline}` is not in "
                    f"{self.ws.root / 'pipelines'} (or does not load)",
                )
                log.error("request %s: pipeline %s not found", request.id, request.pipeline)
                continue
            limit = spec.schedule.max_concurrent_runs if spec.schedule is not None else 1
            if running.get(request.pipeline, 0) >= limit:
                continue
            if not self.queue.claim(request.id, self.holder):
                continue
            running[request.pipeline] = running.get(request.pipeline, 0) + 1
            chain = tuple(request.details.get("chain") or ()) if request.reason == "dataset" else ()
            future = self._pool.submit(
                self._execute, request.id, request.pipeline, path, request.reason, chain
            )
            self._running[future] = request.id
            result.started.append(request.id)

    def _execute(
        self, request_id: int, pipeline: str, path: Path, reason: str, chain: tuple[str, ...]
    ) -> None:
        from headwater.pipelines.events import RunStarted

        run_id: list[str] = []

        def on_event(event: Event) -> None:
            if isinstance(event, RunStarted) and not run_id:
                run_id.append(event.run_id)
                self.queue.update_request(request_id, run_id=event.run_id)
                log.info("request %s: run %s of %s started", request_id, event.run_id, pipeline)

        token = trigger_chain.set(chain)
        status, error = "failed", None
        try:
            outcome = self.ws.run(path, on_event=on_event, trigger=reason)
            status, error = outcome.status, outcome.error
        except HeadwaterError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            trigger_chain.reset(token)
        self.queue.update_request(request_id, status=status, finished_at=utcnow(), error=error)
        log.info(
            "request %s: run %s of %s %s%s",
            request_id,
            run_id[0] if run_id else "-",
            pipeline,
            status,
            f": {error}" if error else "",
        )

    def _collect(self) -> None:
        for future in [f for f in self._running if f.done()]:
            self._running.pop(future)
            exc = future.exception()
            if exc is not None:  # _execute records its own failures; this is a bug
                log.error("scheduler worker failed: %r", exc)

    # -- loops ---------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Pass after pass until ``stop`` is set; then finish running runs, release."""
        stop = stop or threading.Event()
        self.load(strict=True)
        log.info(
            "scheduler %s started on %s (lease %ss, poll %ss)",
            self.holder,
            self.ws.root,
            self.lease_seconds,
            self.poll_seconds,
        )
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self.run_pass()
                except HeadwaterError as exc:
                    log.error("%s", exc)
                except Exception as exc:  # e.g. the metadata database went away: retry
                    log.error("scheduler pass failed: %s: %s", type(exc).__name__, exc)
                    self.is_leader = False
                stop.wait(max(0.0, self.poll_seconds - (time.monotonic() - started)))
        finally:
            self.close()

    def run_once(self) -> list[Pass]:
        """Fire what is due, run the queue (and what those runs trigger) to the end, exit."""
        self.load(strict=True)
        passes = [self.run_pass()]
        if not passes[0].leader:
            lease = self.queue.lease()
            holder = lease.holder if lease is not None else "?"
            log.warning("another scheduler (%s) is active; nothing done", holder)
            self.close(release=False)
            return passes
        try:
            while self._running:
                wait(list(self._running), return_when=FIRST_COMPLETED)
                passes.append(self.run_pass())
        finally:
            self.close()
        return passes

    def close(self, *, release: bool = True) -> None:
        """Wait for running runs, then give the lease up so a standby takes over at once."""
        self._pool.shutdown(wait=True)
        self._notice_pool.shutdown(wait=True)
        self._collect()
        if release and self.is_leader:
            try:
                self.queue.release_lease(self.holder)
            except Exception as exc:
                log.error("cannot release the scheduler lease: %s", exc)
            self.is_leader = False

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the runs and notices this scheduler started are done (for tests)."""
        futures: list[Future[Any]] = list(self._running)
        if self._notices is not None:
            futures.append(self._notices)
        _done, pending = wait(futures, timeout=timeout)
        self._collect()
        return not pending


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
