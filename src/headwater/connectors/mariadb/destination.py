"""The ``mariadb`` destination: Arrow streams into tables through ``LOAD DATA LOCAL INFILE``.

Batches are written by pyarrow's CSV writer to a temporary file (every value quoted,
NULL as the bare word ``NULL``, no escape character, binary as hex, booleans as 0/1,
zoned timestamps as UTC wall time) and loaded with ``LOAD DATA LOCAL INFILE`` every
``_CHUNK_ROWS`` rows. The session is UTC. ``LOAD DATA LOCAL`` turns bad values into
warnings, so any warning fails the write (and rolls it back) with the first warning's
text. When the server refuses ``LOCAL INFILE`` (``local_infile=0``) the rows go through
multi-row ``INSERT`` statements (PyMySQL ``executemany``) instead, which is slower;
``WriteResult.details["method"]`` says which path ran.

``append`` loads into the table inside one transaction (all rows or none; InnoDB),
creating the table with the mapped types first when it is missing (DDL commits by
itself in MariaDB, so a created table stays even when the load fails).

``overwrite`` is atomic: the stream is loaded into a staging table
(``CREATE TABLE ... LIKE`` the old one when the columns are the same, else from the
stream's schema) and swapped in with one ``RENAME TABLE t TO old, staging TO t``
(atomic in MariaDB: readers see the old rows, then the new ones, never an empty or
missing table), then the old table is dropped. A failure before the swap drops the
staging table and leaves the old table as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import WriteMode, WriteResult
from headwater.connectors.mariadb.client import connect, driver_error, execute, fetch_all
from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.mariadb.source import TableInfo, table_info
from headwater.connectors.mariadb.types import mysql_type, qualified, quote_ident
from headwater.errors import (
    ConfigError,
    HeadwaterError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["MariadbDestination"]

_CHUNK_ROWS = 1_000_000  # rows per temporary CSV file / LOAD DATA statement
_INSERT_ROWS = 5_000  # rows per executemany call on the fallback path
_REFUSED = {1148, 2068, 3948, 4166}  # LOAD DATA LOCAL disabled on the server or client


@dataclass
class _Counter:
    rows: int = 0
    bytes: int = 0
    method: str = "load data local infile"
    error: BaseException | None = None  # raised by the caller's stream, re-raised as is


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
    ) -> WriteResult:
        """Write every batch to ``target`` (``table`` or ``database.table``)."""
        if mode == "merge":
            raise UnsupportedOperationError(
                "The mariadb connector cannot merge yet.",
                connector=CONNECTOR,
                hint="Use mode: append or overwrite, or merge into a dataset and overwrite "
                "the table from it.",
            )
        if mode not in ("append", "overwrite"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for mariadb: append, overwrite.",
            )
        if options:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for mariadb.",
                connector=CONNECTOR,
                hint="The mariadb destination takes no write options.",
            )
        for f in batches.schema:
            mysql_type(f.type, column=f.name)  # refuse unmappable types before connecting
        conn = connect(self.config, local_infile=True)
        counter = _Counter()
        database, table = self.config.database, target
        try:
            database, table = self._split(conn, target)
            existing = table_info(conn, database, table)
            if mode == "append":
                dest = existing or _create(conn, database, table, batches.schema)
                _load(conn, dest, batches, counter)
                conn.commit()
            else:
                _overwrite(conn, database, table, existing, batches, counter)
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
            rows=counter.rows,
            bytes=counter.bytes,
            location=f"mysql://{self.config.host}:{self.config.port}/{database}.{table}",
            details={"mode": mode, "method": counter.method},
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


def _rollback(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # the connection is closed next; the first error wins
        conn.rollback()


def _create(conn: Connection, database: str, table: str, schema: pa.Schema) -> TableInfo:
    columns = ", ".join(
        f"{quote_ident(f.name)} {mysql_type(f.type, column=f.name)}" for f in schema
    )
    execute(
        conn,
        f"CREATE TABLE {qualified(database, table)} ({columns}) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    )
    info = table_info(conn, database, table)
    assert info is not None
    return info


def _overwrite(
    conn: Connection,
    database: str,
    table: str,
    existing: TableInfo | None,
    batches: pa.RecordBatchReader,
    counter: _Counter,
) -> None:
    token = uuid.uuid4().hex[:12]
    staging, old = f"hw_stage_{token}", f"hw_old_{token}"
    same = existing is not None and sorted(c.name for c in existing.columns) == sorted(
        batches.schema.names
    )
    if existing is not None and same and existing.kind != "VIEW":
        execute(
            conn, f"CREATE TABLE {qualified(database, staging)} LIKE {qualified(database, table)}"
        )
        info = table_info(conn, database, staging)
        assert info is not None
    else:
        info = _create(conn, database, staging, batches.schema)
    try:
        _load(conn, info, batches, counter)
        conn.commit()
        if existing is None:
            execute(
                conn, f"RENAME TABLE {qualified(database, staging)} TO {qualified(database, table)}"
            )
            return
        kind = "VIEW" if existing.kind == "VIEW" else "TABLE"
        execute(
            conn,
            f"RENAME TABLE {qualified(database, table)} TO {qualified(database, old)}, "
            f"{qualified(database, staging)} TO {qualified(database, table)}",
        )
    except BaseException:
        _rollback(conn)
        with contextlib.suppress(Exception):
            execute(conn, f"DROP TABLE IF EXISTS {qualified(database, staging)}")
        raise
    execute(conn, f"DROP {kind} IF EXISTS {qualified(database, old)}")


def _load(
    conn: Connection, info: TableInfo, batches: pa.RecordBatchReader, counter: _Counter
) -> None:
    """Load ``batches`` into the existing table ``info`` (inside the open transaction)."""
    by_name = {c.name: c for c in info.columns}
    for field in batches.schema:
        if field.name not in by_name:
            raise SchemaIncompatibleError(
                f"Table {info.database}.{info.name} has no column {field.name!r}.",
                connector=CONNECTOR,
                column=field.name,
                hint=choices_hint(field.name, by_name, "columns")
                + " Add the column to the table, or drop it from the data.",
            )
    names = batches.schema.names
    for chunk in _chunks(batches, counter):
        if counter.method == "load data local infile":
            try:
                _load_csv(conn, info, names, chunk)
                continue
            except Exception as exc:
                if getattr(exc, "args", (None,))[0] not in _REFUSED:
                    raise
                counter.method = "insert"  # the server refuses LOCAL INFILE: slower path
        _insert(conn, info, names, chunk)


def _chunks(batches: pa.RecordBatchReader, counter: _Counter) -> Iterator[list[pa.RecordBatch]]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in _guarded(batches, counter):
        counter.rows += batch.num_rows
        counter.bytes += batch.nbytes
        pending.append(batch)
        rows += batch.num_rows
        if rows >= _CHUNK_ROWS:
            yield pending
            pending, rows = [], 0
    if pending:
        yield pending


def _guarded(batches: pa.RecordBatchReader, counter: _Counter) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except BaseException as exc:
        counter.error = exc
        raise


def _csv_array(array: pa.Array) -> pa.Array:
    """``array`` as a type the CSV writer renders the way LOAD DATA parses it."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _csv_array(array.cast(t.value_type))
    if pa.types.is_boolean(t):
        return array.cast(pa.int8())
    if pa.types.is_timestamp(t):
        return _micro(array, pa.timestamp("us"))  # zoned: UTC wall time (session is UTC)
    if pa.types.is_time(t):
        return _micro(array, pa.time64("us"))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.array(
            [None if v is None else v.hex() for v in array.to_pylist()], type=pa.string()
        )
    return array


def _micro(array: pa.Array, to: pa.DataType) -> pa.Array:
    try:
        return array.cast(to)
    except pa.ArrowInvalid as exc:
        raise SchemaIncompatibleError(
            f"Cannot store values finer than microseconds in MariaDB: {exc}",
            connector=CONNECTOR,
            hint="Round the column to microseconds in a transform.",
        ) from None


def _load_csv(
    conn: Connection, info: TableInfo, names: list[str], chunk: list[pa.RecordBatch]
) -> None:
    import pyarrow.csv as pacsv

    binary = {
        c.name
        for c in info.columns
        if c.data_type in ("binary", "varbinary") or "blob" in c.data_type
    }
    targets, sets = [], []
    for i, name in enumerate(names):
        if name in binary:
            targets.append(f"@v{i}")
            sets.append(f"{quote_ident(name)} = UNHEX(@v{i})")
        else:
            targets.append(quote_ident(name))
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
                    [_csv_array(a) for a in batch.columns], names=names
                )
                if writer is None:
                    writer = pacsv.CSVWriter(sink, out.schema, write_options=options)
                writer.write_batch(out)
            if writer is not None:
                writer.close()
        literal = conn.escape(path)
        sql = (
            f"LOAD DATA LOCAL INFILE {literal} INTO TABLE {qualified(info.database, info.name)} "
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
                f"MariaDB did not accept the data for {info.database}.{info.name}: {text}",
                connector=CONNECTOR,
                hint="Cast the columns in a transform so they fit the table.",
            )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _insert(
    conn: Connection, info: TableInfo, names: list[str], chunk: list[pa.RecordBatch]
) -> None:
    cols = ", ".join(quote_ident(n) for n in names)
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {qualified(info.database, info.name)} ({cols}) VALUES ({marks})"
    with conn.cursor() as cur:
        for batch in chunk:
            for start in range(0, batch.num_rows, _INSERT_ROWS):
                part = batch.slice(start, _INSERT_ROWS)
                arrays = [
                    a.cast(pa.timestamp("us")) if pa.types.is_timestamp(a.type) else a
                    for a in part.columns
                ]
                rows = list(zip(*(a.to_pylist() for a in arrays), strict=True))
                cur.executemany(sql, rows)
