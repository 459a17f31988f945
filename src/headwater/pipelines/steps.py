"""How each step kind executes: extract, transform, check, load.

Every executor streams Arrow batches (never a whole dataset in Python), counts
rows in and out, and sends rejected rows to the quarantine dataset, so that
``rows_in == rows_out + rows_quarantined`` holds for every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.config import EngineSettings
from headwater.connections import Connections
from headwater.connectors.base import ListRejectSink
from headwater.engine.session import EngineSession
from headwater.errors import CheckFailedError, PipelineError
from headwater.metadata.models import CheckResultRow
from headwater.metadata.store import MetadataStore
from headwater.pipelines.events import Event, StepOutcome, StepProgress
from headwater.pipelines.spec import CheckStep, ExtractStep, LoadStep, TransformStep
from headwater.quality.checks import compile_check
from headwater.quality.evaluate import evaluate_checks
from headwater.quality.quarantine import quarantine_name, rejects_to_table
from headwater.transform.refs import find_refs, render_refs

if TYPE_CHECKING:
    from headwater.lake import Lake

__all__ = ["RunContext", "execute_step"]

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

    def session(self) -> EngineSession:
        return EngineSession(
            lambda name, version, as_of: (
                self.lake.parquet_scan(name, version=version, as_of=as_of)
                or self.lake.dataset(name, version=version, as_of=as_of)
            ),
            arrow_resolver=lambda name, v, t: self.lake.dataset(name, version=v, as_of=t),
            threads=self.engine.threads,
            memory_limit=self.engine.memory_limit,
            temp_directory=self.temp_directory,
        )


class _Progress:
    """Counts rows flowing through and emits throttled progress events."""

    def __init__(self, ctx: RunContext, step: str) -> None:
        self.ctx, self.step, self.rows, self.bytes = ctx, step, 0, 0
        self._last = 0.0

    def add(self, rows: int, nbytes: int = 0) -> None:
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


def run_extract(ctx: RunContext, step: ExtractStep) -> StepOutcome:
    source = ctx.connections.source(step.connection)
    rejects = ListRejectSink()
    progress = _Progress(ctx, step.name)
    state = ctx.store.get_checkpoint(ctx.pipeline, step.name)
    batches = source.read(step.stream, options=dict(step.options), state=state, rejects=rejects)
    commit = ctx.lake.write(
        step.to,
        progress.wrap(batches),
        mode=step.mode,
        keys=list(step.keys) or None,
        run_id=ctx.run_id,
        allow_schema_replace=step.on_schema_change == "replace",
    )
    quarantined = _quarantine_rejects(ctx, step.name, step.to, rejects)
    return StepOutcome(
        step.name,
        "extract",
        "succeeded",
        rows_in=progress.rows + quarantined,
        rows_out=commit.rows,
        rows_quarantined=quarantined,
        bytes=commit.bytes or progress.bytes,
        inputs=(f"{step.connection}:{step.stream}",),
        outputs=(step.to,),
        details={
            "version": commit.version,
            "schema_change": commit.schema_change,
            # a merge keeps the last row of each key: the others are superseded, not lost
            "rows_superseded": max(progress.rows - commit.rows, 0),
        },
    )


def _quarantine_rejects(ctx: RunContext, step: str, dataset: str, rejects: ListRejectSink) -> int:
    if not rejects.items:
        return 0
    table = rejects_to_table(rejects.items, run_id=ctx.run_id, step=step, dataset=dataset)
    _forget_earlier_attempt(ctx, step, dataset)
    ctx.lake.write(quarantine_name(dataset), table, mode="append", run_id=ctx.run_id)
    return int(table.num_rows)


def _forget_earlier_attempt(ctx: RunContext, step: str, dataset: str) -> None:
    """Remove quarantine rows an earlier attempt of this step in this run wrote (retries)."""
    name = quarantine_name(dataset)
    if ctx.lake.exists(name):
        ctx.lake.delete_rows(name, {"run_id": ctx.run_id, "step": step}, run_id=ctx.run_id)


def run_transform(ctx: RunContext, step: TransformStep) -> StepOutcome:
    """Run the SQL and write its result.

    rows_in counts the rows the query produced (what the write received), so the
    step balances; the row counts of the datasets it read are in details.input_rows.
    """
    refs = find_refs(step.sql)
    progress = _Progress(ctx, step.name)
    input_rows = {name: int(ctx.lake.dataset(name).count_rows()) for name in refs}
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
        },
    )


def run_check(ctx: RunContext, step: CheckStep) -> StepOutcome:
    dataset = step.dataset
    compiled = [compile_check(c.model_dump(by_alias=False)) for c in step.checks]
    with ctx.session() as session:
        session.attach(dataset)
        zone, _, name = dataset.partition(".")
        outcome = evaluate_checks(session, f'"{zone}"."{name}"', compiled)
        rows_out = outcome.rows_checked - outcome.rows_quarantined
        if outcome.rows_quarantined:
            # quarantine first: if the rewrite then fails, the rows are in quarantine and
            # still in the dataset (never lost); a retry replaces this step's quarantine rows
            _forget_earlier_attempt(ctx, step.name, dataset)
            ctx.lake.write(
                quarantine_name(dataset),
                outcome.quarantine_rows(run_id=ctx.run_id, step=step.name, dataset=dataset),
                mode="append",
                run_id=ctx.run_id,
            )
            ctx.lake.write(dataset, outcome.passing_rows(), mode="overwrite", run_id=ctx.run_id)
    ctx.store.add_check_results(
        [
            CheckResultRow(
                run_id=ctx.run_id,
                step=step.name,
                dataset=dataset,
                check=r.name,
                kind=r.kind,
                column=r.column,
                severity=r.severity,
                passed=r.passed,
                rows_checked=r.rows_checked,
                rows_failed=r.rows_failed,
                message=r.message,
            )
            for r in outcome.results
        ]
    )
    details = {
        "checks": [
            {
                "name": r.name,
                "severity": r.severity,
                "passed": r.passed,
                "rows_failed": r.rows_failed,
                "message": r.message,
            }
            for r in outcome.results
        ]
    }
    failures = outcome.table_failures
    if failures:
        raise CheckFailedError(
            "; ".join(f"check `{r.name}` failed: {r.message}" for r in failures),
            dataset=dataset,
            step=step.name,
            checks=details["checks"],
        )
    return StepOutcome(
        step.name,
        "check",
        "succeeded",
        rows_in=outcome.rows_checked,
        rows_out=rows_out,
        rows_quarantined=outcome.rows_quarantined,
        inputs=(dataset,),
        outputs=(dataset,) if outcome.rows_quarantined else (),
        details=details,
    )


def run_load(ctx: RunContext, step: LoadStep) -> StepOutcome:
    dataset = step.from_
    destination = ctx.connections.destination(step.connection)
    progress = _Progress(ctx, step.name)
    with ctx.session() as session:
        session.attach(dataset)
        zone, _, name = dataset.partition(".")
        reader = session.reader(
            f'SELECT * FROM "{zone}"."{name}"', batch_rows=ctx.engine.batch_rows
        )
        result = destination.write(
            step.target,
            progress.reader(reader),
            mode=step.mode,
            keys=list(step.keys) or None,
            options=dict(step.options),
        )
    return StepOutcome(
        step.name,
        "load",
        "succeeded",
        rows_in=progress.rows,
        rows_out=result.rows,
        rows_quarantined=0,
        bytes=result.bytes,
        inputs=(dataset,),
        outputs=(f"{step.connection}:{step.target}",),
        details={"location": result.location},
    )


def execute_step(
    ctx: RunContext, step: ExtractStep | TransformStep | CheckStep | LoadStep
) -> StepOutcome:
    """Run one step and return its outcome (raises on failure)."""
    if isinstance(step, ExtractStep):
        return run_extract(ctx, step)
    if isinstance(step, TransformStep):
        return run_transform(ctx, step)
    if isinstance(step, CheckStep):
        return run_check(ctx, step)
    if isinstance(step, LoadStep):
        return run_load(ctx, step)
    raise PipelineError(f"step kind `{step.type}` cannot be executed yet", step=step.name)
