"""The Workspace facade: one installation's settings, metadata, lake, secrets and engine.

The CLI, the API and tests all go through this class; it holds no logic of its
own beyond wiring the layers together.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater._startup import end_startup
from headwater.config import CONFIG_FILE, STATE_DIR, Settings, load_settings
from headwater.connections import ConnectionInfo, Connections
from headwater.errors import (
    ConfigError,
    DatasetNotFoundError,
    HeadwaterError,
    WorkspaceNotFoundError,
)
from headwater.metadata.store import MetadataStore, sqlite_url
from headwater.secrets import SecretBox

if TYPE_CHECKING:
    from headwater.connectors.base import Stream
    from headwater.engine.session import EngineSession
    from headwater.lake import Lake
    from headwater.metadata.models import RunRow
    from headwater.pipelines.events import Event, RunResult
    from headwater.quality.monitor import QualityReport
    from headwater.quality.profile import DatasetProfile

__all__ = ["DatasetInfo", "Workspace"]

_TEMPLATE = """\
# Headwater workspace settings. Every key can be overridden by an environment
# variable: HEADWATER_<KEY>, nested keys joined by `__` (HEADWATER_LAKE__ROOT).
name: {name}

# metadata_url: postgresql://user@host/db   # default: SQLite in .headwater/metadata.db

lake:
  root: lake            # a directory, or s3://bucket/prefix (with storage_options)

engine:
  batch_rows: 256000    # rows per Arrow batch when streaming
  # threads: 4
  # memory_limit: 2GB

runner:
  max_parallel: 4       # steps run at the same time

# Connections: secrets are ${{ENV_VAR}} references here, or stored encrypted with
# `headwater connections add NAME --type TYPE --secret FIELD=VALUE`.
connections:
  landing:              # files to read: CSV, JSON Lines, Parquet
    type: files
    path: data
  exports:              # files to write
    type: files
    path: exports
"""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    location: str
    schema: pa.Schema
    version: int
    rows: int
    schema_version: int
    updated_at: datetime | None
    owner: str | None = None
    description: str | None = None


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (or $HEADWATER_WORKSPACE) with headwater.yaml."""
    env = os.environ.get("HEADWATER_WORKSPACE")
    here = Path(start or env or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise WorkspaceNotFoundError(
        f"no {CONFIG_FILE} found in {here} or any parent directory",
        hint="Create a workspace with `headwater init DIR`, or pass --workspace DIR "
        "(or set HEADWATER_WORKSPACE).",
    )


class Workspace:
    """An opened workspace. Use :meth:`open` or :meth:`init`; close when done."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        state = root / STATE_DIR
        state.mkdir(exist_ok=True)
        url = settings.metadata_url or sqlite_url(state / "metadata.db")
        self.store = MetadataStore(url)
        self.secrets = SecretBox(state / "key", settings.secret_key)
        self.connections = Connections(
            settings.connections,
            self.store,
            self.secrets,
            base_dir=root,
            config_file=root / CONFIG_FILE,
        )
        self._lake: Lake | None = None
        self.store.reap_abandoned_runs(socket.gethostname(), _pid_alive)

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None) -> Workspace:
        """Open the workspace at ``path`` (or the nearest one above the current directory)."""
        root = find_root(Path(path) if path is not None else None)
        return cls(root, load_settings(root))

    @classmethod
    def init(cls, path: str | Path = ".", *, name: str | None = None) -> Workspace:
        """Create a workspace (idempotent: an existing headwater.yaml is kept)."""
        root = Path(path).resolve()
        root.mkdir(parents=True, exist_ok=True)
        config = root / CONFIG_FILE
        if not config.exists():
            config.write_text(_TEMPLATE.format(name=name or root.name or "headwater"))
        for sub in ("pipelines", "data", "exports", "lake", "archive", "backups", STATE_DIR):
            (root / sub).mkdir(exist_ok=True)
        ws = cls(root, load_settings(root))
        ws.secrets.encrypt("")  # creates .headwater/key (0600) now, not at first use
        return ws

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def temp_directory(self) -> str:
        """Where DuckDB spills to disk (.headwater/tmp)."""
        path = self.root / STATE_DIR / "tmp"
        path.mkdir(exist_ok=True)
        return str(path)

    # -- layers --------------------------------------------------------------------------
    @property
    def lake(self) -> Lake:
        if self._lake is None:
            from headwater.lake import Lake

            root = self.settings.lake.root
            if "://" not in root:
                root = str((self.root / root).resolve())
                if any(ch in root for ch in "[]%"):
                    raise ConfigError(
                        f"the lake directory {root} contains `[`, `]` or `%`, which the Delta "
                        "library cannot use in a table path",
                        field="lake.root",
                        hint="Move the workspace, or set lake.root (HEADWATER_LAKE__ROOT) to a "
                        "directory without those characters.",
                    )
            self._lake = Lake(
                root, self.store, storage_options=self.settings.lake.storage_options or None
            )
        return self._lake

    def session(
        self, *, version: int | None = None, as_of: datetime | str | None = None
    ) -> EngineSession:
        """A DuckDB session where datasets can be attached as ``zone.name`` views."""
        from headwater.engine.session import EngineSession

        lake = self.lake
        return EngineSession(
            lambda name, v, t: (
                lake.parquet_scan(name, version=v, as_of=t)
                or lake.dataset(name, version=v, as_of=t)
            ),
            arrow_resolver=lambda name, v, t: lake.dataset(name, version=v, as_of=t),
            threads=self.settings.engine.threads,
            memory_limit=self.settings.engine.memory_limit,
            version=version,
            as_of=as_of,
            temp_directory=self.temp_directory,
        )

    # -- pipelines -----------------------------------------------------------------------
    def pipeline_path(self, path: str | Path) -> Path:
        """Resolve a pipeline file: absolute, else relative to the workspace root, then to
        its pipelines/ folder, then to the current directory (``.yaml`` may be left out)."""
        p = Path(path)
        candidates = [p] if p.is_absolute() else [self.root / p, self.root / "pipelines" / p, p]
        candidates += [c.with_suffix(".yaml") for c in candidates if not c.suffix]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ConfigError(
            f"pipeline file `{path}` not found",
            hint=f"Looked in the current directory and {self.root / 'pipelines'}.",
        )

    def load_pipeline(
        self,
        path: str | Path,
        *,
        params: Mapping[str, Any] | None = None,
        interval: Any = None,
    ) -> Any:
        """Load a pipeline file with parameter values (text or typed) and an interval."""
        from headwater.pipelines.loader import load_pipeline

        return load_pipeline(self.pipeline_path(path), params=params, interval=interval)

    def plan(self, spec: Any) -> Any:
        from headwater.pipelines.planner import plan

        return plan(
            spec,
            dataset_exists=self.lake.exists,
            connection_names=self.connections.names(),
            known_datasets=self.lake.list(),
        )

    def validate(self, path: str | Path, *, params: Mapping[str, Any] | None = None) -> Any:
        """Load and plan a pipeline without running it; returns the plan."""
        from headwater.pipelines.map_step import check_map_steps
        from headwater.pipelines.scheduling.triggers import check_pipeline_triggers

        spec = self.load_pipeline(path, params=params)
        check_pipeline_triggers(self.root, spec)  # dataset triggers must not form a loop
        plan = self.plan(spec)
        check_map_steps(plan, self.lake)  # rule columns against the lake's schemas
        return plan

    def run(
        self,
        pipeline: str | Path | Any,
        *,
        select: Sequence[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        trigger: str = "manual",
        params: Mapping[str, Any] | None = None,
        interval: Any = None,
        executor: Any = None,
    ) -> RunResult:
        """Run a pipeline (a path or a loaded spec) and return its result.

        ``params`` sets the pipeline's parameters (for a path); ``interval`` is the
        backfill interval its templates see. ``executor``: ``"local"``, ``"process"``,
        ``"dask"`` / ``"dask=ADDRESS"``, a mapping like the pipeline's ``executor:``, or a
        ``concurrent.futures.Executor`` you own; default: the pipeline's ``executor:``, else
        threads. Events are stored (see :mod:`headwater.monitoring`) and also passed to
        ``on_event``.
        """
        from headwater.pipelines.resume import execute

        path: Path | None = None
        if isinstance(pipeline, str | Path):
            path = self.pipeline_path(pipeline)
            spec = self.load_pipeline(path, params=params, interval=interval)
        else:
            spec = pipeline
        plan = self.plan(spec)
        if select:
            plan = plan.subset(list(select))
        from headwater.quality.monitor import RunMonitor

        monitor = RunMonitor(self)  # a broken quality/alerts section fails before data moves
        result = execute(
            self,
            spec,
            plan,
            pipeline_file=str(path) if path else None,
            trigger=trigger,
            on_event=on_event,
            select=select,
            executor=executor,
        )
        end_startup()  # the collector, deferred by the console script, runs from here on
        self._after_run(result, monitor)
        return result

    def resume(self, run_id: str, *, on_event: Callable[[Event], None] | None = None) -> RunResult:
        """Rerun only the failed and unfinished steps of a run, reusing the others."""
        from headwater.pipelines.resume import resume
        from headwater.quality.monitor import RunMonitor

        monitor = RunMonitor(self)
        result = resume(self, run_id, on_event=on_event)
        self._after_run(result, monitor)
        return result

    def _after_run(self, result: RunResult, monitor: Any) -> None:
        """Work that follows every finished run: metrics, anomalies, score and alerts of the
        run, then dataset triggers and subscriber notices."""
        from headwater.pipelines.scheduling.triggers import after_run

        monitor.after_run(result)
        after_run(self, result)

    # -- runs ------------------------------------------------------------------------------
    def runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        return self.store.list_runs(pipeline=pipeline, limit=limit)

    def get_run(self, run_id: str) -> RunRow:
        row = self.store.get_run(run_id)
        if row is None:
            raise ConfigError(
                f"no run with id `{run_id}`", hint="List runs with `headwater runs list`."
            )
        return row

    # -- datasets --------------------------------------------------------------------------
    def datasets(self) -> list[str]:
        return self.lake.list()

    def dataset_info(self, name: str) -> DatasetInfo:
        lake = self.lake
        if not lake.exists(name):
            from headwater.errors import choices_hint

            raise DatasetNotFoundError(
                f"no dataset named `{name}`",
                dataset=name,
                hint=choices_hint(name, lake.list(), "datasets"),
            )
        history = lake.history(name)
        row = self.store.get_dataset(name)
        rows = lake.dataset(name).count_rows()
        return DatasetInfo(
            name=name,
            location=lake.location(name),
            schema=lake.schema(name),
            version=max(h.version for h in history) if history else 0,
            rows=rows,
            schema_version=row.schema_version if row else 0,
            updated_at=MetadataStore.as_utc(row.updated_at) if row else None,
            owner=row.owner if row else None,
            description=row.description if row else None,
        )

    def history(self, name: str) -> list[Any]:
        return self.lake.history(name)

    def read(self, name: str, **kwargs: Any) -> pa.Table:
        """Read a dataset (``columns=``, ``filter=``, ``version=``, ``as_of=``)."""
        return self.lake.read(name, **kwargs)

    def write(
        self,
        name: str,
        data: Any,
        *,
        mode: str = "append",
        keys: Sequence[str] | None = None,
    ) -> Any:
        """Write Arrow data (a Table, RecordBatchReader or batches) to a dataset.

        Same rules as a pipeline step: schema evolution, atomic overwrite, merge on keys.
        """
        return self.lake.write(name, data, mode=mode, keys=keys)  # type: ignore[arg-type]

    def quarantine(self, dataset: str | None = None) -> pa.Table:
        """Quarantined rows by dataset and rule; or, given a dataset, its quarantined rows."""
        from headwater.lake.names import quarantine_name

        names = [n for n in self.lake.list() if n.endswith("__quarantine")]
        if dataset is not None:
            name = quarantine_name(dataset)
            if name not in names:
                return pa.table({})
            return self.lake.read(name)
        if not names:
            return pa.table({"dataset": pa.array([], pa.string())})
        parts = " UNION ALL ".join(
            f"SELECT dataset, rule, count(*) AS rows, max(quarantined_at) AS last_at "
            f"FROM {name} GROUP BY ALL"
            for name in names
        )
        return self.query(f"SELECT * FROM ({parts}) ORDER BY dataset, rows DESC")

    # -- quality ---------------------------------------------------------------------------
    def profile(
        self, name: str, *, version: int | None = None, histograms: bool = True
    ) -> DatasetProfile:
        """Profile dataset ``name`` (its current version, or ``version``) and store it."""
        from headwater.quality.profile import profile_dataset

        return profile_dataset(self, name, version=version, histograms=histograms)

    def quality(self, name: str, *, measure: bool = False, limit: int = 30) -> QualityReport:
        """Quality score history of ``name`` (measured now when asked or never scored)."""
        from headwater.quality.monitor import quality_report

        return quality_report(self, name, measure=measure, limit=limit)

    # -- query -----------------------------------------------------------------------------
    def query(
        self,
        sql: str,
        *,
        as_of: int | datetime | str | None = None,
    ) -> pa.Table:
        """Run DuckDB SQL over datasets (``zone.name``), optionally as of a version/time."""
        from headwater.engine.session import referenced_tables

        version, at = _split_as_of(as_of)
        known = set(self.lake.list())
        with self.session(version=version, as_of=at) as session:
            session.check_single_statement(sql)
            names = [n for n in referenced_tables(sql) if n in known]
            session.attach_many(names)
            return session.table(sql)

    # -- connections -----------------------------------------------------------------------
    def add_connection(
        self,
        name: str,
        type: str,
        config: Mapping[str, Any] | None = None,
        *,
        secrets: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> ConnectionInfo:
        return self.connections.add(
            name, type, dict(config or {}), secrets=secrets, description=description
        )

    def test_connection(self, name: str) -> None:
        self.connections.test(name)

    def discover(self, name: str) -> list[Stream]:
        """The streams a connection offers (tables, files, ...) with their Arrow schemas."""
        source = self.connections.source(name)
        try:
            return source.discover()
        except HeadwaterError as exc:
            raise self.connections.scrub_error(exc) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _split_as_of(as_of: int | datetime | str | None) -> tuple[int | None, datetime | str | None]:
    if as_of is None:
        return None, None
    if isinstance(as_of, int):
        return as_of, None
    if isinstance(as_of, str) and as_of.strip().isdigit():
        return int(as_of.strip()), None
    return None, as_of
