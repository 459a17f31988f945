"""Starting runs, and resuming a failed or interrupted one.

:func:`execute` is what every run goes through (``headwater run``, a resume, each
interval of a backfill): it records the pipeline text under its hash, then runs the plan.

:func:`resume` reruns only what did not finish. It loads the pipeline *text the
interrupted run ran* (kept under its hash, whatever the file says now) with the same
parameters and interval, reuses every step that succeeded — recorded as ``reused`` in the
new run, never executed again — and pins the reads of the datasets those steps wrote to
the versions they committed, so the steps that run again see exactly what the first run
produced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.errors import ResumeError
from headwater.metadata.versions import (
    get_pipeline_version,
    record_pipeline_version,
    step_outputs,
)
from headwater.pipelines.events import Event, RunResult, StepOutcome
from headwater.pipelines.intervals import Interval, parse_point
from headwater.pipelines.params import to_json

if TYPE_CHECKING:
    from headwater.pipelines.planner import Plan
    from headwater.pipelines.spec import PipelineSpec
    from headwater.workspace import Workspace

__all__ = ["execute", "resume"]

_DONE = ("succeeded", "reused", "up_to_date")


def execute(
    ws: Workspace,
    spec: PipelineSpec,
    plan: Plan,
    *,
    pipeline_file: str | None = None,
    trigger: str = "manual",
    on_event: Callable[[Event], None] | None = None,
    select: Sequence[str] | None = None,
    reuse: Mapping[str, StepOutcome] | None = None,
    pins: Mapping[str, int] | None = None,
    extra: Mapping[str, Any] | None = None,
    executor: Any = None,
) -> RunResult:
    """Record the pipeline version and run ``plan`` (on ``executor``: see
    :func:`headwater.pipelines.executors.step_executor`), storing its events."""
    from headwater.config import STATE_DIR
    from headwater.monitoring.sink import RunEventSink
    from headwater.pipelines.executors import step_executor
    from headwater.pipelines.runner import Runner, new_run_id
    from headwater.pipelines.steps import RunContext

    text = spec.text
    digest = record_pipeline_version(ws.store, spec.name, text, pipeline_file)
    bindings = spec.bindings
    run_params: dict[str, Any] = {
        "spec_hash": digest,
        "params": {k: to_json(v) for k, v in bindings.params.items()},
    }
    if bindings.interval is not None:
        iv = bindings.interval
        run_params["interval"] = {
            "start": iv.start.isoformat(),
            "end": iv.end.isoformat(),
            "every": iv.every,
            "key": iv.key,
        }
    if select:
        run_params["select"] = list(select)
    run_params.update(extra or {})
    ctx = RunContext(
        run_id=new_run_id(),
        pipeline=spec.name,
        store=ws.store,
        lake=ws.lake,
        connections=ws.connections,
        engine=ws.settings.engine,
        emit=lambda event: None,
        temp_directory=ws.temp_directory,
        workspace_root=str(ws.root),
        pins=dict(pins or {}),
    )
    with (
        step_executor(ws, executor, getattr(spec, "executor", None)) as execute_attempt,
        RunEventSink(ws.store, ws.root / STATE_DIR / "logs", forward=on_event) as sink,
    ):
        runner = Runner(
            ctx,
            spec,
            plan,
            max_parallel=ws.settings.runner.max_parallel,
            pipeline_file=pipeline_file,
            trigger=trigger,
            on_event=sink.handle,
            reuse=reuse,
            run_params=run_params,
            execute=execute_attempt,
        )
        return runner.run()


def interval_of(params: Mapping[str, Any]) -> Interval | None:
    raw = params.get("interval")
    if not isinstance(raw, dict):
        return None
    return Interval(parse_point(raw["start"]), parse_point(raw["end"]), str(raw["every"]))


def resume(
    ws: Workspace, run_id: str, *, on_event: Callable[[Event], None] | None = None
) -> RunResult:
    """Rerun the failed and unfinished steps of run ``run_id`` (see the module docstring)."""
    from headwater.pipelines.loader import parse_pipeline

    old = ws.get_run(run_id)
    if old.status == "running":
        pid = (old.params or {}).get("pid")
        raise ResumeError(
            f"run `{old.id}` is still running" + (f" (process {pid})" if pid else ""),
            hint="Wait for it to finish, or stop it; a run whose process died is marked "
            "failed when the workspace is next opened.",
        )
    if old.status == "succeeded":
        raise ResumeError(
            f"run `{old.id}` succeeded: there is nothing to resume",
            hint="Start a new run with `headwater run`.",
        )
    params = dict(old.params or {})
    digest = params.get("spec_hash")
    version = get_pipeline_version(ws.store, digest) if isinstance(digest, str) else None
    if version is None:
        raise ResumeError(
            f"run `{old.id}` did not record its pipeline text, so it cannot be resumed",
            hint="Start a new run with `headwater run`.",
        )
    spec = parse_pipeline(
        version.text,
        source=old.pipeline_file or f"<run {old.id[:12]}>",
        default_name=old.pipeline,
        params=params.get("params") or {},
        interval=interval_of(params),
    )
    plan = ws.plan(spec)
    select = params.get("select")
    if isinstance(select, list) and select:
        plan = plan.subset(select)
    outputs = step_outputs(ws.store, old.id)
    reuse: dict[str, StepOutcome] = {}
    for row in old.steps:
        if row.status in _DONE and row.step in plan:
            details = dict(row.details or {})
            details["dataset_versions"] = outputs.get(row.step, {})
            details.setdefault("reused_from", old.id)
            if row.status == "reused":
                details["reused_from"] = (row.details or {}).get("reused_from", old.id)
            reuse[row.step] = StepOutcome(
                row.step,
                row.kind,
                "succeeded",
                rows_in=row.rows_in,
                rows_out=row.rows_out,
                rows_quarantined=row.rows_quarantined,
                bytes=row.bytes,
                inputs=tuple(row.inputs or ()),
                outputs=tuple(row.outputs or ()),
                details=details,
            )
    rerun = [name for name in plan.order if name not in reuse]
    written_again = {d for name in rerun for d in plan.outputs(name)}
    pins: dict[str, int] = {}
    for name in plan.order:  # the last reused writer of a dataset wins
        for dataset, number in (
            reuse.get(name, StepOutcome(name, "", "")).details.get("dataset_versions", {}).items()
        ):
            if dataset not in written_again:
                pins[dataset] = int(number)
    return execute(
        ws,
        spec,
        plan,
        pipeline_file=old.pipeline_file,
        trigger="resume",
        on_event=on_event,
        select=select if isinstance(select, list) else None,
        reuse=reuse,
        pins=pins,
        extra={"resumed_from": old.id},
    )
