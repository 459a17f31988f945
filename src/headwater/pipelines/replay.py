"""Replay quarantined rows through the check step that rejected them.

``headwater quarantine replay DATASET`` takes the rows a ``check`` step quarantined, runs them
through that step's *current* checks (as the pipeline file says now, so after a fix they
pass), appends the rows that pass to the dataset and removes exactly those rows from the
quarantine. Rows that still fail stay quarantined, as they were.

Nothing is doubled, even after a crash between the two commits: the append's commit metadata
names the quarantine version it replayed and the quarantine rows it moved
(``headwater.replay``, ``headwater.replay_rows``); a replay that finds that marker for the
current quarantine version skips the evaluation and the append and only finishes the
quarantine rewrite, whose new version makes the next replay a new one. Row checks are replayed
(``unique`` looks for duplicates in the dataset plus the replayed rows); table checks judge a
whole dataset and are not part of a replay. Rows that a source could not parse (rule
``parse``) or a destination refused (``schema_contract``) are not replayable this way and are
left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from headwater.crashpoints import crash_point
from headwater.errors import QualityError
from headwater.pipelines.check_step import dataset_resolver, relation_of
from headwater.quality.checks import compile_check, quote_ident, sql_literal
from headwater.quality.evaluate import evaluate_checks
from headwater.quality.quarantine import quarantine_name

if TYPE_CHECKING:
    from headwater.pipelines.spec import CheckStep
    from headwater.workspace import Workspace

__all__ = ["ReplayResult", "list_quarantine", "replay_quarantine"]

_ROW = "__hw_qrow"


@dataclass
class ReplayResult:
    """What a replay did: ``rows_in == rows_out + rows_quarantined`` always holds."""

    dataset: str
    rows_in: int = 0  # quarantined rows replayed
    rows_out: int = 0  # of those, appended to the dataset and removed from quarantine
    rows_quarantined: int = 0  # of those, still failing, still quarantined
    rows_skipped: int = 0  # not replayable (parse / schema_contract rejects, other run filter)
    steps: list[str] = field(default_factory=list)
    already_appended: bool = False  # an earlier, interrupted replay had appended the rows


def list_quarantine(
    ws: Workspace, dataset: str, *, rule: str | None = None, run_id: str | None = None
) -> pa.Table:
    """The quarantined rows of ``dataset``, optionally of one rule (a row blocked by several
    checks matches each of them) and of one run."""
    name = quarantine_name(dataset)
    if not ws.lake.exists(name):
        if not ws.lake.exists(dataset):
            _unknown_dataset(ws, dataset)
        return pa.table({})
    table = ws.lake.read(name)
    if run_id:
        table = table.filter(pc.equal(table["run_id"], run_id))
    if rule:
        rules = pc.split_pattern(pc.fill_null(table["rule"], ""), ", ").to_pylist()
        table = table.filter(pa.array([rule in r for r in rules], pa.bool_()))
    return table


def _unknown_dataset(ws: Workspace, dataset: str) -> None:
    from headwater.errors import DatasetNotFoundError, choices_hint

    raise DatasetNotFoundError(
        f"no dataset `{dataset}`",
        dataset=dataset,
        hint=choices_hint(dataset, ws.lake.list(), "datasets"),
    )


def _check_step(ws: Workspace, path: str | Path, step: str, dataset: str) -> CheckStep:
    from headwater.pipelines.spec import CheckStep

    spec = ws.load_pipeline(path)
    found = spec.step(step)
    if not isinstance(found, CheckStep) or found.dataset != dataset:
        raise QualityError(
            f"step `{step}` of `{path}` is not a check of `{dataset}` any more",
            step=step,
            dataset=dataset,
            hint="Pass the pipeline that checks it with --pipeline.",
        )
    return found


def replay_quarantine(
    ws: Workspace,
    dataset: str,
    *,
    run_id: str | None = None,
    pipeline: str | Path | None = None,
) -> ReplayResult:
    """Replay the rows check steps quarantined for ``dataset`` (optionally of one run)."""
    lake = ws.lake
    qname = quarantine_name(dataset)
    result = ReplayResult(dataset)
    if not lake.exists(dataset):
        _unknown_dataset(ws, dataset)
    if not lake.exists(qname):
        return result
    qversion = lake.version(qname)
    quarantine = lake.read(qname, version=qversion)
    quarantine = quarantine.append_column(_ROW, pa.array(range(quarantine.num_rows), pa.int64()))
    marker = f"{qname}@{qversion}"
    done = lake.commit_metadata(dataset, "headwater.replay", marker)
    if done is not None:
        # an earlier replay of this very quarantine version appended its rows and stopped
        # before rewriting the quarantine: finish that, do not evaluate (or append) again
        moved = _decode_rows(str(done.get("headwater.replay_rows", "")))
        result.already_appended = True
        result.rows_in = result.rows_out = len(moved)
        result.rows_skipped = quarantine.num_rows - len(moved)
        _remove_rows(ws, qname, quarantine, moved)
        return result
    groups: dict[str, list[int]] = {}
    step_files: dict[str, str | Path] = {}
    columns = zip(
        quarantine["load_id"].to_pylist(),
        quarantine["run_id"].to_pylist(),
        quarantine["step"].to_pylist(),
        strict=True,
    )
    for i, (load_id, run, step) in enumerate(columns):
        replayable = isinstance(load_id, str) and load_id.startswith("check:") and step
        if not replayable or (run_id is not None and run != run_id):
            result.rows_skipped += 1
            continue
        groups.setdefault(step, []).append(i)
        if step not in step_files:
            step_files[step] = pipeline or _pipeline_file(ws, run, step)
    passed: list[int] = []
    appended: list[pa.Table] = []
    schema = lake.schema(dataset)
    for step, rows in groups.items():
        check_step = _check_step(ws, step_files[step], step, dataset)
        ok, data = _replay_rows(ws, check_step, quarantine.take(rows), schema)
        result.steps.append(step)
        result.rows_in += len(rows)
        passed += ok
        if data.num_rows:
            appended.append(data)
    result.rows_out = len(passed)
    result.rows_quarantined = result.rows_in - result.rows_out
    if not passed:
        return result
    lake.write(
        dataset,
        pa.concat_tables(appended),
        mode="append",
        metadata={"headwater.replay": marker, "headwater.replay_rows": _encode_rows(passed)},
    )
    crash_point("replay.after_append")
    _remove_rows(ws, qname, quarantine, passed)
    return result


def _remove_rows(ws: Workspace, qname: str, quarantine: pa.Table, rows: list[int]) -> None:
    """Rewrite the quarantine without the given row numbers (one commit)."""
    keep = pc.invert(pc.is_in(quarantine[_ROW], pa.array(rows, pa.int64())))
    ws.lake.write(qname, quarantine.filter(keep).drop_columns([_ROW]), mode="overwrite")


def _encode_rows(rows: list[int]) -> str:
    """Row numbers as compact ranges: ``0-4,7,9-12``."""
    parts: list[str] = []
    ordered = sorted(rows)
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def _decode_rows(text: str) -> list[int]:
    rows: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        rows.extend(range(int(low), int(high or low) + 1))
    return rows


def _pipeline_file(ws: Workspace, run_id: str, step: str) -> str:
    run = ws.store.get_run(run_id)
    if run is None or not run.pipeline_file:
        raise QualityError(
            f"cannot tell which pipeline step `{step}` (run `{run_id}`) belongs to",
            step=step,
            hint="Pass the pipeline file with --pipeline.",
        )
    return run.pipeline_file


def _replay_rows(
    ws: Workspace, step: CheckStep, rows: pa.Table, schema: pa.Schema
) -> tuple[list[int], pa.Table]:
    """Run ``rows`` (quarantine rows) through ``step``'s row checks; return the quarantine row
    numbers that pass and their data, in the dataset's schema."""
    compiled = [
        compile_check(c.model_dump(by_alias=False), location=c.location) for c in step.checks
    ]
    row_checks = [c for c in compiled if c.is_row_check]
    dataset = step.dataset
    with ws.session() as session:
        session.attach(dataset)
        session.register_arrow("__hw_quarantined", rows.select([_ROW, "raw_record"]))
        types = {
            str(r[0]): str(r[1])
            for r in session.execute(f"DESCRIBE SELECT * FROM {relation_of(dataset)}")
        }
        structure = (
            "{" + ", ".join(f"{_json_key(n)}: {_json_key(t)}" for n, t in types.items()) + "}"
        )
        cols = ", ".join(quote_ident(n) for n in types)
        session.execute(
            f"CREATE OR REPLACE TEMP TABLE __hw_replay AS SELECT {_ROW}, unnest(r) FROM ("
            f"SELECT {_ROW}, json_transform(raw_record, {sql_literal(structure)}) AS r "
            f"FROM __hw_quarantined)"
        )
        session.execute(
            "CREATE OR REPLACE TEMP VIEW __hw_replay_scope AS "
            f"SELECT {cols} FROM {relation_of(dataset)} "
            f"UNION ALL SELECT {cols} FROM __hw_replay"
        )
        outcome = evaluate_checks(
            session,
            "__hw_replay",
            row_checks,
            resolve=dataset_resolver(session, ws.lake, dataset, None),
            dataset=dataset,
            unique_scope="__hw_replay_scope",
        )
        passing = outcome.passing_rows().read_all()
    if passing.num_rows == 0:
        return [], pa.table({n: pa.array([], schema.field(n).type) for n in schema.names})
    ids = [int(v) for v in passing[_ROW].to_pylist()]
    data = passing.drop_columns([_ROW]).select(schema.names).cast(schema)
    return ids, data


def _json_key(text: str) -> str:
    import json

    return json.dumps(text)
