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
import json
import os
import queue
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.connectors.base import Reject, RejectSink, SchemaContract, WriteMode, WriteResult
from headwater.connectors.contract import (
    Conformer,
    ContractPlan,
    SchemaContractError,
    check_contract_name,
    plan_contract,
)
from headwater.connectors.mariadb import ledger
from headwater.connectors.mariadb.catalog import Column, TableInfo, table_info
from headwater.connectors.mariadb.client import (
    connect,
    driver_error,
    execute,
    fetch_all,
)
from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.mariadb.types import (
    check_identifier,
    mysql_type,
    qualified,
    quote_ident,
)
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorUnavailableError,
    HeadwaterError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

    from headwater.connectors.mariadb.merge import MergeSpec

__all__ = ["MariadbDestination"]

_MODES = ("append", "overwrite", "merge")
_CHUNK_ROWS = 250_000  # rows per temporary CSV file / LOAD DATA statement (pipelined)
_INSERT_ROWS = 5_000  # rows per executemany call on the fallback path
_REFUSED = {1148, 2068, 3948, 4166}  # LOAD DATA LOCAL disabled on the server or client
_LOCK_SECONDS = 600  # how long an overwrite/merge waits for another one on the same table
_TS_MIN_US, _TS_MAX_US = 1, 2**31 * 1_000_000 - 1  # MariaDB `timestamp`: (1970, 2038-01-19]
_FLOATS = ("float", "double", "real", "double precision")
_RACED = {1050, 1060}  # table exists / duplicate column: a concurrent writer's DDL won
_LENGTH = re.compile(r"^(?:var)?char\((\d+)\)")


@dataclass
class _Counter:
    rows: int = 0
    bytes: int = 0
    rejected: int = 0
    method: str = "load data local infile"
    error: BaseException | None = None  # raised by the caller's stream, re-raised as is


@dataclass
class _Job:
    """One write: its connection, target and settings."""

    conn: Connection
    config: MariadbConfig
    database: str
    table: str
    contract: SchemaContract
    rejects: RejectSink | None
    counter: _Counter = field(default_factory=_Counter)
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
        _load(job.conn, dest, stream, job.counter)
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
        _load(job.conn, info, _conformed(job, batches, plan, info, None), job.counter)
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
    checks = _checks(dest, out_schema, keys)
    counter = job.counter

    def gen() -> Iterator[pa.RecordBatch]:
        for batch in _guarded(batches, counter):
            before = conformer.rows_rejected
            batch = conformer(_precast(batch, plan))
            counter.rejected += conformer.rows_rejected - before
            if plan.created:
                batch = batch.select(names)
            batch = _check_values(job, batch, checks)
            yield pa.RecordBatch.from_arrays(batch.columns, schema=out_schema)

    return pa.RecordBatchReader.from_batches(out_schema, gen())


def _guarded(batches: pa.RecordBatchReader, counter: _Counter) -> Iterator[pa.RecordBatch]:
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


@dataclass(frozen=True)
class _Check:
    column: str
    kind: str  # "null_key" | "float" | "timestamp" | "uuid" | "length"
    length: int = 0


def _checks(dest: TableInfo, schema: pa.Schema, keys: tuple[str, ...] = ()) -> list[_Check]:
    """Values of ``schema`` that the columns of ``dest`` cannot hold and Arrow cannot tell
    (and null merge ``keys``)."""
    folded = {k.casefold() for k in keys}
    out = [_Check(f.name, "null_key") for f in schema if f.name.casefold() in folded]
    for f in schema:
        c = dest.column(f.name)
        if c is None:
            continue
        if c.data_type in _FLOATS and pa.types.is_floating(f.type):
            out.append(_Check(f.name, "float"))
        elif c.data_type == "timestamp" and pa.types.is_timestamp(f.type):
            out.append(_Check(f.name, "timestamp"))
        elif c.data_type == "uuid" and (_is_uuid(f.type) or pa.types.is_string(f.type)):
            out.append(_Check(f.name, "uuid"))
        elif (
            c.data_type in ("char", "varchar")
            and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            and (m := _LENGTH.match(c.column_type.lower()))
        ):
            out.append(_Check(f.name, "length", int(m.group(1))))
    return out


def _bad(array: pa.Array, check: _Check) -> pa.Array:
    if check.kind == "null_key":
        return pc.is_null(array)
    if check.kind == "float":
        return pc.or_(pc.is_nan(array), pc.is_inf(array))
    if check.kind == "timestamp":
        micros = array.cast(pa.timestamp("us", array.type.tz)).cast(pa.int64())
        return pc.or_(pc.less(micros, _TS_MIN_US), pc.greater(micros, _TS_MAX_US))
    if check.kind == "uuid":
        return pa.array([_refused_uuid(v) for v in array.to_pylist()], pa.bool_())
    return pc.greater(pc.utf8_length(array), check.length)


def _is_uuid(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def _refused_uuid(value: Any) -> bool:
    """MariaDB's ``uuid`` type refuses a value whose stored form would read as a swapped
    version 1-5 uuid: byte 6 >= 0x80 (version nibble 8-f) and byte 8 in 0x01..0x80."""
    if value is None:
        return False
    text = str(value)
    if len(text) != 36:
        return False  # not canonical: MariaDB parses it (or warns) itself
    try:
        byte6, byte8 = int(text[14:16], 16), int(text[19:21], 16)
    except ValueError:
        return False
    return byte6 >= 0x80 and 0x01 <= byte8 <= 0x80


def _why(check: _Check) -> str:
    if check.kind == "null_key":
        return "a null merge key can never match a row"
    if check.kind == "float":
        return "NaN and infinities cannot be stored in a MariaDB float/double column"
    if check.kind == "timestamp":
        return (
            "MariaDB `timestamp` holds 1970-01-01 00:00:00.000001 .. 2038-01-19 03:14:07.999999 UTC"
        )
    if check.kind == "uuid":
        return (
            "MariaDB's uuid type refuses a version nibble 8-f when the next group starts "
            "with 01..80 (xxxxxxxx-xxxx-[8-f]xxx-[01..80]xx-xxxxxxxxxxxx)"
        )
    return f"longer than the column's {check.length} characters"


def _check_values(job: _Job, batch: pa.RecordBatch, checks: list[_Check]) -> pa.RecordBatch:
    if not checks or batch.num_rows == 0:
        return batch
    reasons: dict[int, str] = {}
    for check in checks:
        mask = pc.fill_null(_bad(batch.column(check.column), check), False)
        if not pc.any(mask).as_py():
            continue
        rows = pc.indices_nonzero(mask).to_pylist()
        if job.contract != "discard_row" and check.kind == "null_key":
            raise SchemaIncompatibleError(
                f"Merge key {check.column!r} is null in {len(rows)} incoming row(s); a null "
                f"key can never match a row, so the merge into {job.name} was refused. "
                "No row was committed.",
                connector=CONNECTOR,
                column=check.column,
                hint=f"Filter out or fill the rows where {check.column!r} is null in a "
                "transform, or use `schema_contract: discard_row` to quarantine them.",
            )
        if job.contract != "discard_row":
            value = batch.column(check.column)[rows[0]].as_py()
            raise SchemaIncompatibleError(
                f"Column `{check.column}` of {job.name}: the value {value!r} cannot be stored "
                f"({_why(check)}). No row was committed.",
                connector=CONNECTOR,
                column=check.column,
                hint="Fix or filter the values in a transform, or use `schema_contract: "
                "discard_row` to quarantine such rows.",
            )
        for i in rows:
            reasons.setdefault(int(i), f"column `{check.column}`: {_why(check)}")
    if not reasons:
        return batch
    job.counter.rejected += len(reasons)
    order = sorted(reasons)
    if job.rejects is not None:
        rows_ = batch.take(pa.array(order, pa.int64())).to_pylist()
        job.rejects.add(
            Reject(
                raw_record=json.dumps(row, default=str, ensure_ascii=False),
                error=f"{reasons[i]} (schema contract discard_row)",
                column=reasons[i].split("`")[1],
            )
            for i, row in zip(order, rows_, strict=True)
        )
    keep = [True] * batch.num_rows
    for i in order:
        keep[i] = False
    return batch.filter(pa.array(keep, pa.bool_()))


# -- loading -----------------------------------------------------------------------------------


def _load(
    conn: Connection,
    info: TableInfo,
    batches: pa.RecordBatchReader,
    counter: _Counter,
    *,
    replace: bool = False,
) -> None:
    """Load ``batches`` into the existing table ``info`` (inside the open transaction).

    ``replace``: a row whose unique key is already in the table replaces it
    (``LOAD DATA ... REPLACE``, the last occurrence wins).
    """
    names = []
    for f in batches.schema:
        column = info.column(f.name)
        if column is None:
            known = [c.name for c in info.columns]
            raise SchemaIncompatibleError(
                f"Table {info.database}.{info.name} has no column {f.name!r}.",
                connector=CONNECTOR,
                column=f.name,
                hint=choices_hint(f.name, known, "columns")
                + " Add the column to the table, or drop it from the data.",
            )
        names.append(column.name)
    columns: list[Column] = [info.column(n) for n in names]  # type: ignore[misc]
    for chunk, path in _prepared(batches, counter, columns):
        try:
            if counter.method == "load data local infile":
                try:
                    _load_file(conn, info, columns, path, replace)
                    continue
                except Exception as exc:
                    if getattr(exc, "args", (None,))[0] not in _REFUSED:
                        raise
                    counter.method = "insert"  # the server refuses LOCAL INFILE: slower path
            _insert(conn, info, names, chunk, replace)
        finally:
            _unlink(path)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _prepared(
    batches: pa.RecordBatchReader, counter: _Counter, columns: list[Column]
) -> Iterator[tuple[list[pa.RecordBatch], str]]:
    """Chunks of ``batches`` with their CSV files, the next one written while one loads.

    A thread reads the stream and writes each chunk's CSV file (pyarrow's writer, outside
    the GIL) while the server parses and inserts the previous one: on two cores the CSV
    work hides behind LOAD DATA. At most one finished chunk waits; errors of the stream
    (or of the checks inside it) are raised here, in the caller's thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in _chunks(batches, counter):
                path = _write_csv(chunk, columns)
                if not put((chunk, path)):
                    _unlink(path)
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failed(exc))

    worker = threading.Thread(target=produce, name="hw-mariadb-csv", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
        while not ready.empty():
            item = ready.get_nowait()
            if isinstance(item, tuple):
                _unlink(item[1])


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _chunks(batches: pa.RecordBatchReader, counter: _Counter) -> Iterator[list[pa.RecordBatch]]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        counter.rows += batch.num_rows
        counter.bytes += batch.nbytes
        pending.append(batch)
        rows += batch.num_rows
        if rows >= _CHUNK_ROWS:
            yield pending
            pending, rows = [], 0
    if pending:
        yield pending


def _plain(array: pa.Array) -> pa.Array:
    """``array`` without dictionary/extension wrappers, as a type the CSV writer handles."""
    t = array.type
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return pa.array(
                [None if v is None else str(v) for v in array.to_pylist()], type=pa.string()
            )
        return _plain(array.storage)
    if pa.types.is_dictionary(t):
        return _plain(array.cast(t.value_type))
    if pa.types.is_boolean(t):
        return array.cast(pa.int8())
    if pa.types.is_timestamp(t):
        return _micro(array, pa.timestamp("us"))  # zoned: UTC wall time (session is UTC)
    if pa.types.is_time(t):
        return _micro(array, pa.time64("us"))
    if pa.types.is_float16(t):
        return array.cast(pa.float32())
    if pa.types.is_date64(t):
        return array.cast(pa.date32())
    if pa.types.is_string_view(t) or pa.types.is_null(t):
        return array.cast(pa.string())
    if pa.types.is_binary_view(t):
        return array.cast(pa.binary())
    return array


def _csv_array(array: pa.Array, column: Column) -> pa.Array:
    """``array`` as a type the CSV writer renders the way LOAD DATA parses it."""
    t = array.type
    if column.is_binary:
        if isinstance(t, pa.BaseExtensionType):
            array = array.storage
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            array = array.cast(pa.binary())
        return pa.array(
            [None if v is None else v.hex() for v in array.to_pylist()], type=pa.string()
        )
    return _plain(array)


def _micro(array: pa.Array, to: pa.DataType) -> pa.Array:
    try:
        return array.cast(to)
    except pa.ArrowInvalid as exc:
        raise SchemaIncompatibleError(
            f"Cannot store values finer than microseconds in MariaDB: {exc}",
            connector=CONNECTOR,
            hint="Round the column to microseconds in a transform.",
        ) from None


def _write_csv(chunk: list[pa.RecordBatch], columns: list[Column]) -> str:
    """``chunk`` as a temporary CSV file the way LOAD DATA below parses it; its path."""
    import pyarrow.csv as pacsv

    fd, path = tempfile.mkstemp(prefix="hw_mariadb_", suffix=".csv")
    os.close(fd)
    try:
        options = pacsv.WriteOptions(
            include_header=False, quoting_style="all_valid", null_string="NULL"
        )
        writer: pacsv.CSVWriter | None = None
        with open(path, "wb") as sink:
            for batch in chunk:
                out = pa.RecordBatch.from_arrays(
                    [_csv_array(a, c) for a, c in zip(batch.columns, columns, strict=True)],
                    names=[f"c{i}" for i in range(len(columns))],
                )
                if writer is None:
                    writer = pacsv.CSVWriter(sink, out.schema, write_options=options)
                writer.write_batch(out)
            if writer is not None:
                writer.close()
    except BaseException:
        _unlink(path)
        raise
    return path


def _load_file(
    conn: Connection, info: TableInfo, columns: list[Column], path: str, replace: bool
) -> None:
    targets, sets = [], []
    for i, column in enumerate(columns):
        if column.is_binary:
            targets.append(f"@v{i}")
            sets.append(f"{quote_ident(column.name)} = UNHEX(@v{i})")
        else:
            targets.append(quote_ident(column.name))
    sql = (
        f"LOAD DATA LOCAL INFILE {conn.escape(path)} {'REPLACE ' if replace else ''}"
        f"INTO TABLE {qualified(info.database, info.name)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
        "ESCAPED BY '' LINES TERMINATED BY '\\n' "
        f"({', '.join(targets)})"
    )
    if sets:
        sql += " SET " + ", ".join(sets)
    with conn.cursor() as cur:
        cur.execute(sql)
        warnings = cur.warning_count if hasattr(cur, "warning_count") else 0
    if not warnings:
        warnings = int(fetch_all(conn, "SELECT @@warning_count")[0][0])
    if warnings:
        first = fetch_all(conn, "SHOW WARNINGS LIMIT 1")
        text = str(first[0][2]) if first else f"{warnings} warnings"
        raise SchemaIncompatibleError(
            f"MariaDB did not accept the data for {info.database}.{info.name}: {text}. "
            "No row was committed.",
            connector=CONNECTOR,
            hint="Cast the columns in a transform so they fit the table.",
        )


def _insert(
    conn: Connection,
    info: TableInfo,
    names: list[str],
    chunk: list[pa.RecordBatch],
    replace: bool = False,
) -> None:
    cols = ", ".join(quote_ident(n) for n in names)
    marks = ", ".join(["%s"] * len(names))
    verb = "REPLACE" if replace else "INSERT"
    sql = f"{verb} INTO {qualified(info.database, info.name)} ({cols}) VALUES ({marks})"
    with conn.cursor() as cur:
        for batch in chunk:
            for start in range(0, batch.num_rows, _INSERT_ROWS):
                part = batch.slice(start, _INSERT_ROWS)
                arrays = [_plain(a) for a in part.columns]
                rows = list(zip(*(a.to_pylist() for a in arrays), strict=True))
                cur.executemany(sql, rows)
