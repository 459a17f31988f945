"""Incremental SQL transforms: each run sees only the rows added to its inputs.

The input versions a run consumed are written into the custom metadata of the output's
Delta commit (``headwater.incremental``: ``<pipeline>/<step>``, ``headwater.inputs``: JSON
``{dataset: version}``), so the record commits atomically with the rows it describes: a
crash before the commit leaves neither, a crash after it leaves both, and nothing is
appended twice.

On the next run, an input that records Delta's change data feed is read from it (rows
inserted, and new images of rows updated, which only `strategy: merge` can apply). Any
other input contributes the rows of the data files its current snapshot has and the
recorded one had not. When the recorded snapshot's files are not all still there (an
overwrite, merge, delete or compaction rewrote them), or the files cannot be read as plain
Parquet, the run recomputes the whole output instead and says why.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from headwater.pipelines.events import StepOutcome
from headwater.pipelines.map_step import record_lineage
from headwater.transform.refs import find_refs, render_refs

if TYPE_CHECKING:
    from headwater.pipelines.spec import TransformStep
    from headwater.pipelines.steps import RunContext

__all__ = ["INPUTS_KEY", "STEP_KEY", "added_files", "changed_rows", "run_incremental"]

STEP_KEY = "headwater.incremental"
INPUTS_KEY = "headwater.inputs"


def added_files(ctx: RunContext, dataset: str, old: int, new: int) -> list[str] | str:
    """Data files of version ``new`` that version ``old`` did not have, or why that
    cannot be told (then the caller recomputes everything)."""
    before, after = _files(ctx, dataset, old), _files(ctx, dataset, new)
    if before is None or after is None:
        return f"`{dataset}` cannot be read as plain Parquet files"
    if not set(before) <= set(after):
        return f"`{dataset}` was rewritten between versions {old} and {new}"
    seen = set(before)
    return [f for f in after if f not in seen]


def changed_rows(
    ctx: RunContext, dataset: str, old: int, new: int, strategy: str
) -> pa.Table | str | None:
    """Rows inserted or updated between versions ``old`` and ``new`` from Delta's change
    data feed; None when the dataset does not record one (then files are compared), or
    why the changes cannot be applied incrementally (then everything is recomputed)."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(ctx.lake.location(dataset), storage_options=ctx.lake.storage_options)
    config = table.metadata().configuration or {}
    if str(config.get("delta.enableChangeDataFeed", "")).lower() != "true":
        return None
    for entry in ctx.lake.history(dataset):
        if old < entry.version <= new and (
            entry.mode == "overwrite" or "REPLACE" in entry.operation.upper()
        ):
            return f"`{dataset}` was overwritten between versions {old} and {new}"
    try:
        changes = pa.table(table.load_cdf(starting_version=old + 1, ending_version=new).read_all())
    except Exception:  # the feed was not enabled for all of these versions
        return None
    change = changes.column("_change_type").cast(pa.string())  # Delta gives string views
    kinds = set(pc.unique(change).to_pylist())
    if "delete" in kinds:
        return f"rows were deleted from `{dataset}` between versions {old} and {new}"
    if "update_postimage" in kinds and strategy != "merge":
        return (
            f"rows of `{dataset}` were updated between versions {old} and {new}, which "
            "`strategy: append` cannot apply (use `strategy: merge`)"
        )
    keep = pc.is_in(change, pa.array(["insert", "update_postimage"]))
    schema = ctx.lake.schema(dataset, version=new)  # also turns Delta's string views to text
    return changes.select(schema.names).cast(schema).filter(keep)


def _files(ctx: RunContext, dataset: str, version: int) -> list[str] | None:
    scan = ctx.lake.parquet_scan(dataset, version=version)
    if scan is not None:
        return scan[0]
    return [] if int(ctx.lake.dataset(dataset, version=version).count_rows()) == 0 else None


def _recorded(ctx: RunContext, step: TransformStep) -> dict[str, int] | None:
    if not ctx.lake.exists(step.to):
        return None
    entry = ctx.lake.commit_metadata(step.to, STEP_KEY, f"{ctx.pipeline}/{step.name}")
    if entry is None or INPUTS_KEY not in entry:
        return None
    try:
        return {str(k): int(v) for k, v in json.loads(str(entry[INPUTS_KEY])).items()}
    except (ValueError, AttributeError):
        return None


def _attach_files(
    session: Any, dataset: str, files: list[str] | pa.Table, schema: pa.Schema
) -> None:
    """Expose only ``files`` of ``dataset`` (or rows from its change feed) as the view
    ``"zone"."name"``."""
    zone, _, name = dataset.partition(".")
    con = session.con
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
    internal = f"__hw_new_{zone}_{name}"
    if isinstance(files, pa.Table):
        con.register(internal, files)
        con.execute(f'CREATE OR REPLACE VIEW "{zone}"."{name}" AS SELECT * FROM {internal}')
    elif files:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        columns = ", ".join('"' + c.replace('"', '""') + '"' for c in schema.names)
        source = f"SELECT {columns} FROM read_parquet([{listed}], union_by_name = true)"
        con.execute(f'CREATE OR REPLACE VIEW "{zone}"."{name}" AS {source}')
    else:
        con.register(internal, schema.empty_table())
        con.execute(f'CREATE OR REPLACE VIEW "{zone}"."{name}" AS SELECT * FROM {internal}')
    session._attached.add(dataset)


def run_incremental(ctx: RunContext, step: TransformStep) -> StepOutcome:
    from headwater.pipelines.steps import Progress

    options = step.incremental_options
    assert options is not None
    refs = find_refs(step.sql)
    incremental = list(options.inputs) if options.inputs is not None else refs
    current = {name: ctx.lake.version(name) for name in refs}
    recorded = _recorded(ctx, step)
    new_files: dict[str, list[str] | pa.Table] = {}
    reason: str | None = None
    if recorded is None:
        reason = "first run"
    else:
        for name in incremental:
            if name not in recorded:
                reason = f"`{name}` was not an input of the last run"
                break
            if recorded[name] > current[name]:
                reason = f"`{name}` is at version {current[name]}, older than the last run's"
                break
            found: list[str] | pa.Table | str | None = None
            if recorded[name] < current[name]:
                found = changed_rows(ctx, name, recorded[name], current[name], options.strategy)
            if found is None:
                found = added_files(ctx, name, recorded[name], current[name])
            if isinstance(found, str):
                reason = found
                break
            new_files[name] = found
    base: dict[str, Any] = {"input_versions": current, "incremental_inputs": incremental}
    if reason is None and not any(len(found) for found in new_files.values()):
        since = ", ".join(f"{n} v{recorded[n]}" for n in incremental) if recorded else ""
        return StepOutcome(
            step.name,
            "transform",
            "up_to_date",
            inputs=tuple(refs),
            details={**base, "incremental": "up_to_date", "message": f"no new rows since {since}"},
        )
    progress = Progress(ctx, step.name)
    full = reason is not None
    mode: Literal["overwrite", "append", "merge"] = "overwrite" if full else options.strategy
    keys = None if full else (list(options.keys) or None)
    sql = render_refs(step.sql, lambda name: ".".join(f'"{p}"' for p in name.split(".")))
    sources: dict[str, str] = {}
    with ctx.session(pins=current) as session:
        rows_new: dict[str, int] = {}
        for name in refs:
            if not full and name in new_files:
                schema = ctx.lake.schema(name, version=current[name])
                _attach_files(session, name, new_files[name], schema)
                sources[name] = (
                    "change data feed" if isinstance(new_files[name], pa.Table) else "new files"
                )
                zone, _, table = name.partition(".")
                rows_new[name] = int(
                    session.execute(f'SELECT count(*) FROM "{zone}"."{table}"')[0][0]
                )
            else:
                session.attach(name)
        reader = session.reader(sql, batch_rows=ctx.engine.batch_rows)
        commit = ctx.lake.write(
            step.to,
            progress.reader(reader),
            mode=mode,
            keys=keys,
            run_id=ctx.run_id,
            allow_schema_replace=full and step.on_schema_change == "replace",
            metadata={
                STEP_KEY: f"{ctx.pipeline}/{step.name}",
                INPUTS_KEY: json.dumps(current, sort_keys=True),
            },
        )
        columns = reader.schema.names
    details: dict[str, Any] = {
        **base,
        "incremental": "full" if full else mode,
        "version": commit.version,
        "schema_change": commit.schema_change,
    }
    if full:
        details["reason"] = reason
    else:
        details["new_rows"] = rows_new
        details["read_from"] = sources
        details["since"] = recorded
    details["lineage"] = record_lineage(
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
        details=details,
    )
