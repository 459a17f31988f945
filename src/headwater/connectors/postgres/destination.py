"""The ``postgres`` destination: Arrow streams into tables through binary COPY (ADBC ingest).

``append`` copies the stream into the table inside one transaction (all rows or
none), creating the table with the mapped types when it is missing. Batches are
cast to the table's column types first; columns whose binary form differs from
the Arrow one (jsonb, uuid, enums, unconstrained numeric, ...) go through a
temporary table and one ``INSERT ... SELECT`` with casts.

``overwrite`` is atomic: in one transaction the stream is copied into a staging
table in the same schema, the old table is dropped and the staging table renamed
in its place. Until the commit readers see the old rows; after it, the new ones;
never an empty or missing table. A failure at any point rolls everything back and
leaves the old table as it was. The new table keeps the old one's column types,
constraints and indexes when the columns are the same; otherwise it is created
from the stream's schema. Views that depend on the table make the swap fail (the
old table stays): drop them first.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import WriteMode, WriteResult
from headwater.connectors.postgres.catalog import TableInfo, table_info
from headwater.connectors.postgres.client import connect, driver_error, fetch_all
from headwater.connectors.postgres.factory import CONNECTOR, PostgresConfig
from headwater.connectors.postgres.types import pg_type, qualified, quote_ident, wire_type
from headwater.errors import (
    ConfigError,
    HeadwaterError,
    SchemaIncompatibleError,
    choices_hint,
)

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = ["PostgresDestination"]

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
    ) -> WriteResult:
        """Write every batch to ``target`` (``table`` or ``schema.table``) in one transaction."""
        if mode not in ("append", "overwrite", "merge"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for postgres: append, overwrite, merge.",
            )
        plan = None
        if mode == "merge":
            from headwater.connectors.postgres.merge import merge, merge_plan

            plan = merge_plan(batches.schema, keys, options)
        if options and plan is None:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for postgres.",
                connector=CONNECTOR,
                hint="Only mode: merge takes a write option (soft_delete_column).",
            )
        incoming = pa.schema([pa.field(f.name, wire_type(f.type)) for f in batches.schema])
        for f in batches.schema:
            pg_type(f.type, column=f.name)  # refuse unmappable types before connecting
        conn = connect(self.config)
        counter = _Counter()
        details: dict[str, Any] = {"mode": mode}
        try:
            schema, table = self._split(conn, target)
            existing = table_info(conn, schema, table)
            if plan is not None:
                dest = existing or _create(conn, schema, table, incoming)
                details.update(merge(conn, dest, plan, batches, counter))
            elif mode == "append":
                dest = existing or _create(conn, schema, table, incoming)
                _load(conn, dest, batches, counter)
            else:
                _overwrite(conn, schema, table, existing, incoming, batches, counter)
            conn.commit()
        except HeadwaterError:
            _rollback(conn)
            raise
        except Exception as exc:
            _rollback(conn)
            if counter.error is not None:
                raise counter.error from None
            raise driver_error(self.config, exc, f"writing {target!r}") from None
        finally:
            conn.close()
        return WriteResult(
            rows=details.pop("rows", counter.rows),
            bytes=counter.bytes,
            location=f"postgresql://{self.config.where}/{schema}.{table}",
            details=details,
        )

    def _split(self, conn: Connection, target: str) -> tuple[str, str]:
        schema, dot, table = target.partition(".")
        if dot and schema and table:
            found = fetch_all(
                conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", (schema,)
            )
            if found:
                return schema, table
        return self.config.schema_name, target


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


def _direct(info: TableInfo) -> bool:
    for col in info.columns:
        if col.typname.startswith("_"):
            if col.typname[1:] not in _DIRECT_ELEMENTS:
                return False
        elif (
            col.typname not in _DIRECT
            or col.is_enum
            or (col.typname == "numeric" and not pa.types.is_decimal(col.arrow))
        ):
            return False
    return True


def _load(
    conn: Connection, info: TableInfo, batches: pa.RecordBatchReader, counter: _Counter
) -> None:
    """Copy ``batches`` into the existing table ``info`` (inside the open transaction)."""
    by_name = {c.name: c for c in info.columns}
    for field in batches.schema:
        if field.name not in by_name:
            raise SchemaIncompatibleError(
                f"Table {info.schema}.{info.name} has no column {field.name!r}.",
                connector=CONNECTOR,
                column=field.name,
                hint=choices_hint(field.name, by_name, "columns")
                + " Add the column to the table, or drop it from the data.",
            )
    cols = [by_name[f.name] for f in batches.schema]
    sub = TableInfo(info.schema, info.name, info.kind, tuple(cols), ())
    cur = conn.cursor()
    try:
        if _direct(sub):
            wire = pa.schema([pa.field(c.name, c.arrow) for c in cols])
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


def _cast_array(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast one column; integers reach a narrow decimal through a wide one.

    Arrow refuses int64 -> decimal128(12, 2) outright ("precision is not great enough")
    even when every value fits; going through decimal128(19 + scale, scale) first keeps
    the cast checked value by value, so an out-of-range value still fails.
    """
    if array.type.equals(target):
        return array
    if pa.types.is_integer(array.type) and pa.types.is_decimal(target):
        wide = pa.decimal128(min(38, 20 + target.scale), target.scale)
        return array.cast(wide).cast(target)
    return array.cast(target)


def _overwrite(
    conn: Connection,
    schema: str,
    table: str,
    existing: TableInfo | None,
    incoming: pa.Schema,
    batches: pa.RecordBatchReader,
    counter: _Counter,
) -> None:
    staging = f"hw_stage_{uuid.uuid4().hex[:12]}"
    same_columns = existing is not None and sorted(c.name for c in existing.columns) == sorted(
        incoming.names
    )
    if existing is not None and same_columns and existing.kind in ("r", "p"):
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
    if existing is not None:
        _execute(conn, f"DROP TABLE {qualified(schema, table)}")
    _execute(conn, f"ALTER TABLE {qualified(schema, staging)} RENAME TO {quote_ident(table)}")
