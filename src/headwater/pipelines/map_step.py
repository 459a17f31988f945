"""Execute a ``map`` step, and record the column lineage of transform and map steps.

The rules are compiled against the schemas the input datasets have now (so an unknown
column is reported at its rule), the inputs are pinned at the versions whose schemas
were read, and the compiled query runs in DuckDB like a transform's SQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.errors import HeadwaterError
from headwater.pipelines.events import StepOutcome

if TYPE_CHECKING:
    from headwater.lake import Lake
    from headwater.pipelines.spec import MapStep
    from headwater.pipelines.steps import RunContext

__all__ = ["MASK_SALT_SECRET", "check_map_steps", "record_lineage", "run_map"]

#: The workspace secret holding the salt of `mask: hash`, created on first use.
MASK_SALT_SECRET = "mask_salt"


def run_map(ctx: RunContext, step: MapStep) -> StepOutcome:
    from headwater.pipelines.steps import Progress
    from headwater.transform.mapping import SALT_VARIABLE, compile_map

    inputs = list(step.inputs())
    versions = {name: ctx.lake.version(name) for name in inputs}
    schemas = {name: ctx.lake.schema(name, version=v) for name, v in versions.items()}
    compiled = compile_map(
        step.from_,
        schemas[step.from_],
        [rule.as_data() for rule in step.rules],
        schemas=schemas,
        locate=_locator(step),
    )
    progress = Progress(ctx, step.name)
    input_rows = {
        step.from_: int(ctx.lake.dataset(step.from_, version=versions[step.from_]).count_rows())
    }
    with ctx.session(pins=versions) as session:
        session.attach_many(inputs)
        if compiled.uses_salt:
            salt = ctx.connections.workspace_secret(MASK_SALT_SECRET, lambda: secrets.token_hex(32))
            session.con.execute(f"SET VARIABLE {SALT_VARIABLE} = ?", [salt])
        reader = session.reader(compiled.sql, batch_rows=ctx.engine.batch_rows)
        commit = ctx.lake.write(
            step.to,
            progress.reader(reader),
            mode=step.mode,
            keys=list(step.keys) or None,
            run_id=ctx.run_id,
            allow_schema_replace=step.on_schema_change == "replace",
        )
    details: dict[str, object] = {
        "version": commit.version,
        "schema_change": commit.schema_change,
        "input_rows": input_rows,
        "input_versions": versions,
        "rules": len(step.rules),
    }
    details["lineage"] = record_lineage(
        ctx, step.name, "map", compiled.sql, step.to, compiled.columns, schemas
    )
    return StepOutcome(
        step.name,
        "map",
        "succeeded",
        rows_in=commit.rows,
        rows_out=commit.rows,
        bytes=commit.bytes or progress.bytes,
        inputs=tuple(inputs),
        outputs=(step.to,),
        details=details,
    )


def record_lineage(
    ctx: RunContext,
    step: str,
    kind: str,
    sql: str,
    output: str,
    columns: Sequence[str],
    schemas: Mapping[str, pa.Schema],
    *,
    dataset_of: Callable[[Any], str | None] | None = None,
) -> str | int:
    """Trace and store the column edges of a step's query; the number of edges, or why
    none were traced (lineage never fails a step that wrote its data)."""
    from headwater.lineage import column_lineage, record_edges  # sqlglot: imported when used

    try:
        if dataset_of is None:
            found = column_lineage(sql, output, columns, schemas)
        else:
            found = column_lineage(sql, output, columns, schemas, dataset_of=dataset_of)
        return record_edges(
            ctx.store,
            run_id=ctx.run_id,
            pipeline=ctx.pipeline,
            step=step,
            kind=kind,
            column_edges=found,
        )
    except HeadwaterError as exc:
        return f"not traced: {exc.message}"


def check_map_steps(plan: Any, lake: Lake) -> None:
    """Compile every map step of ``plan`` whose inputs the lake holds and no step of the plan
    writes, so that `headwater validate` reports an unknown column at its rule before any
    run. Steps reading a dataset the plan produces are checked when they run."""
    from headwater.pipelines.planner import produced
    from headwater.pipelines.spec import MapStep
    from headwater.transform.mapping import compile_map

    written = {d for step in plan.steps for d in produced(step)}
    for step in plan.steps:
        if not isinstance(step, MapStep):
            continue
        inputs = step.inputs()
        if any(name in written or not lake.exists(name) for name in inputs):
            continue
        schemas = {name: lake.schema(name) for name in inputs}
        compile_map(
            step.from_,
            schemas[step.from_],
            [rule.as_data() for rule in step.rules],
            schemas=schemas,
            locate=_locator(step),
        )


def _locator(step: MapStep) -> Callable[[tuple[str | int, ...], int | None], str]:
    def locate(path: tuple[str | int, ...], offset: int | None) -> str:
        return step.rule_location(path, offset=offset)

    return locate
