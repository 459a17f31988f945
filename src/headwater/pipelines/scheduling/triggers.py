"""Dataset triggers: the workspace graph, loop detection, and the after-run hook.

The graph has an edge ``pipeline -> dataset`` for every dataset a pipeline's steps may
write, and ``dataset -> pipeline`` for every ``trigger.datasets`` entry. A cycle in it
(``A -> raw.x -> B -> raw.y -> A``) would run pipelines forever; it is refused when the
scheduler starts, when ``headwater schedules`` lists the workspace, and before a run
queues anything.

After a run, :func:`after_run` (called at the end of :meth:`Workspace.run`) finds the
datasets the run committed new versions of (the Delta commits carrying its run id),
queues every pipeline whose trigger watches one of them, and sends the signed notices
of webhook subscriptions.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError, TriggerCycleError
from headwater.transform.refs import DATASET_NAME_PATTERN

if TYPE_CHECKING:
    from headwater.pipelines.events import RunResult
    from headwater.pipelines.scheduling.webhooks import Commit
    from headwater.pipelines.spec import PipelineSpec
    from headwater.workspace import Workspace

__all__ = [
    "WorkspacePipelines",
    "after_run",
    "check_pipeline_triggers",
    "check_trigger_cycles",
    "committed_versions",
    "find_trigger_cycle",
    "load_workspace_pipelines",
    "trigger_chain",
]

log = logging.getLogger("headwater.scheduler")

#: The pipelines that led to the run in progress (set by the scheduler for dataset-
#: triggered runs); a pipeline already in it is never queued again (a runtime guard
#: behind the static cycle check).
trigger_chain: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "headwater_trigger_chain", default=()
)


@dataclass(frozen=True)
class WorkspacePipelines:
    """Every pipeline file of a workspace's ``pipelines/`` folder that loads."""

    specs: dict[str, PipelineSpec]  # by pipeline name
    files: dict[str, Path]  # by pipeline name
    errors: dict[Path, HeadwaterError]  # files that do not load


def load_workspace_pipelines(root: Path) -> WorkspacePipelines:
    from headwater.pipelines.loader import load_pipeline

    specs: dict[str, PipelineSpec] = {}
    files: dict[str, Path] = {}
    errors: dict[Path, HeadwaterError] = {}
    folder = root / "pipelines"
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for path in paths:
        try:
            spec = load_pipeline(path)
        except HeadwaterError as exc:
            errors[path] = exc
            continue
        if spec.name in specs:
            errors[path] = TriggerCycleError(
                f"pipeline name `{spec.name}` is used by {files[spec.name].name} and {path.name}",
                location=str(path),
                pipeline=spec.name,
                hint="Pipeline names must be unique in a workspace; set `name:` in one file.",
            )
            continue
        specs[spec.name] = spec
        files[spec.name] = path
    return WorkspacePipelines(specs, files, errors)


def _writes(spec: PipelineSpec) -> list[str]:
    """Dataset names or patterns (``raw.*`` for a whole replicated zone) the pipeline writes."""
    out: list[str] = []
    for step in spec.steps:
        for name in step.outputs():
            if name not in out:
                out.append(name)
    return out


def _matches(written: str, dataset: str) -> bool:
    return written == dataset or ("*" in written and fnmatch.fnmatchcase(dataset, written))


def find_trigger_cycle(specs: Mapping[str, PipelineSpec]) -> list[str] | None:
    """A loop ``[A, raw.x, B, raw.y, A]`` of pipelines triggering each other, or None."""
    edges: dict[str, list[tuple[str, str]]] = {}  # pipeline -> [(dataset, next pipeline)]
    for name, spec in specs.items():
        for written in _writes(spec):
            for other, other_spec in specs.items():
                trigger = other_spec.trigger
                for watched in trigger.datasets if trigger is not None else ():
                    if _matches(written, watched):
                        edges.setdefault(name, []).append((watched, other))
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for _dataset, nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                start = path.index(nxt)
                loop: list[str] = []
                for i, p in enumerate(path[start:]):
                    loop.append(p)
                    following = path[start + i + 1] if start + i + 1 < len(path) else nxt
                    ds = next(d for d, n in edges[p] if n == following)
                    loop.append(ds)
                loop.append(nxt)
                return loop
            if state.get(nxt) is None:
                found = visit(nxt)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(specs):
        if state.get(node) is None:
            found = visit(node)
            if found is not None:
                return found
    return None


def check_trigger_cycles(pipelines: WorkspacePipelines) -> None:
    """Raise :class:`TriggerCycleError` naming the loop when triggers form one."""
    loop = find_trigger_cycle(pipelines.specs)
    if loop is None:
        return
    first = loop[0]
    spec = pipelines.specs[loop[2]] if len(loop) > 2 else pipelines.specs[first]
    where = spec.location_of(("trigger", "datasets"))
    raise TriggerCycleError(
        "dataset triggers form a loop: " + " -> ".join(loop),
        location=where,
        pipeline=first,
        cycle=loop,
        hint="A pipeline must not be triggered, directly or through other pipelines, by a "
        "dataset it writes. Remove one of these `trigger.datasets` entries, or run one "
        "of the pipelines on a `schedule` instead.",
    )


def check_pipeline_triggers(root: Path, spec: PipelineSpec) -> None:
    """Refuse ``spec`` when, among the workspace's pipelines, its triggers close a loop.

    ``spec`` replaces the file of the same pipeline name (it may be an edited copy).
    """
    if spec.trigger is None and not _any_trigger_file(root):
        return  # nothing in the workspace is triggered: no loop is possible
    pipelines = load_workspace_pipelines(root)
    specs = dict(pipelines.specs)
    files = dict(pipelines.files)
    specs[spec.name] = spec
    if spec.source:
        files[spec.name] = Path(spec.source)
    loop = find_trigger_cycle(specs)
    if loop is not None and spec.name in loop:
        check_trigger_cycles(WorkspacePipelines(specs, files, {}))


def committed_versions(ws: Workspace, result: RunResult) -> dict[str, Commit]:
    """The datasets ``result``'s run committed new versions of, with the newest version.

    Read from the Delta logs (every commit carries its run id), so a step that wrote
    nothing new (an incremental extract with no new rows) triggers nothing.
    """
    import re

    candidates: list[str] = []
    for outcome in result.steps:
        for name in (*outcome.outputs, *_detail_datasets(outcome.details)):
            if re.match(DATASET_NAME_PATTERN, name) and name not in candidates:
                candidates.append(name)
    from datetime import UTC, datetime

    from headwater.pipelines.scheduling.webhooks import Commit

    out: dict[str, Commit] = {}
    lake = ws.lake
    for name in candidates:
        try:
            if not lake.exists(name):
                continue
            entry = lake.commit_metadata(name, "headwater.run_id", result.run_id)
        except HeadwaterError:
            continue
        if entry is not None and entry.get("version") is not None:
            stamp = entry.get("timestamp")
            at = (
                datetime.fromtimestamp(int(stamp) / 1000, UTC)
                if isinstance(stamp, int | float)
                else datetime.now(UTC)
            )
            out[name] = Commit(int(entry["version"]), at)
    return out


def _detail_datasets(details: Mapping[str, Any]) -> Iterable[str]:
    # a replicate step that failed on some tables still committed the others; its error
    # details list every table's dataset
    error = details.get("error")
    tables = error.get("tables") if isinstance(error, dict) else details.get("tables")
    if isinstance(tables, dict):
        for table in tables.values():
            if isinstance(table, dict) and isinstance(table.get("dataset"), str):
                yield table["dataset"]


def after_run(ws: Workspace, result: RunResult) -> None:
    """Queue triggered pipelines and notify subscribers of what ``result`` committed.

    Never raises: the run is already recorded; problems here are logged (and a trigger
    loop is refused, queueing nothing).
    """
    try:
        watched = _any_trigger_file(ws.root)
        if not watched and not _any_subscription(ws):
            return  # nothing to do: spare every run the Delta log reads
        committed = committed_versions(ws, result)
        if committed and watched:
            _queue_triggered(ws, result, committed)
        if committed:
            _notify(ws, result, committed)
    except Exception as exc:  # a trigger must never turn a finished run into an error
        log.error("after run %s: %s", result.run_id, exc)


def _any_trigger_file(root: Path) -> bool:
    """Whether some pipeline file may declare a ``trigger:`` (a cheap text test)."""
    folder = root / "pipelines"
    if not folder.is_dir():
        return False
    for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]:
        try:
            if "trigger" in path.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def _any_subscription(ws: Workspace) -> bool:
    from sqlalchemy import select

    from headwater.metadata.models import SubscriptionRow

    with ws.store.session() as s:
        return s.scalar(select(SubscriptionRow.id).limit(1)) is not None


def _queue_triggered(
    ws: Workspace, result: RunResult, committed: Mapping[str, Commit]
) -> list[int]:
    from headwater.pipelines.scheduling.queue import SchedulerStore

    pipelines = load_workspace_pipelines(ws.root)
    watchers = [
        name
        for name, spec in pipelines.specs.items()
        if spec.trigger is not None and set(spec.trigger.datasets) & set(committed)
    ]
    if not watchers:
        return []
    try:
        check_trigger_cycles(pipelines)
    except TriggerCycleError as exc:
        log.error("not queueing %s: %s", ", ".join(watchers), exc.message)
        return []
    chain = (*trigger_chain.get(), result.pipeline)
    queue = SchedulerStore(ws.store)
    ids: list[int] = []
    for name in watchers:
        if name in chain:
            log.error(
                "not queueing %s: it is already in the trigger chain %s",
                name,
                " -> ".join(chain),
            )
            continue
        spec = pipelines.specs[name]
        assert spec.trigger is not None
        datasets = {d: committed[d].version for d in spec.trigger.datasets if d in committed}
        request, folded = queue.enqueue_triggered(
            name,
            pipeline_file=str(pipelines.files[name]),
            run_id=result.run_id,
            from_pipeline=result.pipeline,
            datasets=datasets,
            chain=list(chain),
        )
        log.info(
            "%s %s (request %s): %s",
            "updated queued" if folded else "queued",
            name,
            request,
            ", ".join(f"{d} v{v}" for d, v in datasets.items()),
        )
        ids.append(request)
    return ids


def _notify(ws: Workspace, result: RunResult, committed: Mapping[str, Commit]) -> None:
    from headwater.pipelines.scheduling.webhooks import notify

    notify(ws, result.pipeline, result.run_id, committed)
