"""The worker side of the ``process`` and ``dask`` executors.

:func:`run_step` is a module-level function, so any executor can pickle a reference to
it. It opens the workspace named by the task (once per worker process, then reused),
executes one attempt of one step and returns its :class:`StepOutcome`. Errors leave
the worker with their class, fields and the worker's traceback text; an exception that
cannot be pickled becomes a :class:`~headwater.errors.RunError` naming its type.
Secrets the worker resolved are scrubbed from every message before it leaves.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError, RunError

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.pipelines.events import Event, StepOutcome
    from headwater.workspace import Workspace

__all__ = ["StepTask", "run_step"]

_workspaces: dict[tuple[str, str], Workspace] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class StepTask:
    """One attempt of one step, as sent to a worker."""

    root: str
    settings: Settings
    run_id: str
    pipeline: str
    step: Any  # the step's spec node (pydantic, picklable)
    pins: dict[str, int] = field(default_factory=dict)  # dataset versions a resume reads


def _workspace(root: str, settings: Settings) -> Workspace:
    from headwater.workspace import Workspace

    if settings.secret_key is None and os.environ.get("HEADWATER_SECRET_KEY"):
        settings = settings.model_copy(update={"secret_key": os.environ["HEADWATER_SECRET_KEY"]})
    key = (root, settings.model_dump_json())
    with _lock:
        ws = _workspaces.get(key)
        if ws is None:
            ws = _workspaces[key] = Workspace(Path(root), settings)
        return ws


def _ignore(event: Event) -> None:
    """Progress inside a worker stays there; the runner reports start and finish."""


def _where() -> str:
    return f"step ran in process {os.getpid()} on {socket.gethostname()}"


def run_step(task: StepTask) -> StepOutcome:
    """Execute one step attempt in this process and return its outcome."""
    from headwater.pipelines.steps import RunContext, execute_step

    ws = _workspace(task.root, task.settings)
    ctx = RunContext(
        run_id=task.run_id,
        pipeline=task.pipeline,
        store=ws.store,
        lake=ws.lake,
        connections=ws.connections,
        engine=ws.settings.engine,
        emit=_ignore,
        temp_directory=ws.temp_directory,
        workspace_root=str(ws.root),
        pins=dict(task.pins),
    )
    try:
        return execute_step(ctx, task.step)
    except HeadwaterError as exc:
        ws.connections.scrub_error(exc)
        exc.remote_traceback = ws.connections.scrub(
            "".join(traceback.format_exception(exc)) + _where()
        )
        raise
    except Exception as exc:
        text = ws.connections.scrub("".join(traceback.format_exception(exc)) + _where())
        if _survives_pickling(exc) and ws.connections.scrub(str(exc)) == str(exc):
            exc.add_note(text)
            raise
        error = RunError(
            f"{type(exc).__name__}: {ws.connections.scrub(str(exc))}",
            step=getattr(task.step, "name", None),
            pipeline=task.pipeline,
            error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        )
        error.remote_traceback = text
        raise error from None


def _survives_pickling(exc: BaseException) -> bool:
    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return type(back) is type(exc)
