"""The ``mariadb`` destination: Arrow streams into tables through ``LOAD DATA LOCAL INFILE``.

Batches are written by pyarrow's CSV writer to a temporary file (every value quoted,
NULL as the bare word ``NULL``, no escape character, binary as hex, booleans as 0/1,
zoned timestamps as UTC wall time) and loaded with ``LOAD DATA LOCAL INFILE`` every
``_CHUNK_ROWS`` rows. The session is UTC. ``LOAD DATA LOCAL`` turns bad values into
warnings, so any warning fails the write (and rolls it back) with the first warning's
text. When the server refuses ``LOCAL INFILE`` (``local_infile=0``) the rows go through
multi-row ``INSERT`` statements (PyMySQL ``executemany``) instead, which is slower;
``WriteResult.details["method"]`` says which path ran.

Before any row is written the input's schema is planned against the table's under the
``schema_contract`` (:mod:`headwater.connectors.contract`); batches are then conformed
to the plan, and values MariaDB cannot store (NaN and infinities in float columns,
``timestamp`` values outside 1970..2038, text longer than a ``varchar(n)``) fail the
write, or go to the reject sink under ``discard_row``, instead of surfacing as a
LOAD DATA warning.

``append`` loads into the table inside one transaction (all rows or none; InnoDB),
creating the table with the mapped types first when it is missing, or adding new
columns (``evolve``) with ``ALTER TABLE ... ADD COLUMN``. DDL commits by itself in
MariaDB, so a created table or an added column stays even when the load then fails.

``merge`` (:mod:`.merge`) upserts on keys through a temporary staging table.

``overwrite`` is atomic: the stream is loaded into a staging table (``CREATE TABLE ...
LIKE`` the old one when the columns fit, else from the stream's schema) and swapped in
with one ``RENAME TABLE t TO old, staging TO t`` (atomic in MariaDB: readers see the
old rows, then the new ones, never an empty or missing table), then the old table is
dropped. A failure before the swap drops the staging table and leaves the old table
as it was; a crash leaves a ``hw_stage_*`` table that the next overwrite of the same
table drops.

With a ``load_id`` the write is recorded in the ``_headwater_loads`` ledger
(:mod:`.ledger`); a load id already recorded reads nothing and returns the recorded
row count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, SchemaContract, WriteMode, WriteResult
from headwater.connectors.contract import (
    Conformer,
    ContractPlan,
    SchemaContractError,
    check_contract_name,
    plan_contract,
)
from headwater.connectors.mariadb import ledger
from headwater.connectors.mariadb.catalog import TableInfo, table_info
from headwater.connectors.mariadb.client import (
    connect,
    driver_error,
    execute,
    fetch_all,
)
from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.mariadb.loading import Counter, load
from headwater.connectors.mariadb.types import (
    check_identifier,
    mysql_type,
    qualified,
    quote_ident,
)
from headwater.connectors.mariadb.values import check_values, checks_for
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorUnavailableError,
    HeadwaterError,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

    from headwater.connectors.mariadb.merge import MergeSpec

__all__ = ["MariadbDestination"]

_MODES = ("append", "overwrite", "merge")
_LOCK_SECONDS = 600  # how long an overwrite/merge waits for another one on the same table
_RACED = {1050, 1060}  # table exists / duplicate column: a concurrent writer's DDL won


@dataclass
class _Job:
    """One write: its connection, target and settings."""

    conn: Connection
    config: MariadbConfig
    database: str
    table: str
    contract: SchemaContract
    rejects: RejectSink | None
    counter: Counter = field(default_factory=Counter)
    _version: tuple[bool, tuple[int, int]] | None = None

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"

    def _server(self) -> tuple[bool, tuple[int, int]]:
        if self._version is None:
            text = str(fetch_all(self.conn, "SELECT VERSION()")[0][0])
            numbers = [int(p) for p in re.findall(r"\d+", text)[:2]] + [0, 0]
            self._version = ("mariadb" in text.lower(), (numbers[0], numbers[1]))
        return self._version

    def uuid_type(self) -> str:
        """``uuid`` on MariaDB 10.7+, else ``char(36)`` (the canonical text)."""
        mariadb, version = self._server()
        return "uuid" if mariadb and version >= (10, 7) else "char(36)"

    def collation(self) -> str:
        """A binary collation WITHOUT trailing-space padding (``'a' <> 'a '``), as Arrow."""
        mariadb, version = self._server()
        if mariadb:
            return "utf8mb4_nopad_bin" if version >= (10, 2) else "utf8mb4_bin"
        return "utf8mb4_0900_bin" if version >= (8, 0) else "utf8mb4_bin"

    def ddl(self, t: pa.DataType, column: str) -> str:
        return mysql_type(t, column=column, uuid_type=self.uuid_type())


class MariadbDestination:
    """Writes Arrow streams to MariaDB/MySQL tables."""

    def __init__(self, config: MariadbConfig) -> None:
        self.config = config

    def check(self) -> None:
        from headwater.connectors.mariadb.source import MariadbSource

        MariadbSource(self.config).check()

    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        load_id: str | None = None,
        schema_contract: SchemaContract = "evolve",
        rejects: RejectSink | None = None,
    ) -> WriteResult:
        """Write every batch to ``target`` (``table`` or ``database.table``)."""
        if mode not in _MODES:
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for mariadb: append, overwrite, merge.",
            )
        contract = check_contract_name(schema_contract)
        load_id = ledger.check_load_id(load_id)
        spec: MergeSpec | None = None
        if mode == "merge":
            from headwater.connectors.mariadb.merge import merge_spec

            spec = merge_spec(batches.schema, keys, options)
        elif options:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for mariadb.",
                connector=CONNECTOR,
                hint="Only mode: merge takes a write option (soft_delete_column).",
            )
        check_identifier(target.rpartition(".")[2] or target, "table")
        for f in batches.schema:  # refuse unmappable types and names before connecting
            check_identifier(f.name, "column")
            if spec is None or f.name != spec.soft_delete:
                mysql_type(f.type, column=f.name)
        conn = connect(self.config, local_infile=True)
        job: _Job | None = None
        details: dict[str, Any] = {"mode": mode}
        try:
            database, table = self._split(conn, target)
            check_identifier(table, "table")
            job = _Job(conn, self.config, database, table, contract, rejects)
            if load_id is not None:
                ledger.ensure(conn, database, job.collation())
                done = ledger.recorded(conn, database, load_id)
                if done is not None:
                    return self._already(job, load_id, done, mode)
                conn.commit()  # end the read snapshot: the check after the lock reads afresh
            if mode == "overwrite":
                _overwrite(job, batches, load_id)
            else:
                _append_or_merge(job, batches, spec, load_id, details)
        except _AlreadyLoaded as done:
            assert job is not None and load_id is not None
            return self._already(job, load_id, done.rows, mode)
        except HeadwaterError:
            _rollback(conn)
            raise
        except Exception as exc:
            _rollback(conn)
            if job is not None and job.counter.error is not None:
                raise job.counter.error from None
            raise driver_error(self.config, exc, f"writing {target!r}", conn) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        counter = job.counter
        details.update(method=counter.method, rows_rejected=counter.rejected, load_id=load_id)
        return WriteResult(
            rows=details.pop("rows", counter.rows),
            bytes=counter.bytes,
            location=self._location(job),
            details=details,
        )

    def _location(self, job: _Job) -> str:
        return f"mysql://{self.config.host}:{self.config.port}/{job.database}.{job.table}"

    def _already(self, job: _Job, load_id: str, rows: int, mode: str) -> WriteResult:
        return WriteResult(
            rows=rows,
            location=self._location(job),
            details={"already_loaded": True, "load_id": load_id, "mode": mode},
        )

    def _split(self, conn: Connection, target: str) -> tuple[str, str]:
        database, dot, table = target.partition(".")
        if dot and database and table:
            found = fetch_all(
                conn,
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                (database,),
            )
            if found:
                return database, table
        return self.config.database, target


class _AlreadyLoaded(Exception):
    """Another writer committed this load id while this one ran (rolled back)."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


def _rollback(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # the connection is closed next; the first error wins
        conn.rollback()


def _commit(job: _Job, load_id: str | None, mode: str, rows: int, point: str | None) -> None:
    """Record the load id (same transaction), pass the crash point, commit."""
    if load_id is not None:
        try:
            ledger.record(job.conn, job.database, load_id, job.table, mode, rows)
        except Exception as exc:
            if getattr(exc, "args", (None,))[0] != ledger.DUPLICATE_KEY:
                raise
            _rollback(job.conn)  # a concurrent writer committed the same load id first
            done = ledger.recorded(job.conn, job.database, load_id)
            raise _AlreadyLoaded(done or 0) from None
    if point is not None:
        crash_point(point)
    job.conn.commit()


# -- append and merge --------------------------------------------------------------------------


def _append_or_merge(
    job: _Job,
    batches: pa.RecordBatchReader,
    spec: MergeSpec | None,
    load_id: str | None,
    details: dict[str, Any],
) -> None:
    soft = spec.soft_delete if spec is not None else None
    if spec is not None:
        _lock(job, load_id)  # one merge at a time per table: two cannot both insert a key
    for attempt in range(3):
        existing = table_info(job.conn, job.database, job.table)
        if existing is not None and existing.kind == "VIEW" and spec is not None:
            raise UnsupportedOperationError(
                f"{job.name} is a view; MariaDB can merge only into tables.",
                connector=CONNECTOR,
                hint="Merge into the underlying table.",
            )
        incoming = batches.schema
        planned = pa.schema([f for f in incoming if f.name != soft])
        soft_in_table = (
            soft is not None and existing is not None and existing.column(soft) is not None
        )
        if soft_in_table:
            planned = incoming
        plan = _plan(job, existing, planned)
        try:
            created = existing is None
            if existing is None:
                primary = spec.keys if spec is not None else ()
                dest = _create(job, job.table, plan.schema, primary_key=primary)
            elif plan.add_columns:
                dest = _add_columns(job, existing, plan.add_columns)
            else:
                dest = existing
            break
        except Exception as exc:
            # another writer created the table or added the column just now: plan again
            if getattr(exc, "args", (None,))[0] not in _RACED or attempt == 2:
                raise
    extra = soft if soft is not None and not soft_in_table else None
    stream = _conformed(job, batches, plan, dest, extra, spec.keys if spec else ())
    if spec is None:
        load(job.conn, dest, stream, job.counter)
        rows = job.counter.rows
    else:
        from headwater.connectors.mariadb.merge import merge

        spec = spec.resolved(dest, plan.schema.names)
        details.update(merge(job.conn, dest, spec, stream, job.counter, created=created))
        rows = int(details["rows"])
    _commit(job, load_id, "merge" if spec is not None else "append", rows, "load.before_commit")


def _plan(job: _Job, existing: TableInfo | None, incoming: pa.Schema) -> ContractPlan:
    view = _contract_view(existing, incoming) if existing is not None else None
    return plan_contract(job.name, view, incoming, job.contract, case_insensitive=True)


def _contract_view(existing: TableInfo, incoming: pa.Schema) -> pa.Schema:
    """The table's Arrow schema as the contract sees it for ``incoming``.

    The discover mapping, except where a column is the faithful home of the input's
    type: ``tinyint(1)`` for booleans (what a boolean column is created as), a text,
    ``uuid`` or ``binary(16)`` column for ``arrow.uuid``, a text column for
    ``arrow.json``.
    """
    wanted = {f.name.casefold(): f.type for f in incoming}
    fields = []
    for c in existing.columns:
        t = c.arrow or pa.string()
        given = wanted.get(c.name.casefold())
        if given is not None:
            ext = given.extension_name if isinstance(given, pa.BaseExtensionType) else None
            column_type = c.column_type.lower()
            faithful = (
                (pa.types.is_boolean(given) and column_type.startswith("tinyint(1)"))
                or (ext == "arrow.uuid" and (pa.types.is_string(t) or column_type == "binary(16)"))
                or (ext == "arrow.json" and pa.types.is_string(t))
            )
            if faithful:
                t = given
        fields.append(pa.field(c.name, t, nullable=True))
    return pa.schema(fields)


def _create(
    job: _Job, table: str, schema: pa.Schema, *, primary_key: tuple[str, ...] = ()
) -> TableInfo:
    columns = [f"{quote_ident(f.name)} {job.ddl(f.type, f.name)}" for f in schema]
    ddl = {f.name: job.ddl(f.type, f.name) for f in schema}
    if primary_key and all(not _unindexable(ddl[k]) for k in primary_key):
        # a table created by a merge gets its keys as primary key: later merges then use
        # INSERT ... ON DUPLICATE KEY UPDATE (text and blob keys cannot be indexed whole)
        columns.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in primary_key)})")
    execute(
        job.conn,
        f"CREATE TABLE {qualified(job.database, table)} ({', '.join(columns)}) "
        f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={job.collation()}",
    )
    info = table_info(job.conn, job.database, table)
    assert info is not None
    return info


def _unindexable(ddl: str) -> bool:
    return ddl.endswith(("text", "blob", "json")) or ddl.startswith("timestamp")


def _add_columns(job: _Job, existing: TableInfo, columns: tuple[pa.Field, ...]) -> TableInfo:
    """``ALTER TABLE ... ADD COLUMN`` (nullable) for each new input column (evolve)."""
    adds = ", ".join(f"ADD COLUMN {quote_ident(f.name)} {job.ddl(f.type, f.name)}" for f in columns)
    execute(job.conn, f"ALTER TABLE {qualified(job.database, existing.name)} {adds}")
    info = table_info(job.conn, job.database, existing.name)
    assert info is not None
    return info


# -- overwrite ---------------------------------------------------------------------------------


def _overwrite(job: _Job, batches: pa.RecordBatchReader, load_id: str | None) -> None:
    database, table = job.database, job.table
    _lock(job, load_id)
    prefix = _stage_prefix(table)
    _drop_leftovers(job, prefix)  # staging tables of an overwrite that crashed
    existing = table_info(job.conn, database, table)
    incoming = batches.schema
    plan: ContractPlan
    keep = False
    if existing is not None and existing.kind != "VIEW":
        view = _contract_view(existing, incoming)
        if job.contract == "evolve":
            try:
                plan = plan_contract(job.name, view, incoming, "evolve", case_insensitive=True)
                keep = not plan.add_columns and not plan.missing
            except SchemaContractError:
                keep = False  # evolve replaces the table with the input's schema
        else:
            plan = plan_contract(job.name, view, incoming, job.contract, case_insensitive=True)
            keep = True
    if not keep:
        plan = ContractPlan(job.name, job.contract, incoming, created=True)
    token = uuid.uuid4().hex[:12]
    staging, old = f"{prefix}{token}", f"hw_old_{prefix[9:]}{token}"
    if keep:
        assert existing is not None
        execute(
            job.conn,
            f"CREATE TABLE {qualified(database, staging)} LIKE {qualified(database, table)}",
        )
        info = table_info(job.conn, database, staging)
        assert info is not None
    else:
        info = _create(job, staging, incoming)
    try:
        load(job.conn, info, _conformed(job, batches, plan, info, None), job.counter)
        job.conn.commit()
        crash_point("load.during_swap")
        if existing is None:
            execute(
                job.conn,
                f"RENAME TABLE {qualified(database, staging)} TO {qualified(database, table)}",
            )
        else:
            execute(
                job.conn,
                f"RENAME TABLE {qualified(database, table)} TO {qualified(database, old)}, "
                f"{qualified(database, staging)} TO {qualified(database, table)}",
            )
    except BaseException:
        _rollback(job.conn)
        _drop_quietly(job, staging)
        raise
    if existing is not None:
        kind = "VIEW" if existing.kind == "VIEW" else "TABLE"
        execute(job.conn, f"DROP {kind} IF EXISTS {qualified(database, old)}")
    # RENAME TABLE committed by itself: the ledger row follows in its own transaction
    _commit(job, load_id, "overwrite", job.counter.rows, None)


def _drop_quietly(job: _Job, table: str) -> None:
    """Drop ``table`` after a failure; on a fresh connection when the write's was lost."""
    drop = f"DROP TABLE IF EXISTS {qualified(job.database, table)}"
    with contextlib.suppress(Exception):
        if job.conn.open:
            execute(job.conn, drop)
            return
        conn = connect(job.config)
        try:
            execute(conn, drop)
        finally:
            conn.close()


def _stage_prefix(table: str) -> str:
    """``hw_stage_<16 hex of the table name>_``: staging tables of one target share it."""
    return f"hw_stage_{hashlib.sha1(table.encode()).hexdigest()[:16]}_"


def _drop_leftovers(job: _Job, prefix: str) -> None:
    """Drop staging/old tables an overwrite of this table left behind (holding its lock)."""
    rows = fetch_all(
        job.conn,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND (LEFT(TABLE_NAME, %s) = %s OR LEFT(TABLE_NAME, %s) = %s)",
        (job.database, len(prefix), prefix, len(prefix) - 2, "hw_old_" + prefix[9:]),
    )
    for name, kind in rows:
        what = "VIEW" if kind == "VIEW" else "TABLE"
        execute(job.conn, f"DROP {what} IF EXISTS {qualified(job.database, str(name))}")


def _lock(job: _Job, load_id: str | None = None) -> None:
    """Serialize overwrites and merges of one table (a session lock, freed on disconnect).

    A writer that waited may find its load id committed meanwhile by the one it waited
    for (the same load retried concurrently): it then stops, already loaded.
    """
    key = f"{job.database}\x00{job.table}".encode()
    name = "headwater:" + hashlib.sha1(key).hexdigest()
    got = fetch_all(job.conn, "SELECT GET_LOCK(%s, %s)", (name, _LOCK_SECONDS))
    if not got or got[0][0] != 1:
        raise ConnectorUnavailableError(
            f"Another write to {job.name} held its lock for {_LOCK_SECONDS} s.",
            connector=CONNECTOR,
            location=job.config.where,
            hint="Retry when the other overwrite or merge of this table has finished.",
        )
    if load_id is not None:
        done = ledger.recorded(job.conn, job.database, load_id)
        if done is not None:
            raise _AlreadyLoaded(done)


# -- conforming batches ------------------------------------------------------------------------


def _conformed(
    job: _Job,
    batches: pa.RecordBatchReader,
    plan: ContractPlan,
    dest: TableInfo,
    extra: str | None,
    keys: tuple[str, ...] = (),
) -> pa.RecordBatchReader:
    """``batches`` conformed to ``plan`` (plus the column ``extra`` as is), values checked."""
    if extra is not None and not plan.created:
        plan = dataclasses.replace(plan, schema=plan.schema.append(batches.schema.field(extra)))
    names = list(plan.schema.names)
    if extra is not None and extra not in names:
        names.append(extra)
    out_schema = (
        pa.schema([batches.schema.field(n) for n in names])
        if plan.created
        else pa.schema([pa.field(f.name, f.type) for f in plan.schema])
    )
    conformer = Conformer(plan, job.rejects)
    checks = checks_for(dest, out_schema, keys)
    counter = job.counter

    def gen() -> Iterator[pa.RecordBatch]:
        for batch in _guarded(batches, counter):
            before = conformer.rows_rejected
            batch = conformer(_precast(batch, plan))
            counter.rejected += conformer.rows_rejected - before
            if plan.created:
                batch = batch.select(names)
            batch, dropped = check_values(
                batch, checks, table=job.name, contract=job.contract, rejects=job.rejects
            )
            counter.rejected += dropped
            yield pa.RecordBatch.from_arrays(batch.columns, schema=out_schema)

    return pa.RecordBatchReader.from_batches(out_schema, gen())


def _guarded(batches: pa.RecordBatchReader, counter: Counter) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except BaseException as exc:
        counter.error = exc
        raise


def _precast(batch: pa.RecordBatch, plan: ContractPlan) -> pa.RecordBatch:
    """Casts Arrow refuses outright although values may fit: integers into narrow decimals
    (through a wide decimal, still checked value by value) and into floats (rounded, as
    MariaDB would)."""
    if plan.created:
        return batch
    arrays = list(batch.columns)
    changed = False
    for target in plan.schema:
        idx = batch.schema.get_field_index(target.name)
        if idx < 0:
            continue
        source = batch.schema.field(idx).type
        if not pa.types.is_integer(source):
            continue
        if pa.types.is_decimal(target.type) and target.type.precision < 39:
            wide = pa.decimal128(min(38, 20 + target.type.scale), target.type.scale)
            with contextlib.suppress(pa.ArrowInvalid):
                arrays[idx] = arrays[idx].cast(wide)
                changed = True
        elif pa.types.is_floating(target.type):
            arrays[idx] = arrays[idx].cast(target.type, safe=False)
            changed = True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
