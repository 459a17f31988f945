"""The metadata store: engine set-up, migrations on open, and small repositories.

SQLite (WAL) inside the workspace by default; PostgreSQL when a URL is given.
Every method opens its own short transaction, so the store is safe to share
between the runner's threads.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from headwater.errors import MetadataError
from headwater.metadata.models import (
    CheckpointRow,
    CheckResultRow,
    ConnectionRow,
    DatasetRow,
    RunRow,
    SchemaVersionRow,
    SecretRow,
    StepRunRow,
    utcnow,
)

__all__ = ["MetadataStore", "sqlite_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True)


@functools.cache
def _head_revision() -> str | None:
    """The newest revision among the migration files (read as text; None if unclear)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r'^revision = "([^"]+)"', text, re.M)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        parent = re.search(r'^down_revision = "([^"]+)"', text, re.M)
        if parent is not None:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<metadata url>"


class MetadataStore:
    """Opens (and migrates) the metadata database and offers repository methods."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine = _make_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise MetadataError(
                f"Cannot open metadata store {_redact(url)}: {exc}",
                hint="Check HEADWATER_METADATA_URL (e.g. postgresql://user@host/db).",
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    # -- lifecycle -------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every pending Alembic migration (a quick version check when none is)."""
        if self._at_head():
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with _migrate_lock, self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise MetadataError(
                f"Cannot reach metadata store {_redact(self.url)}: "
                f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}",
                hint="Is the database running? Check HEADWATER_METADATA_URL.",
            ) from exc

    def _at_head(self) -> bool:
        """True when the database is at the newest migration: then Alembic is not imported."""
        head = _head_revision()
        if head is None:
            return False
        try:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except SQLAlchemyError:
            return False
        return [r[0] for r in rows] == [head]

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # -- datasets & schema versions -------------------------------------------------
    def get_dataset(self, name: str) -> DatasetRow | None:
        with self.session() as s:
            return s.scalar(select(DatasetRow).where(DatasetRow.name == name))

    def list_datasets(self) -> list[DatasetRow]:
        with self.session() as s:
            return list(s.scalars(select(DatasetRow).order_by(DatasetRow.name)))

    def upsert_dataset(self, name: str, *, zone: str, location: str, **fields: Any) -> DatasetRow:
        """Create or update a dataset row; safe against a concurrent creator of the same name."""
        try:
            return self._upsert_dataset(name, zone=zone, location=location, **fields)
        except IntegrityError:  # another writer created it between our read and insert
            return self._upsert_dataset(name, zone=zone, location=location, **fields)

    def _upsert_dataset(self, name: str, *, zone: str, location: str, **fields: Any) -> DatasetRow:
        with self.session() as s:
            row = s.scalar(select(DatasetRow).where(DatasetRow.name == name))
            if row is None:
                row = DatasetRow(name=name, zone=zone, location=location, tags=[], keys=[])
                s.add(row)
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.flush()
            return row

    def delete_dataset(self, name: str) -> None:
        with self.session() as s:
            row = s.scalar(select(DatasetRow).where(DatasetRow.name == name))
            if row is not None:
                s.delete(row)

    def schema_versions(self, name: str) -> list[SchemaVersionRow]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(SchemaVersionRow)
                    .join(DatasetRow)
                    .where(DatasetRow.name == name)
                    .order_by(SchemaVersionRow.version)
                )
            )

    def add_schema_version(
        self,
        name: str,
        fields: list[dict[str, Any]],
        *,
        change: str,
        table_version: int | None = None,
        run_id: str | None = None,
    ) -> SchemaVersionRow:
        """Record a new schema version for dataset ``name`` (which must exist).

        Two writers evolving the same dataset at once both compute the next number;
        the unique (dataset, version) constraint stops the second, which retries.
        """
        for attempt in range(5):
            try:
                return self._add_schema_version(
                    name, fields, change=change, table_version=table_version, run_id=run_id
                )
            except IntegrityError:
                if attempt == 4:
                    raise MetadataError(
                        f"Could not record a schema version of `{name}`: too many concurrent "
                        "writers",
                        dataset=name,
                    ) from None
        raise AssertionError("unreachable")

    def _add_schema_version(
        self,
        name: str,
        fields: list[dict[str, Any]],
        *,
        change: str,
        table_version: int | None,
        run_id: str | None,
    ) -> SchemaVersionRow:
        with self.session() as s:
            ds = s.scalar(select(DatasetRow).where(DatasetRow.name == name))
            if ds is None:
                raise MetadataError(f"Dataset `{name}` is not registered in metadata.")
            latest = s.scalar(
                select(SchemaVersionRow).where(
                    SchemaVersionRow.dataset_id == ds.id,
                    SchemaVersionRow.version == ds.schema_version,
                )
            )
            if latest is not None and latest.fields == fields:
                return latest  # a concurrent writer already recorded this very schema
            version = ds.schema_version + 1
            row = SchemaVersionRow(
                dataset_id=ds.id,
                version=version,
                fields=fields,
                change=change,
                table_version=table_version,
                run_id=run_id,
            )
            s.add(row)
            ds.schema_version = version
            ds.updated_at = utcnow()
            s.flush()
            return row

    # -- connections & secrets -----------------------------------------------------------
    def list_connections(self) -> list[ConnectionRow]:
        with self.session() as s:
            return list(s.scalars(select(ConnectionRow).order_by(ConnectionRow.name)))

    def get_connection(self, name: str) -> ConnectionRow | None:
        with self.session() as s:
            return s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))

    def save_connection(
        self, name: str, type_: str, config: dict[str, Any], description: str | None = None
    ) -> ConnectionRow:
        with self.session() as s:
            row = s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))
            if row is None:
                row = ConnectionRow(name=name, type=type_, config=config)
                s.add(row)
            row.type, row.config, row.description = type_, config, description
            row.updated_at = utcnow()
            s.flush()
            return row

    def delete_connection(self, name: str) -> bool:
        with self.session() as s:
            row = s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))
            if row is None:
                return False
            s.delete(row)
            return True

    def put_secret(self, name: str, ciphertext: bytes) -> None:
        with self.session() as s:
            row = s.scalar(select(SecretRow).where(SecretRow.name == name))
            if row is None:
                s.add(SecretRow(name=name, ciphertext=ciphertext))
            else:
                row.ciphertext = ciphertext

    def get_secret(self, name: str) -> bytes | None:
        with self.session() as s:
            row = s.scalar(select(SecretRow).where(SecretRow.name == name))
            return None if row is None else row.ciphertext

    # -- runs ----------------------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        pipeline: str,
        *,
        pipeline_file: str | None = None,
        trigger: str = "manual",
        params: dict[str, Any] | None = None,
    ) -> RunRow:
        with self.session() as s:
            row = RunRow(
                id=run_id,
                pipeline=pipeline,
                pipeline_file=pipeline_file,
                status="running",
                trigger=trigger,
                params=params or {},
                started_at=utcnow(),
            )
            s.add(row)
            return row

    def reap_abandoned_runs(self, host: str, is_alive: Callable[[int], bool]) -> list[str]:
        """Mark ``running`` runs of ``host`` whose process is gone as failed; return their ids.

        A run records its host and pid when it starts; a process killed mid-run (kill -9,
        OOM, power loss) cannot finish its record, so the next open of the workspace does.
        """
        reaped: list[str] = []
        with self.session() as s:
            for run in s.scalars(select(RunRow).where(RunRow.status == "running")):
                params = run.params or {}
                pid = params.get("pid")
                if params.get("host") != host or not isinstance(pid, int) or is_alive(pid):
                    continue
                message = f"process {pid} on {host} ended without finishing the run"
                run.status, run.error, run.ended_at = "failed", message, utcnow()
                for step in run.steps:
                    if step.status in ("running", "pending"):
                        step.status = "failed" if step.status == "running" else "skipped"
                        step.error = message
                        step.ended_at = utcnow()
                reaped.append(run.id)
        return reaped

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.session() as s:
            row = s.get(RunRow, run_id)
            if row is not None:
                row.status, row.error, row.ended_at = status, error, utcnow()

    def add_step_run(self, run_id: str, step: str, kind: str, status: str = "pending") -> int:
        with self.session() as s:
            row = StepRunRow(run_id=run_id, step=step, kind=kind, status=status)
            s.add(row)
            s.flush()
            return row.id

    def add_step_runs(self, run_id: str, steps: Sequence[tuple[str, str]]) -> list[int]:
        """Pending step runs for ``(step, kind)`` pairs, in one transaction; their ids."""
        with self.session() as s:
            rows = [StepRunRow(run_id=run_id, step=n, kind=k, status="pending") for n, k in steps]
            s.add_all(rows)
            s.flush()
            return [row.id for row in rows]

    def update_step_run(self, step_run_id: int, **fields: Any) -> None:
        with self.session() as s:  # one UPDATE statement, no read first
            s.execute(update(StepRunRow).where(StepRunRow.id == step_run_id).values(**fields))

    def get_run(self, run_id: str) -> RunRow | None:
        """A run with its steps loaded. Accepts a unique prefix of the id."""
        with self.session() as s:
            row = s.get(RunRow, run_id)
            if row is None and len(run_id) >= 4:
                matches = list(s.scalars(select(RunRow).where(RunRow.id.startswith(run_id))))
                row = matches[0] if len(matches) == 1 else None
            if row is not None:
                _ = list(row.steps)
            return row

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        with self.session() as s:
            query = select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)
            if pipeline:
                query = query.where(RunRow.pipeline == pipeline)
            rows = list(s.scalars(query))
            for row in rows:
                _ = list(row.steps)
            return rows

    # -- checkpoints ---------------------------------------------------------------------
    def get_checkpoint(self, pipeline: str, step: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.scalar(
                select(CheckpointRow).where(
                    CheckpointRow.pipeline == pipeline, CheckpointRow.step == step
                )
            )
            return None if row is None else dict(row.state)

    def save_checkpoint(
        self, pipeline: str, step: str, state: dict[str, Any], run_id: str | None = None
    ) -> None:
        with self.session() as s:
            row = s.scalar(
                select(CheckpointRow).where(
                    CheckpointRow.pipeline == pipeline, CheckpointRow.step == step
                )
            )
            if row is None:
                s.add(CheckpointRow(pipeline=pipeline, step=step, state=state, run_id=run_id))
            else:
                row.state, row.run_id, row.updated_at = state, run_id, utcnow()

    def list_checkpoints(self, pipeline: str | None = None) -> list[CheckpointRow]:
        """Saved source states, by pipeline and step."""
        with self.session() as s:
            query = select(CheckpointRow).order_by(CheckpointRow.pipeline, CheckpointRow.step)
            if pipeline:
                query = query.where(CheckpointRow.pipeline == pipeline)
            return list(s.scalars(query))

    def delete_checkpoints(self, pipeline: str, step: str) -> int:
        """Forget the state of ``step`` (and of its tables, ``step/<table>``); returns how many."""
        with self.session() as s:
            rows = list(
                s.scalars(
                    select(CheckpointRow).where(
                        CheckpointRow.pipeline == pipeline,
                        (CheckpointRow.step == step) | CheckpointRow.step.startswith(f"{step}/"),
                    )
                )
            )
            for row in rows:
                s.delete(row)
            return len(rows)

    # -- check results -------------------------------------------------------------------
    def add_check_results(self, rows: Sequence[CheckResultRow]) -> None:
        with self.session() as s:
            s.add_all(rows)

    def check_results(
        self, *, run_id: str | None = None, dataset: str | None = None
    ) -> list[CheckResultRow]:
        with self.session() as s:
            query = select(CheckResultRow).order_by(CheckResultRow.id)
            if run_id:
                query = query.where(CheckResultRow.run_id == run_id)
            if dataset:
                query = query.where(CheckResultRow.dataset == dataset)
            return list(s.scalars(query))

    @staticmethod
    def as_utc(value: datetime | None) -> datetime | None:
        """SQLite drops tzinfo; treat naive stored values as UTC."""
        from datetime import UTC

        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)
