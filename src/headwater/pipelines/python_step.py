"""``python`` steps: call ``module:function`` on Arrow data, inside a user-code boundary.

The module is imported from the workspace directory (a module of the same name that
was imported from elsewhere is imported again from there). The function gets one
argument per input dataset — a ``pyarrow.Table``, or with ``batches: true`` a
``pyarrow.RecordBatchReader`` that streams — and the step's ``args`` as keyword
arguments. It returns a table, a record batch, a reader, an iterable of record batches,
or (for a step without ``to``) nothing.

Anything the function raises — while called, or while its returned batches are read —
fails the step as :class:`~headwater.errors.UserCodeError`, whose ``traceback`` detail
holds the function's own traceback (the cause is chained too).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from headwater.errors import (
    HeadwaterError,
    PipelineError,
    Transient,
    TransientUserCodeError,
    UserCodeError,
    did_you_mean,
)
from headwater.pipelines.events import StepOutcome
from headwater.pipelines.spec import PythonStep
from headwater.pipelines.steps import Progress, RunContext

__all__ = ["load_function", "run_python", "user_code"]


def _forget(module: str, root: Path) -> None:
    """Drop ``module`` (and its parents) from the import cache when loaded from elsewhere."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        loaded = sys.modules.get(name)
        origin = getattr(loaded, "__file__", None)
        if loaded is not None and (origin is None or root not in Path(origin).resolve().parents):
            del sys.modules[name]


def load_function(reference: str, root: str | Path | None, *, step: str) -> Callable[..., Any]:
    """Import ``module:function`` from the workspace directory ``root``."""
    module_name, _, attr = reference.partition(":")
    base = Path(root).resolve() if root is not None else Path.cwd().resolve()
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    _forget(module_name, base)
    importlib.invalidate_caches()
    try:
        with user_code(step, reference, phase="importing"):
            module = importlib.import_module(module_name)
    except UserCodeError as exc:
        cause = exc.__cause__
        if (
            isinstance(cause, ModuleNotFoundError)
            and cause.name
            and (module_name == cause.name or module_name.startswith(cause.name + "."))
        ):
            path = base / (module_name.replace(".", "/") + ".py")
            raise PipelineError(
                f"step `{step}`: cannot import module `{module_name}` of `{reference}`",
                step=step,
                field="function",
                hint=f"Put the function in {path} (the workspace directory is on the import "
                "path), or fix the module name.",
            ) from None
        raise
    function = getattr(module, attr, None)
    if not callable(function):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = did_you_mean(attr, names)
        raise PipelineError(
            f"step `{step}`: module `{module_name}` has no function `{attr}`."
            + (f" {close}" if close else ""),
            step=step,
            field="function",
            hint=f"Functions in {module_name}: {', '.join(names) or '(none)'}.",
        )
    return function  # type: ignore[no-any-return]


@contextmanager
def user_code(step: str, reference: str, *, phase: str = "calling") -> Iterator[None]:
    """Re-raise anything user code raises as :class:`UserCodeError` (traceback kept)."""
    try:
        yield
    except HeadwaterError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # start at the user's own frame
        trace = "".join(traceback.format_exception(type(exc), exc, tb))
        what = "while importing" if phase == "importing" else "raised"
        message = f"step `{step}`: `{reference}` {what} {type(exc).__name__}: {exc}".rstrip()
        if phase == "importing":
            message = f"step `{step}`: importing `{reference}` raised {type(exc).__name__}: {exc}"
        kind = TransientUserCodeError if isinstance(exc, Transient) else UserCodeError
        raise kind(
            message,
            step=step,
            field="function",
            hint="The traceback of your code is in the run's step details "
            "(`headwater runs show RUN`).",
            traceback=trace,
            exception=type(exc).__name__,
        ) from exc


def _guarded(
    batches: Iterable[pa.RecordBatch], step: str, reference: str
) -> Iterator[pa.RecordBatch]:
    iterator = iter(batches)
    while True:
        with user_code(step, reference):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        if isinstance(batch, pa.Table):
            yield from batch.to_batches()
        elif isinstance(batch, pa.RecordBatch):
            yield batch
        else:
            raise UserCodeError(
                f"step `{step}`: `{reference}` yielded {type(batch).__name__}, "
                "expected pyarrow.RecordBatch or pyarrow.Table",
                step=step,
                field="function",
            )


def _as_reader(result: Any, step: str, reference: str) -> pa.RecordBatchReader:
    if isinstance(result, pa.Table):
        return pa.RecordBatchReader.from_batches(result.schema, result.to_batches())
    if isinstance(result, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(result.schema, [result])
    if isinstance(result, pa.RecordBatchReader):
        return pa.RecordBatchReader.from_batches(result.schema, _guarded(result, step, reference))
    if isinstance(result, Iterable) and not isinstance(result, str | bytes | dict):
        batches = _guarded(result, step, reference)
        first = next(batches, None)
        if first is None:
            raise UserCodeError(
                f"step `{step}`: `{reference}` returned no batches, so there is no schema to write",
                step=step,
                field="function",
                hint="Return an empty pyarrow.Table with the schema instead.",
            )

        def chained() -> Iterator[pa.RecordBatch]:
            yield first
            yield from batches

        return pa.RecordBatchReader.from_batches(first.schema, chained())
    raise UserCodeError(
        f"step `{step}`: `{reference}` returned {type(result).__name__}; a step with `to` "
        "needs a pyarrow.Table, RecordBatch, RecordBatchReader or an iterator of batches",
        step=step,
        field="function",
    )


def run_python(ctx: RunContext, step: PythonStep) -> StepOutcome:
    """Call the step's function and write what it returns."""
    function = load_function(step.function, ctx.workspace_root, step=step.name)
    arguments: list[Any] = []
    input_rows: dict[str, int] = {}
    for name in step.inputs():
        dataset = ctx.lake.dataset(name, version=ctx.pins.get(name))
        input_rows[name] = int(dataset.count_rows())
        if step.batches:
            arguments.append(
                pa.RecordBatchReader.from_batches(
                    dataset.schema, dataset.to_batches(batch_size=ctx.engine.batch_rows)
                )
            )
        else:
            arguments.append(dataset.to_table())
    with user_code(step.name, step.function):
        result = function(*arguments, **dict(step.args))
    if step.name in ctx.cancelled:  # timed out while the function ran: write nothing
        from headwater.errors import StepTimeoutError

        raise StepTimeoutError(f"step `{step.name}` ran past its timeout", step=step.name)
    details: dict[str, Any] = {"input_rows": input_rows, "function": step.function}
    if step.to is None:
        if result is not None:
            details["returned"] = type(result).__name__
        return StepOutcome(
            step.name,
            "python",
            "succeeded",
            rows_in=sum(input_rows.values()),
            inputs=step.inputs(),
            details=details,
        )
    progress = Progress(ctx, step.name)
    commit = ctx.lake.write(
        step.to,
        progress.reader(_as_reader(result, step.name, step.function)),
        mode=step.mode,
        keys=list(step.keys) or None,
        run_id=ctx.run_id,
        allow_schema_replace=step.on_schema_change == "replace",
    )
    details["version"] = commit.version
    return StepOutcome(
        step.name,
        "python",
        "succeeded",
        rows_in=commit.rows,
        rows_out=commit.rows,
        bytes=commit.bytes or progress.bytes,
        inputs=step.inputs(),
        outputs=(step.to,),
        details=details,
    )
