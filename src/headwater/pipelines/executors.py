"""Executors: where the steps of a run execute.

``local`` (the default) runs steps on threads of the running process: DuckDB, Arrow and
deltalake release the GIL, so I/O- and engine-bound steps overlap well. ``process`` runs
each step in a local process pool; ``dask`` sends each step to a Dask distributed cluster
(a scheduler address, or a 2-worker ``LocalCluster`` started for the run).

The runner stays the same in every case: it decides what is ready, records the step runs,
retries ``Transient`` errors and emits events. With ``process`` or ``dask`` only the work of
one step attempt crosses to the worker, as a :class:`~headwater.pipelines.worker.StepTask`
(workspace root, settings, run id, the step's spec); the worker opens the same workspace
(same metadata database, same lake) and sends back the small
:class:`~headwater.pipelines.events.StepOutcome`. An error raised in a worker arrives as
the same :class:`~headwater.errors.HeadwaterError` class with its fields and the worker's
traceback text.

Pick an executor in the pipeline (``executor: {type: dask, address: tcp://host:8786}``),
on the command line (``headwater run --executor dask[=ADDRESS]``) or in Python
(``ws.run(path, executor="process")``, or an executor object you manage yourself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from headwater.errors import ConfigError, RunError, choices_hint

if TYPE_CHECKING:
    from headwater.pipelines.events import StepOutcome
    from headwater.pipelines.steps import RunContext
    from headwater.workspace import Workspace

__all__ = [
    "EXECUTOR_TYPES",
    "DaskExecutor",
    "ExecutorConfig",
    "RemoteSteps",
    "make_executor",
    "parse_executor_option",
    "resolve_executor",
    "step_executor",
]

ExecutorKind = Literal["thread", "process", "dask"]
#: the ``type`` values a pipeline's ``executor`` (and ``--executor``) accepts
EXECUTOR_TYPES = ("local", "process", "dask")
_KIND_OF_TYPE: dict[str, ExecutorKind] = {"local": "thread", "process": "process", "dask": "dask"}

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor a run uses: ``type`` local | process | dask."""

    type: str = "local"
    address: str | None = None
    workers: int = 2

    @property
    def kind(self) -> ExecutorKind:
        return _KIND_OF_TYPE[self.type]


class DaskExecutor(Executor):
    """A ``concurrent.futures`` executor over a Dask distributed client.

    With ``address`` it connects to a running scheduler; without, it starts a
    ``LocalCluster`` of ``workers`` processes (one thread each, HTTP ports picked free). Tasks are
    submitted impure, so a retried step really runs again. ``shutdown`` closes the client
    and any cluster this executor started.
    """

    def __init__(self, address: str | None = None, *, workers: int = 2) -> None:
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                "the dask executor needs the `distributed` package",
                field="executor.type",
                hint="Install it with `pip install 'headwater[dask]'`, or use executor "
                "`local` or `process`.",
            ) from exc
        dist: Any = distributed  # untyped library
        self._cluster: Any = None
        self.client: Any
        if address:
            try:
                self.client = dist.Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at `{address}`: {exc}",
                    field="executor.address",
                    hint="Start one with `dask scheduler` (and `dask worker ADDRESS`), or leave "
                    "out the address to start a local cluster.",
                ) from exc
        else:
            import dask

            # Dask pins OMP_NUM_THREADS=1 in workers, which shrinks Arrow's thread pool;
            # a step must see the same engine in a worker as in-process (same results)
            environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
            for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                environ.pop(key, None)
            try:
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                    self._cluster = dist.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        # any free port: a fixed one collides with other clusters
                        dashboard_address=":0",
                        worker_dashboard_address=":0",
                    )
            except (RuntimeError, OSError, TimeoutError) as exc:
                raise RunError(
                    f"cannot start a local Dask cluster of {workers} workers: {exc}",
                    field="executor",
                    hint="Worker processes are spawned and import the main module: from "
                    "Python, run a script guarded by `if __name__ == '__main__':` (not code "
                    "piped to stdin); or connect to a running scheduler with `dask=ADDRESS`.",
                ) from exc
            self.client = dist.Client(self._cluster)
        self._executor: Any = self.client.get_executor(pure=False)

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = self._executor.submit(fn, *args, **kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: ExecutorKind, **options: Any) -> Executor:
    """A new executor: ``thread`` | ``process`` | ``dask``.

    Options: ``workers`` (pool size; default 4 threads, 2 processes, 2 Dask workers) and,
    for ``dask``, ``address`` (a scheduler; without it a ``LocalCluster`` is started).
    """
    workers = options.get("workers")
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers or 4, thread_name_prefix="hw-step")
    if kind == "process":
        import multiprocessing

        # spawn, never fork: the parent holds threads, DuckDB and SQLite handles
        return ProcessPoolExecutor(
            max_workers=workers or 2, mp_context=multiprocessing.get_context("spawn")
        )
    if kind == "dask":
        return DaskExecutor(options.get("address"), workers=workers or 2)
    raise ConfigError(
        f"unknown executor kind `{kind}`",
        field="executor",
        hint=choices_hint(str(kind), ("thread", "process", "dask"), "kinds"),
    )


def parse_executor_option(text: str) -> ExecutorConfig:
    """``local`` | ``process[=WORKERS]`` | ``dask[=ADDRESS]`` as given to ``--executor``."""
    name, sep, value = text.strip().partition("=")
    name = name.strip().lower()
    if name not in EXECUTOR_TYPES:
        raise ConfigError(
            f"unknown executor `{name}`",
            field="--executor",
            hint=choices_hint(name, EXECUTOR_TYPES, "executors")
            + " Write `dask=tcp://HOST:8786` for a running Dask scheduler.",
        )
    value = value.strip()
    if name == "dask":
        return ExecutorConfig("dask", address=value or None)
    if name == "process" and value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"`--executor process={value}`: the number of worker processes must be a "
                "positive integer",
                field="--executor",
                hint="For example `--executor process=4`.",
            )
        return ExecutorConfig("process", workers=int(value))
    if sep and value:
        raise ConfigError(
            f"`--executor {text.strip()}`: the `{name}` executor takes no value",
            field="--executor",
            hint="Use `local`, `process=WORKERS` or `dask=ADDRESS`.",
        )
    return ExecutorConfig(name)


def resolve_executor(choice: Any, spec_executor: Any = None) -> ExecutorConfig:
    """The executor of a run: an explicit choice beats the pipeline's ``executor:``."""
    value = choice if choice is not None else spec_executor
    if value is None:
        return ExecutorConfig()
    if isinstance(value, ExecutorConfig):
        return value
    if isinstance(value, str):
        return parse_executor_option(value)
    if isinstance(value, Mapping):
        data = dict(value)
    else:  # the pipeline's ExecutorSpec node
        data = {k: getattr(value, k) for k in ("type", "address", "workers")}
    kind = str(data.get("type") or "local")
    if kind not in EXECUTOR_TYPES:
        raise ConfigError(
            f"unknown executor `{kind}`",
            field="executor.type",
            hint=choices_hint(kind, EXECUTOR_TYPES, "executors"),
        )
    return ExecutorConfig(kind, address=data.get("address"), workers=int(data.get("workers") or 2))


class RemoteSteps:
    """Runs one step attempt on an executor, in a worker that opens the same workspace."""

    def __init__(self, executor: Executor, workspace: Workspace) -> None:
        self.executor = executor
        self.root = str(workspace.root)
        # the secrets key never travels with a task: a worker reads HEADWATER_SECRET_KEY or
        # the workspace's key file itself
        self.settings = workspace.settings.model_copy(update={"secret_key": None})

    def __call__(self, ctx: RunContext, step: Any) -> StepOutcome:
        from headwater.pipelines.worker import StepTask, run_step

        task = StepTask(
            root=self.root,
            settings=self.settings,
            run_id=ctx.run_id,
            pipeline=ctx.pipeline,
            step=step,
            pins=dict(ctx.pins),
        )
        return self.executor.submit(run_step, task).result()


@contextmanager
def step_executor(
    workspace: Workspace, choice: Any = None, spec_executor: Any = None
) -> Iterator[Callable[[RunContext, Any], StepOutcome] | None]:
    """What the runner calls to execute a step: None means in-process (threads).

    ``choice`` may also be a ``concurrent.futures.Executor`` the caller owns (a shared
    process pool or Dask executor); it is used and left open.
    """
    if isinstance(choice, Executor):
        yield RemoteSteps(choice, workspace)
        return
    config = resolve_executor(choice, spec_executor)
    if config.kind == "thread":
        yield None
        return
    executor = make_executor(config.kind, workers=config.workers, address=config.address)
    try:
        yield RemoteSteps(executor, workspace)
    finally:
        executor.shutdown(wait=True)
