"""The replicate executor: many tables of a connection into one zone, tables in parallel.

Each table is an ordinary extract (:mod:`headwater.pipelines.extract`) with its own
checkpoint (``<step>/<table>``), so incremental replication, exactly-once chunks and
schema contracts behave per table exactly as for a single ``extract`` step. A table
that fails does not stop the others; the step fails afterwards, naming every failure.
"""

from __future__ import annotations

import fnmatch
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import Stream
from headwater.errors import ConfigError, HeadwaterError, RunError, SourceNotFoundError
from headwater.pipelines.events import StepOutcome
from headwater.pipelines.extract import ExtractJob, execute_extract

if TYPE_CHECKING:
    from headwater.pipelines.spec import ReplicateStep
    from headwater.pipelines.steps import RunContext

__all__ = ["plan_tables", "run_replicate"]


def plan_tables(step: ReplicateStep, streams: list[Stream]) -> list[tuple[Stream, str]]:
    """The tables to copy, each with its dataset; raises on an unknown or clashing table."""
    by_name = {s.name: s for s in streams}
    short: dict[str, list[Stream]] = {}
    for s in streams:
        short.setdefault(s.name.rpartition(".")[2], []).append(s)
    chosen: list[Stream] = []
    if step.tables == "*":
        for s in streams:
            schema, _, table = s.name.rpartition(".")
            if step.schema_ is not None and schema != step.schema_:
                continue
            if any(
                fnmatch.fnmatchcase(table, p) or fnmatch.fnmatchcase(s.name, p)
                for p in step.exclude
            ):
                continue
            chosen.append(s)
        if not chosen:
            where = f" in schema `{step.schema_}`" if step.schema_ else ""
            raise SourceNotFoundError(
                f"Connection `{step.connection}` lists no table{where} to replicate.",
                connector=step.connection,
                step=step.name,
                hint="Check `schema` and `exclude`, and that the user may read the tables.",
            )
    else:
        for name in step.tables:
            found = by_name.get(name) or (short[name][0] if len(short.get(name, [])) == 1 else None)
            if found is None:
                from headwater.errors import choices_hint

                raise SourceNotFoundError(
                    f"Connection `{step.connection}` has no table `{name}`.",
                    connector=step.connection,
                    step=step.name,
                    field="tables",
                    hint=choices_hint(name, by_name, "tables"),
                )
            chosen.append(found)
    planned = [(s, step.dataset_for(s.name)) for s in chosen]
    seen: dict[str, str] = {}
    for s, dataset in planned:
        if dataset in seen:
            raise ConfigError(
                f"Tables `{seen[dataset]}` and `{s.name}` would both be copied to `{dataset}`.",
                step=step.name,
                field="tables",
                hint="Exclude one of them, or replicate them with separate steps.",
            )
        seen[dataset] = s.name
    if step.mode == "merge":
        keyless = [s.name for s, _ in planned if not s.primary_key]
        if keyless:
            raise ConfigError(
                "mode `merge` upserts on each table's primary key; these tables have none: "
                + ", ".join(keyless),
                step=step.name,
                field="mode",
                hint="Exclude them, or replicate them in another step with mode overwrite.",
            )
    return planned


def run_replicate(ctx: RunContext, step: ReplicateStep) -> StepOutcome:
    source = ctx.connections.source(step.connection)
    planned = plan_tables(step, source.discover())

    def one(item: tuple[Stream, str]) -> StepOutcome:
        stream, dataset = item
        columns = set(stream.schema.names) if stream.schema is not None else set()
        incremental = step.incremental
        if incremental is not None and columns and incremental.cursor not in columns:
            incremental = None  # this table has no such cursor column: read it whole
        job = ExtractJob(
            key=f"{step.name}/{stream.name}",
            connection=step.connection,
            stream=stream.name,
            to=dataset,
            mode=step.mode,
            keys=tuple(stream.primary_key) if step.mode == "merge" else (),
            options=dict(step.options),
            incremental=incremental,
            on_schema_change=step.on_schema_change,
        )
        return execute_extract(ctx, job, step_name=step.name)

    results: dict[str, StepOutcome | BaseException] = {}
    with ThreadPoolExecutor(max_workers=step.parallel, thread_name_prefix="hw-table") as pool:
        futures = {pool.submit(one, item): item[0].name for item in planned}
        for future, table in futures.items():
            try:
                results[table] = future.result()
            except BaseException as exc:  # the others go on; reported together below
                results[table] = exc
    return _combine(step, planned, results)


def _combine(
    step: ReplicateStep,
    planned: list[tuple[Stream, str]],
    results: dict[str, StepOutcome | BaseException],
) -> StepOutcome:
    tables: dict[str, Any] = {}
    failures: list[str] = []
    totals = {"rows_in": 0, "rows_out": 0, "rows_quarantined": 0, "bytes": 0, "superseded": 0}
    for stream, dataset in planned:
        result = results[stream.name]
        if isinstance(result, BaseException):
            text = str(result) if isinstance(result, HeadwaterError) else repr(result)
            failures.append(f"{stream.name}: {text}")
            tables[stream.name] = {"dataset": dataset, "status": "failed", "error": text}
            continue
        totals["rows_in"] += result.rows_in
        totals["rows_out"] += result.rows_out
        totals["rows_quarantined"] += result.rows_quarantined
        totals["bytes"] += result.bytes
        totals["superseded"] += int(result.details.get("rows_superseded", 0) or 0)
        tables[stream.name] = {
            "dataset": dataset,
            "status": "succeeded",
            "rows": result.rows_out,
            **{k: v for k, v in result.details.items() if k in ("checkpoint", "notes")},
        }
    if failures:
        raise RunError(
            f"{len(failures)} of {len(planned)} tables failed to replicate: " + "; ".join(failures),
            step=step.name,
            tables=tables,
            hint="The other tables were committed; a re-run copies the failed ones again.",
        )
    return StepOutcome(
        step.name,
        "replicate",
        "succeeded",
        rows_in=totals["rows_in"],
        rows_out=totals["rows_out"],
        rows_quarantined=totals["rows_quarantined"],
        bytes=totals["bytes"],
        inputs=tuple(f"{step.connection}:{s.name}" for s, _ in planned),
        outputs=tuple(d for _, d in planned),
        details={"tables": tables, "rows_superseded": totals["superseded"]},
    )
