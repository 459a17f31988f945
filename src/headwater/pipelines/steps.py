"""How each step kind executes: extract, transform, check, load, replicate.

Every executor streams Arrow batches (never a whole dataset in Python), counts
rows in and out, and sends rejected rows to the quarantine dataset, so that
``rows_in == rows_out + rows_quarantined`` holds for every step.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.config import EngineSettings
from headwater.connections import Connections
from headwater.connectors.base import ListRejectSink
from headwater.connectors.unique_keys import announce
from headwater.crashpoints import crash_point
from headwater.engine.session import EngineSession
from headwater.errors import ConnectorError, PipelineError
from headwater.metadata.store import MetadataStore
from headwater.pipelines._nodes import slug
from headwater.pipelines.events import Event, StepOutcome, StepProgress
from headwater.pipelines.map_step import record_lineage
from headwater.pipelines.spec import (
    CheckStep,
    ExtractStep,
    LoadStep,
    MapStep,
    PythonStep,
    ReplicateStep,
    TransformStep,
)
from headwater.quality.quarantine import quarantine_name, rejects_to_table
from headwater.transform.refs import find_refs, render_refs

if TYPE_CHECKING:
    from headwater.lake import Lake

__all__ = ["Progress", "RunContext", "execute_step", "load_id_for", "naming_connection"]

_PROGRESS_EVERY_S = 0.2


@dataclass
class RunContext:
    """The services a step needs, shared by every step of a run."""

    run_id: str
    pipeline: str
    store: MetadataStore
    lake: Lake
    connections: Connections
    engine: EngineSettings
    emit: Callable[[Event], None]
    temp_directory: str | None = None
    workspace_root: str | None = None
    """Where ``python`` steps import their modules from."""
    pins: dict[str, int] = field(default_factory=dict)
    """Dataset versions every read of the run is fixed to (a resume reads the versions
    the steps it reuses committed)."""
    cancelled: set[str] = field(default_factory=set)
    """Steps the runner gave up on (timed out): their next batch raises instead of being
    written, so a late attempt never commits."""

    def session(self, pins: Mapping[str, int] | None = None) -> EngineSession:
        """A DuckDB session over the lake; ``pins`` fixes the version read of some datasets."""
        pinned = {**self.pins, **(pins or {})}
        return EngineSession(
            lambda name, version, as_of: (
                self.lake.parquet_scan(name, version=pinned.get(name, version), as_of=as_of)
                or self.lake.dataset(name, version=pinned.get(name, version), as_of=as_of)
            ),
            arrow_resolver=lambda name, v, t: self.lake.dataset(
                name, version=pinned.get(name, v), as_of=t
            ),
            threads=self.engine.threads,
            memory_limit=self.engine.memory_limit,
            temp_directory=self.temp_directory,
        )


class Progress:
    """Counts rows flowing through and emits throttled progress events."""

    def __init__(self, ctx: RunContext, step: str) -> None:
        self.ctx, self.step, self.rows, self.bytes = ctx, step, 0, 0
        self._last = 0.0

    def add(self, rows: int, nbytes: int = 0) -> None:
        if self.step in self.ctx.cancelled:
            from headwater.errors import StepTimeoutError

            raise StepTimeoutError(
                f"step `{self.step}` was stopped: it ran past its timeout", step=self.step
            )
        self.rows += rows
        self.bytes += nbytes
        now = time.monotonic()
        if now - self._last >= _PROGRESS_EVERY_S:
            self._last = now
            self.ctx.emit(StepProgress(self.ctx.run_id, step=self.step, rows=self.rows))

    def wrap(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.add(batch.num_rows, batch.nbytes)
            yield batch

    def reader(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(reader.schema, self.wrap(reader))


def run_transform(ctx: RunContext, step: TransformStep) -> StepOutcome:
    """Run the SQL and write its result.

    rows_in counts the rows the query produced (what the write received), so the
    step balances; the row counts of the datasets it read are in details.input_rows.
    """
    if step.connection is not None:
        return run_pushdown_transform(ctx, step)
    if step.incremental_options is not None:
        return run_incremental_transform(ctx, step)
    refs = find_refs(step.sql)
    progress = Progress(ctx, step.name)
    input_rows = {
        name: int(ctx.lake.dataset(name, version=ctx.pins.get(name)).count_rows()) for name in refs
    }
    with ctx.session() as session:
        session.attach_many(refs)
        sql = render_refs(step.sql, lambda name: ".".join(f'"{p}"' for p in name.split(".")))
        reader = session.reader(sql, batch_rows=ctx.engine.batch_rows)
        commit = ctx.lake.write(
            step.to,
            progress.reader(reader),
            mode=step.mode,
            keys=list(step.keys) or None,
            run_id=ctx.run_id,
            allow_schema_replace=step.on_schema_change == "replace",
        )
        columns = reader.schema.names
    lineage = record_lineage(
        ctx, step.name, "transform", sql, step.to, columns, {n: ctx.lake.schema(n) for n in refs}
    )
    return StepOutcome(
        step.name,
        "transform",
        "succeeded",
        rows_in=commit.rows,
        rows_out=commit.rows,
        bytes=commit.bytes or progress.bytes,
        inputs=tuple(refs),
        outputs=(step.to,),
        details={
            "version": commit.version,
            "schema_change": commit.schema_change,
            "input_rows": input_rows,
            "lineage": lineage,
        },
    )


def run_check(ctx: RunContext, step: CheckStep) -> StepOutcome:
    from headwater.pipelines.check_step import run_check_step

    return run_check_step(ctx, step)


@contextmanager
def naming_connection(name: str) -> Iterator[None]:
    """Connector errors raised inside name the workspace connection they came from."""
    try:
        yield
    except ConnectorError as exc:
        if f"connection `{name}`" not in exc.message:
            exc.message = f"connection `{name}`: {exc.message}"
            exc.args = (exc.message,)
        exc.details.setdefault("connection", name)
        raise


def load_id_for(ctx: RunContext, step: LoadStep, version: int) -> str:
    """The id of loading version ``version`` of the step's dataset to its target.

    The same pipeline step sending the same dataset version to the same target with the
    same mode gets the same id, so a destination that has committed it skips it: a load
    re-run after a crash writes nothing twice.
    """
    parts = [ctx.pipeline, step.name, step.connection, step.target, step.mode, step.from_]
    digest = hashlib.sha256("\x1f".join([*parts, str(version)]).encode()).hexdigest()[:24]
    return f"{slug(step.name)[:60]}-v{version}-{digest}"


_UNIQUE_CHECK_MEMORY = "192MB"


def _unique_rows(session: EngineSession, table: str, keys: list[str]) -> int | None:
    """The table's row count when no ``keys`` value repeats (see connectors.unique_keys)."""
    if not keys:
        return None
    key = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
    # a small memory limit for this one query: its hash table spills to disk rather than
    # raising the peak of the load that follows (the limit is restored before the stream)
    (limit,) = session.execute("SELECT current_setting('memory_limit')")[0]
    session.execute(f"SET memory_limit = '{_UNIQUE_CHECK_MEMORY}'")
    try:
        rows, distinct = session.execute(f"SELECT count(*), count(DISTINCT ({key})) FROM {table}")[
            0
        ]
    finally:
        session.execute(f"SET memory_limit = '{limit}'")
    return int(rows) if rows == distinct else None


def run_load(ctx: RunContext, step: LoadStep) -> StepOutcome:
    """Send a dataset version to a destination, exactly once (see :func:`load_id_for`)."""
    with naming_connection(step.connection):
        return _run_load(ctx, step)


def _run_load(ctx: RunContext, step: LoadStep) -> StepOutcome:
    dataset = step.from_
    destination = ctx.connections.destination(step.connection)
    progress = Progress(ctx, step.name)
    version = ctx.pins.get(dataset, ctx.lake.version(dataset))
    load_id = load_id_for(ctx, step, version)
    rejects = ListRejectSink()
    with ctx.session(pins={dataset: version}) as session:
        session.attach(dataset)
        zone, _, name = dataset.partition(".")
        unique = None  # checked before the stream opens (one query at a time per session)
        if step.mode == "merge" and getattr(destination, "accepts_unique_keys", False):
            unique = _unique_rows(session, f'"{zone}"."{name}"', list(step.keys))
        reader = session.reader(
            f'SELECT * FROM "{zone}"."{name}"', batch_rows=ctx.engine.batch_rows
        )
        stream = progress.reader(reader)
        if unique is not None:
            stream = announce(stream, list(step.keys), unique)
        result = destination.write(
            step.target,
            stream,
            mode=step.mode,
            keys=list(step.keys) or None,
            options=dict(step.options),
            load_id=load_id,
            schema_contract=step.schema_contract,
            rejects=rejects,
        )
    crash_point("load.after_commit")
    already = bool(result.details.get("already_loaded"))
    quarantined = 0
    if step.schema_contract == "discard_row" and not already:
        quarantined = _quarantine_load_rejects(ctx, step, rejects, load_id)
    rows_in = result.rows + quarantined if already else progress.rows
    return StepOutcome(
        step.name,
        "load",
        "succeeded",
        rows_in=rows_in,
        rows_out=result.rows,
        rows_quarantined=quarantined,
        bytes=result.bytes,
        inputs=(dataset,),
        outputs=(f"{step.connection}:{step.target}",),
        details={
            "location": result.location,
            "load_id": load_id,
            "dataset_version": version,
            "already_loaded": already,
            **{k: v for k, v in result.details.items() if k not in ("load_id", "already_loaded")},
        },
    )


def _quarantine_load_rejects(
    ctx: RunContext, step: LoadStep, rejects: ListRejectSink, load_id: str
) -> int:
    name = quarantine_name(step.from_)
    if ctx.lake.exists(name) and "load_id" in ctx.lake.schema(name).names:
        ctx.lake.delete_rows(name, {"load_id": load_id}, run_id=ctx.run_id)
    if not rejects.items:
        return 0
    table = rejects_to_table(
        rejects.items,
        run_id=ctx.run_id,
        step=step.name,
        dataset=step.from_,
        rule="schema_contract",
        load_id=load_id,
    )
    ctx.lake.write(name, table, mode="append", run_id=ctx.run_id)
    return int(table.num_rows)


def execute_step(
    ctx: RunContext,
    step: ExtractStep | TransformStep | MapStep | CheckStep | LoadStep | ReplicateStep | PythonStep,
) -> StepOutcome:
    """Run one step and return its outcome (raises on failure)."""
    if isinstance(step, ExtractStep):
        return run_extract(ctx, step)
    if isinstance(step, ReplicateStep):
        return run_replicate(ctx, step)
    if isinstance(step, TransformStep):
        return run_transform(ctx, step)
    if isinstance(step, MapStep):
        return run_map(ctx, step)
    if isinstance(step, CheckStep):
        return run_check(ctx, step)
    if isinstance(step, LoadStep):
        return run_load(ctx, step)
    if isinstance(step, PythonStep):
        from headwater.pipelines.python_step import run_python

        return run_python(ctx, step)
    raise PipelineError(f"step kind `{step.type}` cannot be executed yet", step=step.name)


def run_extract(ctx: RunContext, step: ExtractStep) -> StepOutcome:
    from headwater.pipelines.extract import run_extract as extract

    return extract(ctx, step)


def run_replicate(ctx: RunContext, step: ReplicateStep) -> StepOutcome:
    from headwater.pipelines.replicate import run_replicate as replicate

    return replicate(ctx, step)


def run_map(ctx: RunContext, step: MapStep) -> StepOutcome:
    from headwater.pipelines.map_step import run_map as map_

    return map_(ctx, step)


def run_incremental_transform(ctx: RunContext, step: TransformStep) -> StepOutcome:
    from headwater.pipelines.incremental_transform import run_incremental

    return run_incremental(ctx, step)


def run_pushdown_transform(ctx: RunContext, step: TransformStep) -> StepOutcome:
    from headwater.pipelines.pushdown_step import run_pushdown

    return run_pushdown(ctx, step)
