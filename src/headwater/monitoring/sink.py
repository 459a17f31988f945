"""Stores a run's events: metadata table ``run_events`` plus one JSON-lines log per run.

The runner calls :meth:`RunEventSink.handle` from its threads; the sink numbers the
event, forwards it (to a live display) and queues it. One writer thread batches the
queue into the metadata database and appends to ``.headwater/logs/<run_id>.jsonl``, so
storing events costs a run almost nothing. ``close()`` (the end of the ``with`` block)
waits until every event is written.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from headwater.monitoring.records import EventRecord, to_record
from headwater.pipelines.events import Event, RunStarted

if TYPE_CHECKING:
    from headwater.metadata.store import MetadataStore

__all__ = ["RunEventSink", "log_path"]

_BATCH = 500
_LINGER_S = 0.05  # after the first event of a batch, wait this long for more
_STOP = None


def log_path(log_dir: Path, run_id: str) -> Path:
    """The JSON-lines log of a run."""
    return log_dir / f"{run_id}.jsonl"


class RunEventSink:
    """Numbers, forwards and stores run events (thread-safe, non-blocking)."""

    def __init__(
        self,
        store: MetadataStore,
        log_dir: Path | None,
        *,
        forward: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.log_dir = log_dir
        self.forward = forward
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._pipeline: dict[str, str] = {}
        self._queue: queue.SimpleQueue[EventRecord | None] = queue.SimpleQueue()
        self._files: dict[str, IO[str]] = {}
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunEventSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, event: Event) -> None:
        if self.forward is not None:
            with contextlib.suppress(Exception):  # a display must never break a run
                self.forward(event)
        with self._lock:
            if isinstance(event, RunStarted):
                self._pipeline[event.run_id] = event.pipeline
            seq = self._seq.get(event.run_id, 0) + 1
            record = to_record(event, seq, self._pipeline.get(event.run_id, ""))
            if record is None:
                return
            self._seq[event.run_id] = seq
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name="hw-events", daemon=True
                )
                self._thread.start()
            # queued under the lock: the writer sees events in seq order, so a reader that
            # tails by seq (runs logs --follow) never skips one committed in a later batch
            self._queue.put(record)

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    # -- writer thread ---------------------------------------------------------------
    def _write_loop(self) -> None:
        """Write in batches: one transaction per ~50 ms of events, not one per event, so
        the writer hardly competes with the runner for the database."""
        stop = False
        while not stop:
            batch: list[EventRecord] = []
            item = self._queue.get()
            deadline = time.monotonic() + _LINGER_S
            while True:
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: list[EventRecord]) -> None:
        from headwater.metadata.models import RunEventRow

        try:
            with self.store.session() as s:
                s.add_all(
                    RunEventRow(
                        run_id=r.run_id,
                        seq=r.seq,
                        ts=r.ts,
                        type=r.type,
                        step=r.step,
                        payload=r.payload,
                    )
                    for r in batch
                )
        except Exception as exc:  # storing events must never fail a run
            self._warn(f"run events not stored: {type(exc).__name__}: {exc}")
        if self.log_dir is None:
            return
        try:
            for r in batch:
                handle = self._files.get(r.run_id)
                if handle is None:
                    self.log_dir.mkdir(parents=True, exist_ok=True)
                    handle = self._files[r.run_id] = log_path(self.log_dir, r.run_id).open(
                        "a", encoding="utf-8"
                    )
                handle.write(json.dumps(r.to_json(), default=str) + "\n")
                if r.type == "run_finished":
                    handle.close()
                    del self._files[r.run_id]
            for handle in self._files.values():
                handle.flush()
        except OSError as exc:
            self._warn(f"run log not written: {exc}")

    def _warn(self, message: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(message)
            print(f"headwater: warning: {message}", file=sys.stderr)
