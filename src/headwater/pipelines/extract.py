"""The extract executor: a stream of a connection into a managed dataset, exactly once.

Whole reads stream into one Delta commit: a crash before it leaves the dataset as it
was. Incremental reads go further (see :mod:`headwater.pipelines.incremental`): each
chunk is one Delta commit carrying a Delta *application transaction*
``(headwater/<pipeline>/<step>, seq)``, and its checkpoint is saved in two phases:

1. when the chunk's last row has streamed into the writer, before Delta commits, the
   chunk's checkpoint is saved as *pending* (and its rejected rows are quarantined,
   tagged with the chunk's load id so that a retry replaces them);
2. after the commit it is saved as *committed*.

On the next run, a pending checkpoint whose ``seq`` the dataset's application
transaction reached is adopted (the process died between the commit and step 2); one
the dataset never reached is dropped (it died before the commit). So the cursor never
moves past rows that are not committed, and never stays behind rows that are.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import pyarrow as pa

from headwater.connectors.base import ListRejectSink, Source
from headwater.connectors.contract import Conformer, plan_contract
from headwater.crashpoints import crash_point
from headwater.errors import RunError, UnsupportedOperationError
from headwater.pipelines.events import StepOutcome
from headwater.pipelines.incremental import (
    CursorState,
    CursorTracker,
    cursor_predicate,
    literal_sql,
)
from headwater.pipelines.partitions import (
    RangeRead,
    partitioned_read,
    range_plan,
    read_concurrently,
)
from headwater.quality.quarantine import quarantine_name, rejects_to_table

if TYPE_CHECKING:
    from headwater.connectors.base import SchemaContract
    from headwater.pipelines.spec import ExtractStep, Incremental, Partition
    from headwater.pipelines.steps import RunContext

__all__ = ["ExtractJob", "execute_extract", "run_extract"]


@dataclass(frozen=True)
class ExtractJob:
    """One stream to one dataset (an ``extract`` step, or one table of a ``replicate``)."""

    key: str
    """Checkpoint key: the step name (``<step>/<table>`` inside a replicate step)."""
    connection: str
    stream: str
    to: str
    mode: str
    keys: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    incremental: Incremental | None = None
    checkpoint_every: int | None = None
    partition: Partition | Literal[False] | None = None
    """The step's ``partition``; ``None``: the source may split a big read by itself."""
    on_schema_change: str = "evolve"


def run_extract(ctx: RunContext, step: ExtractStep) -> StepOutcome:
    job = ExtractJob(
        key=step.name,
        connection=step.connection,
        stream=step.stream,
        to=step.to,
        mode=step.mode,
        keys=tuple(step.keys),
        options=dict(step.options),
        incremental=step.incremental,
        checkpoint_every=step.checkpoint_every,
        partition=step.partition,
        on_schema_change=step.on_schema_change,
    )
    return execute_extract(ctx, job, step_name=step.name)


class _Chunk:
    """What one commit carried."""

    def __init__(self) -> None:
        self.rows_in = 0
        self.kept = 0
        self.quarantined = 0


def execute_extract(ctx: RunContext, job: ExtractJob, *, step_name: str) -> StepOutcome:
    from headwater.pipelines.steps import naming_connection

    # resources: a parallel read's shared snapshot, held until every batch was consumed
    with naming_connection(job.connection), ExitStack() as resources:
        return _execute(ctx, job, step_name, resources)


def _execute(ctx: RunContext, job: ExtractJob, step_name: str, resources: ExitStack) -> StepOutcome:
    from headwater.pipelines.steps import Progress

    factory, _ = ctx.connections.resolve(job.connection)
    caps = factory.capabilities
    inc = job.incremental
    if inc is not None and not caps.incremental:
        raise UnsupportedOperationError(
            f"The `{factory.name}` connector cannot read incrementally (no cursor pushdown).",
            connector=factory.name,
            step=step_name,
            field="incremental",
            hint="Remove `incremental:` and extract the stream whole.",
        )
    source = ctx.connections.source(job.connection)
    app_id = f"headwater/{ctx.pipeline}/{job.key}"
    notes: list[str] = []
    start = _load_state(ctx, job, app_id, notes) if inc is not None else None

    predicate: str | None = None
    if inc is not None and start is not None:
        if start.value is not None:
            predicate = cursor_predicate(inc.cursor, start.value, lookback=inc.lookback)
        elif inc.initial is not None:
            predicate = f'"{_esc(inc.cursor)}" >= {literal_sql(inc.initial)}'
    rejects = ListRejectSink()
    split: RangeRead | None = None
    batches: Iterator[pa.RecordBatch]
    plan = range_plan(
        source,
        job.stream,
        job.partition,
        ordered=job.checkpoint_every is not None,
        predicate=predicate,
        options=job.options,
    )
    if plan is not None:
        split = partitioned_read(
            source,
            job.stream,
            plan=plan,
            predicate=predicate,
            options=job.options,
            rejects=rejects,
            connector=factory.name,
            resources=resources,
        )
    if split is not None:
        batches = split.batches
    elif job.checkpoint_every is None:
        batches = prefetch(_read(source, job, predicate, rejects))
    else:  # chunks: rejected rows must be quarantined with the chunk they were read in
        batches = _read(source, job, predicate, rejects)

    tracker = (
        CursorTracker(start, keys=list(job.keys), dedupe_boundary=inc.lookback is None)
        if inc is not None and start is not None
        else None
    )
    contract = _Contract(ctx, job, rejects)
    progress = Progress(ctx, step_name)

    def unseen() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield tracker.filter(batch) if tracker is not None else batch

    def rows_of(part: Iterator[pa.RecordBatch], chunk: _Chunk) -> Iterator[pa.RecordBatch]:
        for batch in part:
            chunk.rows_in += batch.num_rows
            batch = contract(batch)
            chunk.kept += batch.num_rows
            if tracker is not None:
                tracker.observe(batch)
            progress.add(batch.num_rows, batch.nbytes)
            yield batch

    state = start
    totals = {"rows_in": 0, "rows_out": 0, "quarantined": 0, "superseded": 0, "chunks": 0}
    commit = None
    pending_rows = _Peekable(unseen())
    while True:
        has_more = pending_rows.has_more()
        if commit is not None and not has_more:
            break
        if state is not None and not has_more and ctx.lake.exists(job.to):
            break  # nothing new: no empty commit, the checkpoint stays where it is
        chunk = _Chunk()
        seq = (state.seq + 1) if state is not None else 0
        load_id = f"{app_id}#{seq}" if state is not None else f"{ctx.run_id}/{job.key}"

        def finish(
            seq: int = seq,
            load_id: str = load_id,
            chunk: _Chunk = chunk,
            before: CursorState | None = state,
        ) -> None:
            # every row of the chunk has streamed into the writer, which has not committed
            crash_point("extract.after_read")
            chunk.quarantined = _quarantine(ctx, step_name, job.to, rejects, load_id)
            if tracker is not None and before is not None:
                pending = tracker.state(seq=seq, rows=before.rows + chunk.kept)
                _save(ctx, job, committed=before, pending=pending)

        part = rows_of(_chunk_of(pending_rows, job.checkpoint_every), chunk)
        commit = ctx.lake.write(
            job.to,
            _with_end(part, finish),
            mode=job.mode,  # type: ignore[arg-type]
            keys=list(job.keys) or None,
            run_id=ctx.run_id,
            allow_schema_replace=job.on_schema_change == "replace",
            metadata={"headwater.step": step_name, "headwater.load_id": load_id},
            transaction=(app_id, seq) if state is not None else None,
        )
        crash_point("extract.after_commit")
        contract_rejects = chunk.rows_in - chunk.kept
        totals["chunks"] += 1
        totals["rows_in"] += chunk.rows_in + (chunk.quarantined - contract_rejects)
        totals["rows_out"] += commit.rows
        totals["quarantined"] += chunk.quarantined
        totals["superseded"] += max(chunk.kept - commit.rows, 0)
        if tracker is not None and state is not None:
            state = tracker.state(seq=seq, rows=state.rows + chunk.kept)
            _save(ctx, job, committed=state, pending=None)
            crash_point("extract.after_checkpoint")
        if job.checkpoint_every is None:
            break

    details: dict[str, Any] = {
        "version": commit.version if commit is not None else None,
        "schema_change": commit.schema_change if commit is not None else None,
        # a merge keeps the last row of each key: the others are superseded, not lost
        "rows_superseded": totals["superseded"],
    }
    if inc is not None and state is not None:
        details.update(
            cursor=inc.cursor,
            checkpoint=_display(state.value),
            chunks=totals["chunks"],
            rows_already_loaded=tracker.rows_skipped if tracker is not None else 0,
        )
    if split is not None:
        details["ranges"] = split.ranges
        details["range_read"] = split.describe()
    if contract.conformer is not None:
        details["rows_rejected_by_contract"] = contract.conformer.rows_rejected
    if notes:
        details["notes"] = notes
    return StepOutcome(
        step_name,
        "extract",
        "succeeded",
        rows_in=totals["rows_in"],
        rows_out=totals["rows_out"],
        rows_quarantined=totals["quarantined"],
        bytes=(commit.bytes if commit is not None else 0) or progress.bytes,
        inputs=(f"{job.connection}:{job.stream}",),
        outputs=(job.to,),
        details=details,
    )


def _esc(name: str) -> str:
    return name.replace('"', '""')


def _display(value: Any) -> Any:
    return value if isinstance(value, int | float | str | None) else str(value)


def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 4) -> Iterator[pa.RecordBatch]:
    """``batches`` read ahead on a thread of their own, so that fetching and decoding the
    source overlaps encoding and writing the dataset (both release the GIL)."""
    return read_concurrently([lambda: batches], workers=1, depth=depth)


def _read(
    source: Source, job: ExtractJob, predicate: str | None, rejects: ListRejectSink
) -> Iterator[pa.RecordBatch]:
    inc = job.incremental
    order_by = [inc.cursor] if inc is not None and job.checkpoint_every is not None else None
    kwargs: dict[str, Any] = {"options": dict(job.options), "rejects": rejects}
    if predicate is not None:
        kwargs["predicate"] = predicate
    if order_by is not None:
        kwargs["order_by"] = order_by
    return iter(source.read(job.stream, **kwargs))


# --------------------------------------------------------------------------- checkpoints


def _load_state(ctx: RunContext, job: ExtractJob, app_id: str, notes: list[str]) -> CursorState:
    """The committed cursor state, reconciled with what the dataset committed."""
    assert job.incremental is not None
    cursor = job.incremental.cursor
    saved = ctx.store.get_checkpoint(ctx.pipeline, job.key) or {}
    committed = CursorState.from_json(saved["committed"]) if saved.get("committed") else None
    pending = CursorState.from_json(saved["pending"]) if saved.get("pending") else None
    if not ctx.lake.exists(job.to):
        if committed is not None and committed.seq:
            notes.append(f"dataset {job.to} does not exist: the checkpoint was reset")
        return CursorState(cursor)
    lake_seq = ctx.lake.transaction_version(job.to, app_id) or 0
    state = committed or CursorState(cursor)
    if pending is not None and pending.seq == lake_seq and lake_seq > state.seq:
        notes.append(f"recovered the checkpoint of chunk {lake_seq}, committed before a crash")
        state = pending
        _save(ctx, job, committed=state, pending=None)
    elif lake_seq > state.seq:
        raise RunError(
            f"Dataset `{job.to}` holds chunk {lake_seq} of step `{job.key}`, but the "
            f"checkpoint store knows only chunk {state.seq}: the metadata store does not "
            "match the lake.",
            step=job.key,
            dataset=job.to,
            hint="Point the workspace at the metadata store that ran this pipeline, or "
            f"run `headwater checkpoints reset {ctx.pipeline} {job.key.partition('/')[0]}` "
            "and reload the dataset with mode overwrite.",
        )
    if state.cursor != cursor:
        notes.append(f"the cursor changed from `{state.cursor}` to `{cursor}`: reading all rows")
        return CursorState(cursor, seq=state.seq, rows=state.rows)
    return state


def _save(
    ctx: RunContext, job: ExtractJob, *, committed: CursorState, pending: CursorState | None
) -> None:
    ctx.store.save_checkpoint(
        ctx.pipeline,
        job.key,
        {
            "committed": committed.to_json(),
            "pending": pending.to_json() if pending is not None else None,
        },
        run_id=ctx.run_id,
    )


# --------------------------------------------------------------------------- quarantine


def _quarantine(
    ctx: RunContext, step: str, dataset: str, rejects: ListRejectSink, load_id: str
) -> int:
    """Quarantine the chunk's rejected rows, replacing those an earlier attempt wrote."""
    items, rejects.items = rejects.items, []
    name = quarantine_name(dataset)
    if ctx.lake.exists(name) and "load_id" in ctx.lake.schema(name).names:
        ctx.lake.delete_rows(name, {"load_id": load_id}, run_id=ctx.run_id)
    if not items:
        return 0
    table = rejects_to_table(items, run_id=ctx.run_id, step=step, dataset=dataset, load_id=load_id)
    ctx.lake.write(name, table, mode="append", run_id=ctx.run_id)
    return int(table.num_rows)


# --------------------------------------------------------------------------- contracts


class _Contract:
    """``freeze`` and ``discard_row`` against the dataset's schema (evolve: the lake's rules)."""

    def __init__(self, ctx: RunContext, job: ExtractJob, rejects: ListRejectSink) -> None:
        self.ctx, self.job, self.rejects = ctx, job, rejects
        self.conformer: Conformer | None = None
        self.active = job.on_schema_change in ("freeze", "discard_row")
        self._planned = False

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.active:
            return batch
        if not self._planned:
            self._planned = True
            job = self.job
            existing = self.ctx.lake.schema(job.to) if self.ctx.lake.exists(job.to) else None
            contract = cast("SchemaContract", job.on_schema_change)
            plan = plan_contract(job.to, existing, batch.schema, contract, what="dataset")
            self.conformer = Conformer(plan, self.rejects)
        assert self.conformer is not None
        return self.conformer(batch)


# --------------------------------------------------------------------------- chunking


class _Peekable:
    """An iterator of batches that can tell whether another one is coming."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._it = batches
        self._head: list[pa.RecordBatch] = []
        self._done = False

    def has_more(self) -> bool:
        if self._head:
            return True
        if self._done:
            return False
        try:
            self._head.append(next(self._it))
        except StopIteration:
            self._done = True
            return False
        return True

    def next(self) -> pa.RecordBatch | None:
        if not self.has_more():
            return None
        return self._head.pop()

    def push_back(self, batch: pa.RecordBatch) -> None:
        self._head.append(batch)


def _chunk_of(batches: _Peekable, limit: int | None) -> Iterator[pa.RecordBatch]:
    """The next ``limit`` rows (all remaining rows when ``limit`` is None)."""
    taken = 0
    while limit is None or taken < limit:
        batch = batches.next()
        if batch is None:
            return
        if limit is not None and taken + batch.num_rows > limit:
            cut = limit - taken
            batches.push_back(batch.slice(cut))
            batch = batch.slice(0, cut)
        taken += batch.num_rows
        yield batch


def _with_end(batches: Iterator[pa.RecordBatch], finish: Any) -> Iterator[pa.RecordBatch]:
    """``batches``, then ``finish()`` once the consumer asked past the last one.

    The consumer is the Delta writer, which pulls batches from inside its own async
    runtime; ``finish`` writes to the lake too, which must not start a runtime inside
    that one, so it runs on a thread of its own (and the writer waits for it).
    """
    yield from batches
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hw-chunk-end") as pool:
        pool.submit(finish).result()
