"""The ``check`` step: evaluate a dataset's checks, quarantine blocked rows, keep the rest.

Order of writes (never a lost row): the blocked rows are appended to the quarantine first,
then the dataset is rewritten with the passing rows (one Delta commit). A retry of the step
within the run first removes the quarantine rows its earlier attempt wrote (by load id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.errors import CheckFailedError, DatasetNotFoundError, HeadwaterError
from headwater.pipelines.events import StepOutcome
from headwater.quality.checks import compile_check, quote_ident, sql_literal
from headwater.quality.evaluate import CheckOutcome, evaluate_checks
from headwater.quality.quarantine import quarantine_name
from headwater.quality.results import save_results
from headwater.quality.table_checks import Resolver

if TYPE_CHECKING:
    from headwater.engine.session import EngineSession
    from headwater.lake import Lake
    from headwater.pipelines.spec import CheckStep
    from headwater.pipelines.steps import RunContext

__all__ = ["check_load_id", "dataset_resolver", "relation_of", "run_check_step"]


def relation_of(dataset: str) -> str:
    zone, _, name = dataset.partition(".")
    return f"{quote_ident(zone)}.{quote_ident(name)}"


def check_load_id(run_id: str, step: str) -> str:
    """The id the quarantine rows of one check step in one run carry."""
    return f"check:{run_id}:{step}"


def baseline_version(lake: Lake, dataset: str, run_id: str | None) -> int | None:
    """The version ``previous`` means: the newest one written neither by the run that wrote
    the current version nor by run ``run_id`` (a commit without a run id counts as its own)."""
    history = lake.history(dataset)  # newest first
    if len(history) < 2:
        return None
    skip = {run_id, history[0].run_id} - {None}
    for entry in history[1:]:
        if entry.run_id is None or entry.run_id not in skip:
            return entry.version
    return None


def dataset_resolver(
    session: EngineSession, lake: Lake, dataset: str, run_id: str | None
) -> Resolver:
    """Relations for the other datasets checks read, and for baseline versions (drift)."""

    def resolve(name: str, version: int | str | None) -> str | None:
        if version is None:
            if not lake.exists(name):
                return None
            session.attach(name)
            return relation_of(name)
        number = baseline_version(lake, name, run_id) if version == "previous" else int(version)
        if number is None:
            return None
        if number > lake.version(name):
            return None
        alias = f"__hw_baseline_{number}"
        try:
            session.register_arrow(alias, lake.dataset(name, version=number))  # type: ignore[arg-type]
        except DatasetNotFoundError:
            return None
        return alias

    return resolve


_ROW_ID = ("__hw_rid",)


def _with_row_identity(
    session: EngineSession, lake: Lake, dataset: str
) -> tuple[str, tuple[str, ...]]:
    """The relation to check, with a row identity (Parquet file name and row number) when the
    dataset's current version is plain local Parquet files (one BIGINT: file number and
    row number), so the passing rows are read back
    by an anti-join with the blocked ones instead of evaluating every check twice."""
    scan = lake.parquet_scan(dataset)
    if scan is None:
        return relation_of(dataset), ()
    files, schema = scan
    if {"file_index", "file_row_number", *_ROW_ID} & set(schema.names):
        return relation_of(dataset), ()
    listed = ", ".join(sql_literal(f) for f in files)
    source = f"read_parquet([{listed}], union_by_name = true, file_row_number = true)"
    try:
        present = {r[0] for r in session.execute(f"DESCRIBE SELECT * FROM {source}")}
    except HeadwaterError:
        return relation_of(dataset), ()
    if not set(schema.names) <= present:
        return relation_of(dataset), ()
    columns = ", ".join(quote_ident(n) for n in schema.names)
    session.execute(
        f"CREATE OR REPLACE TEMP VIEW __hw_checked AS SELECT {columns}, "
        # file number (DuckDB's file_index) in the high bits, row number in the low 40
        f"file_index::BIGINT * 1099511627776 + file_row_number AS __hw_rid FROM {source}"
    )
    return "__hw_checked", _ROW_ID


def run_check_step(ctx: RunContext, step: CheckStep) -> StepOutcome:
    dataset = step.dataset
    compiled = [
        compile_check(c.model_dump(by_alias=False), location=c.location) for c in step.checks
    ]
    load_id = check_load_id(ctx.run_id, step.name)
    with ctx.session() as session:
        session.attach(dataset)
        if any(c.blocking and c.is_row_check for c in compiled):
            relation, row_id = _with_row_identity(session, ctx.lake, dataset)
        else:  # nothing can be removed: no row identity, the scans read only the data
            relation, row_id = relation_of(dataset), ()
        outcome = evaluate_checks(
            session,
            relation,
            compiled,
            resolve=dataset_resolver(session, ctx.lake, dataset, ctx.run_id),
            dataset=dataset,
            row_id=row_id,
        )
        _forget_earlier_attempt(ctx, dataset, load_id)
        if outcome.rows_quarantined:
            # quarantine first: if the rewrite then fails, the rows are in quarantine and
            # still in the dataset (never lost); a retry replaces this step's quarantine rows
            ctx.lake.write(
                quarantine_name(dataset),
                outcome.quarantine_rows(
                    run_id=ctx.run_id, step=step.name, dataset=dataset, load_id=load_id
                ),
                mode="append",
                run_id=ctx.run_id,
            )
            ctx.lake.write(
                dataset,
                outcome.passing_rows(ctx.engine.batch_rows),
                mode="overwrite",
                run_id=ctx.run_id,
            )
    save_results(ctx.store, outcome.results, run_id=ctx.run_id, step=step.name, dataset=dataset)
    return _step_outcome(step, outcome)


def _forget_earlier_attempt(ctx: RunContext, dataset: str, load_id: str) -> None:
    """Remove quarantine rows an earlier attempt of this step in this run wrote (retries)."""
    name = quarantine_name(dataset)
    if ctx.lake.exists(name) and "load_id" in ctx.lake.schema(name).names:
        ctx.lake.delete_rows(name, {"load_id": load_id}, run_id=ctx.run_id)


def _step_outcome(step: CheckStep, outcome: CheckOutcome) -> StepOutcome:
    checks: list[dict[str, Any]] = [
        {
            "name": r.name,
            "severity": r.severity,
            "passed": r.passed,
            "rows_failed": r.rows_failed,
            "message": r.message,
        }
        for r in outcome.results
    ]
    failures = outcome.table_failures
    if failures:
        raise CheckFailedError(
            "; ".join(f"check `{r.name}` failed: {r.message}" for r in failures),
            dataset=step.dataset,
            step=step.name,
            checks=checks,
        )
    return StepOutcome(
        step.name,
        "check",
        "succeeded",
        rows_in=outcome.rows_checked,
        rows_out=outcome.rows_checked - outcome.rows_quarantined,
        rows_quarantined=outcome.rows_quarantined,
        inputs=(step.dataset, *step.inputs()[1:]),
        outputs=(step.dataset,) if outcome.rows_quarantined else (),
        details={"checks": checks},
    )
