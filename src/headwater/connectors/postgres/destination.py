"""The ``postgres`` destination: Arrow streams into tables through binary COPY (ADBC ingest).

Every write is one transaction: the data, any ``ALTER TABLE ... ADD COLUMN`` of the
schema contract, and the row of the load ledger commit together or not at all.

``append`` copies the stream into the table (all rows or none), creating the table
with the mapped types when it is missing. Batches are cast to the table's column
types first; columns whose binary form differs from the Arrow one (jsonb, uuid,
enums, unconstrained numeric, ...) go through a temporary table and one
``INSERT ... SELECT`` with casts.

``overwrite`` is atomic: in one transaction the stream is copied into a staging
table in the same schema, the old table is dropped and the staging table renamed
in its place. Until the commit readers see the old rows; after it, the new ones;
never an empty or missing table. A failure at any point rolls everything back and
leaves the old table as it was. The new table keeps the old one's column types,
constraints and indexes when the columns are the same and every type still fits;
otherwise (schema contract ``evolve``) it is created from the stream's schema. Views
that depend on the table make the swap fail (the old table stays): drop them first.

``merge`` upserts on keys (see :mod:`headwater.connectors.postgres.merge`), in place or,
for a batch that is a large share of the table, by rebuilding the table and swapping it
in like an overwrite (:mod:`headwater.connectors.postgres.rebuild`).

Exactly-once: with a ``load_id`` the write first claims the id in the ledger table
``_headwater_loads`` of the target's schema (``INSERT ... ON CONFLICT DO NOTHING``, in
the write's transaction). A committed claim means the load happened: the stream is not
read and the recorded row count is returned. A concurrent writer of the same id waits
on the claim until the first commits (then skips) or rolls back (then loads).

Schema contracts (:mod:`headwater.connectors.contract`) are planned against the
table's mapped Arrow schema before any row is written; ``evolve`` adds new columns
with ``ALTER TABLE ... ADD COLUMN`` inside the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.connectors.base import (
    Reject,
    RejectSink,
    SchemaContract,
    WriteMode,
    WriteResult,
)
from headwater.connectors.contract import (
    Conformer,
    ContractPlan,
    check_contract_name,
    compatibility,
    plan_contract,
)
from headwater.connectors.postgres.catalog import Column, TableInfo, table_info
from headwater.connectors.postgres.client import (
    connect,
    connection_lost,
    driver_error,
    fetch_all,
)
from headwater.connectors.postgres.factory import CONNECTOR, PostgresConfig
from headwater.connectors.postgres.types import pg_type, qualified, quote_ident, wire_type
from headwater.connectors.server.errors import missing_column_error
from headwater.connectors.unique_keys import announced_rows
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    HeadwaterError,
    SchemaIncompatibleError,
)

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

    from headwater.connectors.postgres.merge import MergePlan

__all__ = ["LEDGER", "PostgresDestination"]

LEDGER = "_headwater_loads"
_LEDGER_COLUMNS = (
    "load_id varchar(128) PRIMARY KEY, target_table varchar(1024) NOT NULL, "
    "mode varchar(16) NOT NULL, rows bigint NOT NULL, committed_at timestamp NOT NULL"
)
_NOW_UTC = "(clock_timestamp() AT TIME ZONE 'UTC')"

# column types ADBC's binary COPY can fill straight from the mapped Arrow type
_DIRECT = {
    "int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "bpchar",
    "date", "timestamp", "timestamptz", "bytea", "numeric", "time", "interval", "json",
}  # fmt: skip
_DIRECT_ELEMENTS = {"int2", "int4", "int8", "float4", "float8", "bool", "text"}


@dataclass
class _Counter:
    rows: int = 0
    bytes: int = 0
    error: BaseException | None = None  # raised by the caller's stream, re-raised as is


class PostgresDestination:
    """Writes Arrow streams to PostgreSQL tables."""

    accepts_unique_keys = True  # see headwater.connectors.unique_keys

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config

    def check(self) -> None:
        from headwater.connectors.postgres.source import PostgresSource

        PostgresSource(self.config).check()

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
        """Write every batch to ``target`` (``table`` or ``schema.table``) in one transaction."""
        if mode not in ("append", "overwrite", "merge"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for postgres: append, overwrite, merge.",
            )
        contract = check_contract_name(schema_contract)
        _check_load_id(load_id)
        plan = None
        if mode == "merge":
            from headwater.connectors.postgres.merge import merge_plan

            plan = merge_plan(batches.schema, keys, options, self.config.merge_strategy)
        unique = None
        if plan is not None and contract != "discard_row":  # discard_row may drop rows
            unique = announced_rows(batches.schema, plan.keys)
        if options and plan is None:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for postgres.",
                connector=CONNECTOR,
                hint="Only mode: merge takes write options (soft_delete_column, merge_strategy).",
            )
        if contract != "discard_row":  # discard_row may drop the columns PostgreSQL lacks
            for f in batches.schema:
                pg_type(f.type, column=f.name)  # refuse unmappable types before connecting
        conn = connect(self.config)
        counter = _Counter()
        details: dict[str, Any] = {"mode": mode}
        if load_id is not None:
            details["load_id"] = load_id
        try:
            schema, table = self._split(conn, target)
            location = f"postgresql://{self.config.where}/{schema}.{table}"
            if load_id is not None:
                _ensure_ledger(conn, schema)
                recorded = _claim(conn, schema, f"{schema}.{table}", mode, load_id)
                if recorded is not None:
                    _rollback(conn)
                    return WriteResult(
                        rows=recorded,
                        location=location,
                        details={"already_loaded": True, "load_id": load_id, "mode": mode},
                    )
            job = _Job(conn, schema, table, contract, rejects, counter)
            if mode == "overwrite":
                job.overwrite(batches)
            else:
                job.upsert(batches, plan, details, unique)
            details["rows_rejected"] = job.rows_rejected
            if job.added:
                details["columns_added"] = job.added
            rows = int(details.pop("rows", counter.rows))
            if load_id is not None:
                _record(conn, schema, load_id, rows)
            if mode != "overwrite":
                crash_point("load.before_commit")
            conn.commit()
        except HeadwaterError:
            _rollback(conn)
            raise
        except Exception as exc:
            lost = connection_lost(conn) if not getattr(exc, "sqlstate", None) else None
            _rollback(conn)
            if counter.error is not None:
                raise counter.error from None
            if getattr(exc, "sqlstate", None) == "22021" and "0x00" in str(exc):
                raise SchemaIncompatibleError(
                    f"A text value written to {target!r} holds the NUL character (U+0000), "
                    "which PostgreSQL text cannot store. Nothing was written.",
                    connector=CONNECTOR,
                    location=self.config.where,
                    hint="Remove it in a transform: replace(col, chr(0), ''), or write the "
                    "column as binary (bytea).",
                ) from None
            raise driver_error(self.config, exc, f"writing {target!r}", lost=lost) from None
        finally:
            with contextlib.suppress(Exception):  # a dead connection may refuse to close
                conn.close()
        return WriteResult(rows=rows, bytes=counter.bytes, location=location, details=details)

    def _split(self, conn: Connection, target: str) -> tuple[str, str]:
        schema, dot, table = target.partition(".")
        if dot and schema and table:
            found = fetch_all(
                conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", (schema,)
            )
            if found:
                return schema, table
        return self.config.schema_name, target


def _check_load_id(load_id: str | None) -> None:
    if load_id is None:
        return
    if not isinstance(load_id, str) or not load_id or len(load_id) > 128 or "\x00" in load_id:
        raise ConfigError(
            f"load_id must be a non-empty string of at most 128 characters, got {load_id!r}.",
            connector=CONNECTOR,
            field="load_id",
        )


def _ensure_ledger(conn: Connection, schema: str) -> None:
    """Create ``schema._headwater_loads`` once, committed on its own (races are harmless)."""
    ledger = qualified(schema, LEDGER)
    if fetch_all(conn, "SELECT to_regclass($1) IS NOT NULL", (ledger,))[0][0]:
        return
    try:
        _execute(conn, f"CREATE TABLE IF NOT EXISTS {ledger} ({_LEDGER_COLUMNS})")
        conn.commit()
    except Exception:
        # two writers creating it at once: the loser fails on pg_type's unique index
        _rollback(conn)
        if not fetch_all(conn, "SELECT to_regclass($1) IS NOT NULL", (ledger,))[0][0]:
            raise


def _claim(conn: Connection, schema: str, target: str, mode: str, load_id: str) -> int | None:
    """Claim ``load_id`` in this transaction; the recorded rows when it was already committed."""
    ledger = qualified(schema, LEDGER)
    claimed = fetch_all(
        conn,
        f"INSERT INTO {ledger} (load_id, target_table, mode, rows, committed_at) "
        f"VALUES ($1, $2, $3, 0, {_NOW_UTC}) ON CONFLICT (load_id) DO NOTHING RETURNING 1",
        (load_id, target, mode),
    )
    if claimed:
        return None
    rows = fetch_all(conn, f"SELECT rows FROM {ledger} WHERE load_id = $1", (load_id,))
    return int(rows[0][0])


def _record(conn: Connection, schema: str, load_id: str, rows: int) -> None:
    cur = conn.cursor()
    try:
        cur.execute(
            f"UPDATE {qualified(schema, LEDGER)} SET rows = $1, committed_at = {_NOW_UTC} "
            "WHERE load_id = $2",
            (rows, load_id),
        )
    finally:
        cur.close()


@dataclass
class _Job:
    """One write inside the open transaction: contract plan, DDL, then the data."""

    conn: Connection
    schema: str
    table: str
    contract: SchemaContract
    rejects: RejectSink | None
    counter: _Counter
    added: list[str] | None = None
    null_keys_rejected: int = 0
    _conformer: Conformer | None = None

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def upsert(
        self,
        batches: pa.RecordBatchReader,
        plan: MergePlan | None,
        details: dict[str, Any],
        unique_rows: int | None = None,
    ) -> None:
        """``append`` (plan None) or ``merge`` into the table, created when missing."""
        from headwater.connectors.postgres.merge import merge

        existing = table_info(self.conn, self.schema, self.table)
        soft = plan.soft_delete if plan is not None else None
        if existing is None:
            dest = _create(self.conn, self.schema, self.table, batches.schema)
        else:
            contract_plan = plan_contract(
                self.name,
                _contract_schema(existing, batches.schema, soft),
                batches.schema,
                self.contract,
            )
            dest = self._add_columns(existing, contract_plan)
            batches = self._conformed(batches, contract_plan)
        if plan is None:
            _load(self.conn, dest, batches, self.counter)
            return
        if self.contract == "discard_row":
            batches = self._without_null_keys(batches, plan.keys)
        details.update(merge(self.conn, dest, plan, batches, self.counter, unique_rows))

    def overwrite(self, batches: pa.RecordBatchReader) -> None:
        existing = table_info(self.conn, self.schema, self.table)
        keep = existing is not None and existing.kind in ("r", "p")
        if existing is not None and self.contract != "evolve":
            contract_plan = plan_contract(
                self.name,
                _contract_schema(existing, batches.schema, None),
                batches.schema,
                self.contract,
            )
            batches = self._conformed(batches, contract_plan)
        elif existing is not None:
            keep = keep and _same_columns(existing, batches.schema)
        _overwrite(self.conn, self.schema, self.table, existing, keep, batches.schema, batches,
                   self.counter)  # fmt: skip

    def _add_columns(self, existing: TableInfo, plan: ContractPlan) -> TableInfo:
        if not plan.add_columns:
            return existing
        t = qualified(self.schema, self.table)
        for f in plan.add_columns:
            ddl = pg_type(f.type, column=f.name)
            _execute(self.conn, f"ALTER TABLE {t} ADD COLUMN {quote_ident(f.name)} {ddl}")
        self.added = [f.name for f in plan.add_columns]
        info = table_info(self.conn, self.schema, self.table)
        assert info is not None
        return info

    def _conformed(self, batches: pa.RecordBatchReader, plan: ContractPlan) -> pa.RecordBatchReader:
        conformer = self._conformer = Conformer(plan, self.rejects)
        targets = {f.name: f.type for f in plan.schema}
        widen = {
            f.name: _wide_decimal(targets[f.name])
            for f in batches.schema
            if pa.types.is_integer(f.type) and pa.types.is_decimal(targets.get(f.name, pa.null()))
        }

        def gen() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                if widen:  # Arrow refuses int -> narrow decimal by type, not by value
                    batch = pa.RecordBatch.from_arrays(
                        [
                            col.cast(widen[f.name]) if f.name in widen else col
                            for col, f in zip(batch.columns, batch.schema, strict=True)
                        ],
                        names=batch.schema.names,
                    )
                yield conformer(batch)

        return pa.RecordBatchReader.from_batches(plan.schema, gen())

    @property
    def rows_rejected(self) -> int:
        conformed = self._conformer.rows_rejected if self._conformer is not None else 0
        return conformed + self.null_keys_rejected

    def _without_null_keys(
        self, batches: pa.RecordBatchReader, keys: tuple[str, ...]
    ) -> pa.RecordBatchReader:
        """Under ``discard_row``, rows with a null merge key go to the rejects (never match)."""
        job = self

        def gen() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                valid = None
                for key in keys:
                    ok = pc.is_valid(batch.column(key))
                    valid = ok if valid is None else pc.and_(valid, ok)
                if valid is None or pc.all(valid).as_py():
                    yield batch
                    continue
                bad = batch.filter(pc.invert(valid))
                _send(job.rejects, bad, "a merge key is null (schema contract discard_row)")
                job.null_keys_rejected += bad.num_rows
                yield batch.filter(valid)

        return pa.RecordBatchReader.from_batches(batches.schema, gen())


def _send(sink: RejectSink | None, rows: pa.RecordBatch, error: str) -> None:
    if sink is None:
        return
    sink.add(
        Reject(raw_record=json.dumps(row, default=str, ensure_ascii=False), error=error)
        for row in rows.to_pylist()
    )


def _contract_schema(existing: TableInfo, incoming: pa.Schema, soft: str | None) -> pa.Schema:
    """The table's mapped Arrow schema, as the contract sees it.

    A column that takes the incoming type exactly although it reads as another (see
    :func:`_takes`: an unconstrained ``numeric`` reads as text but takes any integer or
    decimal) counts as the incoming type. A merge's soft-delete flag the table lacks is a
    boolean the merge consumes.
    """
    by_name = {f.name: f for f in incoming}
    fields = []
    for col in existing.columns:
        dtype = col.arrow
        given = by_name.get(col.name)
        if given is not None and _takes(col, given.type):
            dtype = given.type
        fields.append(pa.field(col.name, dtype, col.nullable))
    if soft is not None and soft not in {c.name for c in existing.columns}:
        fields.append(pa.field(soft, pa.bool_()))
    return pa.schema(fields)


def _takes(col: Column, given: pa.DataType) -> bool:
    """Whether ``col`` takes values of Arrow type ``given`` exactly although its mapped Arrow
    type differs (the write converts them): numbers into an unconstrained ``numeric``, 16-byte
    uuids into ``uuid``, durations into ``interval``, JSON text into json/jsonb."""
    if col.typname == "numeric" and not pa.types.is_decimal(col.arrow):
        return bool(pa.types.is_integer(given) or pa.types.is_decimal(given))
    if col.typname == "uuid":
        return _is_uuid_bytes(given)
    if col.typname == "interval":
        return bool(pa.types.is_duration(given))
    if col.typname in ("json", "jsonb"):
        return isinstance(given, pa.BaseExtensionType) and given.extension_name == "arrow.json"
    return False


def _same_columns(existing: TableInfo, incoming: pa.Schema) -> bool:
    """The input has the table's columns (any order) and each of its types fits the table's."""
    if sorted(c.name for c in existing.columns) != sorted(incoming.names):
        return False
    types = {c.name: c.arrow for c in existing.columns}
    return all(
        compatibility(f.type, types[f.name]) != "incompatible"
        or (pa.types.is_string(types[f.name]) and pa.types.is_string(wire_type(f.type)))
        for f in incoming
    )


def _rollback(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # the connection is closed next; the first error wins
        conn.rollback()


def _create(conn: Connection, schema: str, table: str, incoming: pa.Schema) -> TableInfo:
    columns = ", ".join(f"{quote_ident(f.name)} {pg_type(f.type, column=f.name)}" for f in incoming)
    _execute(conn, f"CREATE TABLE {qualified(schema, table)} ({columns})")
    info = table_info(conn, schema, table)
    assert info is not None
    return info


def _execute(conn: Connection, sql: str) -> None:
    cur = conn.cursor()
    try:
        cur.execute(sql)
    finally:
        cur.close()


def _direct_wire(cols: list[Column], incoming: pa.Schema) -> pa.Schema | None:
    """The Arrow schema binary COPY can send straight into ``cols``; None when some column
    needs PostgreSQL to cast it (through a temporary table)."""
    fields = []
    for col, given in zip(cols, incoming, strict=True):
        if col.typname == "uuid" and _is_uuid_bytes(given.type):
            fields.append(pa.field(col.name, pa.uuid()))  # COPY sends the 16 bytes uuid takes
            continue
        if col.typname.startswith("_"):
            if col.typname[1:] not in _DIRECT_ELEMENTS:
                return None
        elif (
            col.typname not in _DIRECT
            or col.is_enum
            or (col.typname == "numeric" and not pa.types.is_decimal(col.arrow))
        ):
            return None
        fields.append(pa.field(col.name, col.arrow))
    return pa.schema(fields)


def _is_uuid_bytes(dtype: pa.DataType) -> bool:
    if isinstance(dtype, pa.BaseExtensionType):
        return bool(dtype.extension_name == "arrow.uuid")
    return bool(pa.types.is_fixed_size_binary(dtype) and dtype.byte_width == 16)


def _load(
    conn: Connection, info: TableInfo, batches: pa.RecordBatchReader, counter: _Counter
) -> None:
    """Copy ``batches`` into the existing table ``info`` (inside the open transaction)."""
    by_name = {c.name: c for c in info.columns}
    for field in batches.schema:
        if field.name not in by_name:
            raise missing_column_error(
                f"{info.schema}.{info.name}", field.name, by_name, connector=CONNECTOR
            )
    cols = [by_name[f.name] for f in batches.schema]
    direct = _direct_wire(cols, batches.schema)
    cur = conn.cursor()
    try:
        if direct is not None:
            wire = direct
            stream = pa.RecordBatchReader.from_batches(wire, _cast(batches, wire, counter))
            cur.adbc_ingest(info.name, stream, mode="append", db_schema_name=info.schema)
            return
        wire = pa.schema([pa.field(f.name, wire_type(f.type)) for f in batches.schema])
        stream = pa.RecordBatchReader.from_batches(wire, _cast(batches, wire, counter))
        temp = f"hw_load_{uuid.uuid4().hex[:12]}"
        cur.adbc_ingest(temp, stream, mode="create", temporary=True)
        names = ", ".join(quote_ident(c.name) for c in cols)
        casts = ", ".join(f"{quote_ident(c.name)}::{c.pg_type}" for c in cols)
        cur.execute(
            f"INSERT INTO {qualified(info.schema, info.name)} ({names}) "
            f"SELECT {casts} FROM {quote_ident(temp)}"
        )
        cur.execute(f"DROP TABLE {quote_ident(temp)}")
    finally:
        cur.close()


def _cast(
    batches: pa.RecordBatchReader, schema: pa.Schema, counter: _Counter
) -> Iterator[pa.RecordBatch]:
    try:
        for batch in batches:
            yield _cast_one(batch, schema, counter)
    except BaseException as exc:
        counter.error = exc  # the driver wraps it in its own error: keep the original
        raise


def _cast_one(batch: pa.RecordBatch, schema: pa.Schema, counter: _Counter) -> pa.RecordBatch:
    counter.rows += batch.num_rows
    counter.bytes += batch.nbytes
    if batch.schema.equals(schema):
        for column in batch.columns:
            if pa.types.is_interval(column.type):
                _check_microseconds(column)
        return batch
    try:
        if batch.schema.names != schema.names:
            return batch.cast(schema)
        arrays = [_cast_array(col, f.type) for col, f in zip(batch.columns, schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaIncompatibleError(
            f"Cannot convert the data to the table's column types: {exc}",
            connector=CONNECTOR,
            hint="Cast the columns in a transform so they fit the table.",
        ) from None


def _duration_interval(array: pa.Array) -> pa.Array:
    """Durations as intervals of (0 months, 0 days, n nanoseconds); Arrow has no such cast.

    A month_day_nano value is 16 bytes (int32 months, int32 days, int64 nanoseconds): the
    nanoseconds go to every second 8-byte word of a zeroed buffer.
    """
    nanos = pc.fill_null(array.cast(pa.duration("ns")).cast(pa.int64()), 0)
    words = memoryview(bytearray(16 * len(array))).cast("q")
    source = memoryview(nanos.buffers()[1]).cast("q")[nanos.offset : nanos.offset + len(array)]
    words[1::2] = source
    validity = pc.is_valid(array)
    return pa.Array.from_buffers(
        pa.month_day_nano_interval(),
        len(array),
        [validity.buffers()[1] if array.null_count else None, pa.py_buffer(words.cast("B"))],
        null_count=array.null_count,
        offset=0,
    )


def _wide_decimal(target: pa.DataType) -> pa.DataType:
    """A decimal every 64-bit integer fits, with ``target``'s scale (cast down value by value)."""
    precision = 20 + target.scale
    if precision <= 38:
        return pa.decimal128(precision, target.scale)
    return pa.decimal256(min(76, precision), target.scale)


def _cast_array(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast one column; integers reach a narrow decimal through a wide one.

    Arrow refuses int64 -> decimal128(12, 2) outright ("precision is not great enough")
    even when every value fits; going through decimal128(19 + scale, scale) first keeps
    the cast checked value by value, so an out-of-range value still fails.
    """
    if pa.types.is_interval(target):
        if pa.types.is_duration(array.type):
            array = _duration_interval(array)
        if pa.types.is_interval(array.type):
            _check_microseconds(array)
    if array.type.equals(target):
        return array
    if pa.types.is_integer(array.type) and pa.types.is_decimal(target):
        return array.cast(_wide_decimal(target)).cast(target)
    return array.cast(target)


def _check_microseconds(array: pa.Array) -> None:
    """Refuse intervals finer than PostgreSQL's microsecond (the driver would truncate them)."""
    if not len(array):
        return
    words = pa.Array.from_buffers(
        pa.int64(), 2 * (len(array) + array.offset), [None, array.buffers()[1]]
    ).slice(2 * array.offset)
    pairs = pa.FixedSizeListArray.from_arrays(words, 2)
    nanos = pc.list_element(pairs, 1)
    rest = pc.subtract(nanos, pc.multiply(pc.divide(nanos, 1000), 1000))
    bad = pc.and_(pc.not_equal(rest, 0), pc.is_valid(array))
    if pc.any(bad).as_py():
        first = array[int(pc.index(bad, True).as_py())]
        raise SchemaIncompatibleError(
            f"Cannot convert the data to the table's column types: the interval {first} "
            "has a part finer than a microsecond, which PostgreSQL would lose data of.",
            connector=CONNECTOR,
            hint="Round the interval to microseconds in a transform.",
        )


def _overwrite(
    conn: Connection,
    schema: str,
    table: str,
    existing: TableInfo | None,
    keep: bool,
    incoming: pa.Schema,
    batches: pa.RecordBatchReader,
    counter: _Counter,
) -> None:
    """Fill a staging table (shaped like the old one when ``keep``), then swap it in."""
    staging = f"hw_stage_{uuid.uuid4().hex[:12]}"
    if existing is not None and keep:
        _execute(
            conn,
            f"CREATE TABLE {qualified(schema, staging)} (LIKE {qualified(schema, table)} "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING COMMENTS INCLUDING STORAGE)",
        )
        info = table_info(conn, schema, staging)
        assert info is not None
    else:
        info = _create(conn, schema, staging, incoming)
    _load(conn, info, batches, counter)
    crash_point("load.during_swap")
    renames: list[tuple[str, str]] = []
    if existing is not None:
        if keep:
            renames = _index_renames(conn, schema, table, staging)
        _execute(conn, f"DROP TABLE {qualified(schema, table)}")
    _execute(conn, f"ALTER TABLE {qualified(schema, staging)} RENAME TO {quote_ident(table)}")
    for new, old in renames:  # the copied indexes (and their constraints) get the old names
        _execute(conn, f"ALTER INDEX {qualified(schema, new)} RENAME TO {quote_ident(old)}")


# an index's shape, the same for the old table and its LIKE copy (same columns, same order)
_INDEX_SHAPES = """
SELECT c.relname, i.indkey::text || '|' || i.indclass::text || '|' || i.indoption::text
       || '|' || i.indisunique::text || '|' || i.indisprimary::text || '|'
       || coalesce(pg_get_expr(i.indexprs, i.indrelid), '') || '|'
       || coalesce(pg_get_expr(i.indpred, i.indrelid), '')
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) ORDER BY c.relname
"""


def _index_renames(
    conn: Connection, schema: str, table: str, staging: str
) -> list[tuple[str, str]]:
    """(staging index, old index) name pairs, matched by shape, for the old names to live on."""
    old = fetch_all(conn, _INDEX_SHAPES, (qualified(schema, table),))
    new = fetch_all(conn, _INDEX_SHAPES, (qualified(schema, staging),))
    free: dict[str, list[str]] = {}
    for name, shape in old:
        free.setdefault(str(shape), []).append(str(name))
    pairs = []
    for name, shape in new:
        names = free.get(str(shape))
        if names:
            pairs.append((str(name), names.pop(0)))
    return pairs
