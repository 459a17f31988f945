"""Loading Arrow batches into a MariaDB table: CSV files and ``LOAD DATA LOCAL INFILE``.

Batches are written by pyarrow's CSV writer to temporary files (every value quoted,
NULL as the bare word ``NULL``, no escape character, binary as hex loaded through
``UNHEX``, booleans as 0/1, zoned timestamps as UTC wall time: sessions are UTC) and
loaded with ``LOAD DATA LOCAL INFILE`` every ``_CHUNK_ROWS`` rows; a thread writes the
next chunk's file while the server loads the current one. ``LOAD DATA LOCAL`` turns bad
values into warnings, so any warning fails the load with the first warning's text. When
the server refuses ``LOCAL INFILE`` the rows go through multi-row ``INSERT`` statements
(PyMySQL ``executemany``) instead, which is slower.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.mariadb.catalog import Column, TableInfo
from headwater.connectors.mariadb.client import fetch_all
from headwater.connectors.mariadb.factory import CONNECTOR
from headwater.connectors.mariadb.types import qualified, quote_ident
from headwater.connectors.server.errors import missing_column_error
from headwater.errors import SchemaIncompatibleError

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["Counter", "load"]

_CHUNK_ROWS = 250_000  # rows per temporary CSV file / LOAD DATA statement (pipelined)
_INSERT_ROWS = 5_000  # rows per executemany call on the fallback path
_REFUSED = {1148, 2068, 3948, 4166}  # LOAD DATA LOCAL disabled on the server or client


@dataclass
class Counter:
    rows: int = 0
    bytes: int = 0
    rejected: int = 0
    method: str = "load data local infile"
    error: BaseException | None = None  # raised by the caller's stream, re-raised as is


def load(
    conn: Connection,
    info: TableInfo,
    batches: pa.RecordBatchReader,
    counter: Counter,
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
            raise missing_column_error(
                f"{info.database}.{info.name}",
                f.name,
                [c.name for c in info.columns],
                connector=CONNECTOR,
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
    batches: pa.RecordBatchReader, counter: Counter, columns: list[Column]
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


def _chunks(batches: pa.RecordBatchReader, counter: Counter) -> Iterator[list[pa.RecordBatch]]:
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
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        # as float64 text: pyarrow writes float32 by its shortest float32 repr, which
        # MariaDB parses as a double (3.4028235e+38 > FLT_MAX: "out of range"); the
        # double's digits round back to the same float32 exactly
        return array.cast(pa.float64())
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
