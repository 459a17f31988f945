"""The ``sqlite`` source and destination, over the ADBC SQLite driver.

Reads stream Arrow batches straight from the driver (``fetch_record_batch``), with
columns, predicate (DuckDB SQL, transpiled by sqlglot) and limit pushed into the
query. Writes bulk-ingest Arrow through ADBC. ``overwrite`` writes a staging table
and swaps it in within the same transaction: a failed write rolls back and leaves
the previous table as it was, and readers see the old table until the commit.
Metadata (``discover``, ``check``) uses the standard library's ``sqlite3``.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, Stream, WriteMode, WriteResult
from headwater.connectors.sqlite.factory import SqliteConfig
from headwater.connectors.sqlite.types import (
    arrow_type,
    conform,
    declared_type,
    select_expr,
    to_storage,
)
from headwater.errors import (
    ConfigError,
    ConnectorError,
    HeadwaterError,
    QueryError,
    SourceFormatError,
    SourceNotFoundError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection

__all__ = ["SqliteClient", "quote_ident"]

CONNECTOR = "sqlite"


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes, embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Column:
    name: str
    declared: str
    type: pa.DataType
    not_null: bool
    pk: int


class SqliteClient:
    """A SQLite database file as a source and a destination."""

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        self.file = config.file

    # -- checks and metadata -----------------------------------------------------------------
    def check(self) -> None:
        """The file exists and is a database (or, when missing, its directory is writable)."""
        if not self.file.exists():
            if self.file.parent.is_dir() and os.access(self.file.parent, os.W_OK):
                return  # a destination creates it on first write
            raise SourceNotFoundError(
                f"The SQLite database {str(self.file)!r} does not exist and its directory "
                "is not writable.",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Fix the connection's `path` (relative paths start at the workspace root).",
            )
        with self._meta() as con:
            con.execute("SELECT count(*) FROM sqlite_schema").fetchone()

    def discover(self) -> list[Stream]:
        """Every table and view, with its mapped Arrow schema and primary key."""
        self._require_file()
        with self._meta() as con:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            ]
            streams = []
            for name in names:
                cols = self._columns(con, name)
                pk = tuple(c.name for c in sorted(cols, key=lambda c: c.pk) if c.pk)
                schema = pa.schema(
                    pa.field(c.name, c.type, nullable=not c.not_null and c.pk == 0) for c in cols
                )
                streams.append(Stream(name, schema=schema, primary_key=pk))
        return streams

    # -- read ----------------------------------------------------------------------------------
    def read(
        self,
        stream: str,
        *,
        columns: list[str] | None = None,
        predicate: str | None = None,
        limit: int | None = None,
        state: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        rejects: RejectSink | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield ``stream`` (a table name, or ``options: {query: ...}``) as Arrow batches."""
        opts = dict(options or {})
        query = opts.pop("query", None)
        batch_rows = int(opts.pop("batch_rows", self.config.batch_rows))
        if opts:
            raise ConfigError(
                f"Unknown read option(s) for sqlite: {', '.join(sorted(opts))}.",
                connector=CONNECTOR,
                hint="Valid read options: query, batch_rows.",
            )
        self._require_file()
        sql, target = self._select(stream, query, columns, predicate, limit)
        yield from self._stream(sql, target, stream, batch_rows)

    def _select(
        self,
        stream: str,
        query: str | None,
        columns: list[str] | None,
        predicate: str | None,
        limit: int | None,
    ) -> tuple[str, pa.Schema | None]:
        target: pa.Schema | None = None
        if query:
            source = f"({query}) AS __hw_q"
            select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
        else:
            with self._meta() as con:
                cols = self._columns(con, stream)
            if not cols:
                raise SourceNotFoundError(
                    f"No table or view named {stream!r} in {str(self.file)!r}.",
                    connector=CONNECTOR,
                    location=str(self.file),
                    hint=choices_hint(stream, [s.name for s in self.discover()], "tables"),
                )
            by_name = {c.name: c for c in cols}
            if columns:
                missing = [c for c in columns if c not in by_name]
                if missing:
                    raise SourceNotFoundError(
                        f"Table {stream!r} has no column {missing[0]!r}.",
                        connector=CONNECTOR,
                        column=missing[0],
                        hint=choices_hint(missing[0], by_name, "columns"),
                    )
                cols = [by_name[c] for c in columns]
            source = quote_ident(stream)
            select = ", ".join(
                f"{select_expr(quote_ident(c.name), c.type)} AS {quote_ident(c.name)}" for c in cols
            )
            target = pa.schema(pa.field(c.name, c.type) for c in cols)
        sql = f"SELECT {select} FROM {source}"
        if predicate:
            sql += f" WHERE ({_to_sqlite(predicate)})"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql, target

    def _stream(
        self, sql: str, target: pa.Schema | None, stream: str, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        con = self._adbc(read_only=True)
        try:
            cur = con.cursor()
            try:
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
                cur.execute(sql)
                reader = cur.fetch_record_batch()
                empty = True
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    empty = False
                    yield batch if target is None else self._conform(batch, target, stream)
                if empty:  # an empty result still carries its schema
                    yield pa.RecordBatch.from_pylist([], schema=target or reader.schema)
            finally:
                cur.close()
        except HeadwaterError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"Reading {stream!r} from {str(self.file)!r} failed: {_first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
            ) from exc
        finally:
            con.close()

    def _conform(self, batch: pa.RecordBatch, target: pa.Schema, stream: str) -> pa.RecordBatch:
        if batch.schema.equals(target):
            return batch
        arrays = []
        for name, field in zip(batch.schema.names, target, strict=True):
            try:
                arrays.append(conform(batch.column(name), field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceFormatError(
                    f"Column {name!r} of table {stream!r} in {str(self.file)!r} is read as "
                    f"{field.type} but holds a value that is not one: {_first_line(exc)}",
                    connector=CONNECTOR,
                    location=str(self.file),
                    column=name,
                    hint=_mismatch_hint(stream, name, field.type),
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=target)

    # -- write ---------------------------------------------------------------------------------
    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """Append to ``target`` (created when missing) or overwrite it atomically."""
        if mode == "merge":
            raise UnsupportedOperationError(
                "The sqlite connector cannot merge (upsert) yet.",
                connector=CONNECTOR,
                hint="Write with mode 'overwrite' or 'append', or merge into a managed dataset.",
            )
        if mode not in ("append", "overwrite"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for sqlite: append, overwrite.",
            )
        if not target.strip():
            raise ConfigError("The target table name is empty.", connector=CONNECTOR)
        counter = _Counter(batches)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        con = self._adbc(read_only=False)
        try:
            cur = con.cursor()
            exists = self._exists(cur, target)
            if mode == "append":
                if not exists:
                    cur.execute(_create(target, counter.declared))
                cur.adbc_ingest(target, counter.reader(), mode="append")
            else:
                staging = f"__hw_staging_{uuid.uuid4().hex[:12]}"
                cur.execute(_create(staging, counter.declared))
                cur.adbc_ingest(staging, counter.reader(), mode="append")
                if exists:
                    cur.execute(f"DROP TABLE {quote_ident(target)}")
                cur.execute(f"ALTER TABLE {quote_ident(staging)} RENAME TO {quote_ident(target)}")
            cur.close()
            con.commit()
        except BaseException as exc:
            con.rollback()
            if counter.error is not None:
                raise counter.error from None
            if isinstance(exc, HeadwaterError) or not isinstance(exc, Exception):
                raise
            raise ConnectorError(
                f"Writing table {target!r} to {str(self.file)!r} failed: {_first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
            ) from exc
        finally:
            con.close()
        return WriteResult(
            rows=counter.rows,
            bytes=counter.bytes,
            location=f"{self.file}#{target}",
            details={"mode": mode, "table": target},
        )

    # -- helpers -------------------------------------------------------------------------------
    def _require_file(self) -> None:
        if not self.file.is_file():
            raise SourceNotFoundError(
                f"The SQLite database {str(self.file)!r} does not exist.",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Fix the connection's `path` (relative paths start at the workspace root).",
            )

    def _meta(self) -> _Meta:
        return _Meta(str(self.file), self.config.timeout)

    @staticmethod
    def _columns(con: sqlite3.Connection, table: str) -> list[_Column]:
        rows = con.execute(
            'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (table,)
        ).fetchall()
        return [_Column(r[0], r[1] or "", arrow_type(r[1] or ""), bool(r[2]), r[3]) for r in rows]

    @staticmethod
    def _exists(cur: Any, table: str) -> bool:
        cur.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
            (table,),
        )
        row = cur.fetchone()
        return bool(row and row[0])

    def _adbc(self, *, read_only: bool) -> Connection:
        import adbc_driver_sqlite.dbapi as adbc

        try:
            con = adbc.connect(str(self.file))
            cur = con.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(self.config.timeout * 1000)}")
            cur.fetchall()
            cur.execute("SELECT count(*) FROM sqlite_schema")
            cur.fetchall()
            cur.close()
        except Exception as exc:
            raise _open_error(self.file, exc) from None
        return con


class _Meta:
    """A short-lived stdlib ``sqlite3`` connection for metadata; errors name the file."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.con: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout)
            self.con.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.Error as exc:
            raise _open_error(self.path, exc) from None
        return self.con

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()


class _Counter:
    """Counts rows and bytes and converts columns to storage types, one batch at a time."""

    def __init__(self, source: pa.RecordBatchReader) -> None:
        self.source = source
        self.rows = 0
        self.bytes = 0
        self.error: BaseException | None = None
        try:
            self.schema = pa.schema(
                pa.field(f.name, to_storage(pa.nulls(0, f.type)).type) for f in source.schema
            )
        except TypeError as exc:
            raise UnsupportedOperationError(
                f"Cannot write to sqlite: {exc}.",
                connector=CONNECTOR,
                hint="Flatten or serialize nested columns (to JSON text) before loading.",
            ) from None
        self.declared = source.schema

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.source:
                self.rows += batch.num_rows
                self.bytes += batch.nbytes
                arrays = [to_storage(col) for col in batch.columns]
                yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        except BaseException as exc:
            self.error = exc
            raise


def _create(table: str, schema: pa.Schema) -> str:
    cols = ", ".join(f"{quote_ident(f.name)} {declared_type(f.type)}" for f in schema)
    return f"CREATE TABLE {quote_ident(table)} ({cols})"


def _mismatch_hint(table: str, column: str, target: pa.DataType) -> str:
    col = quote_ident(column)
    classes = {pa.int64(): "'integer'", pa.float64(): "'real', 'integer'", pa.binary(): "'blob'"}
    where = (
        f"typeof({col}) NOT IN ({classes[target]}, 'null')"
        if target in classes
        else f"{col} IS NOT NULL (values that are not {target})"
    )
    return (
        "SQLite does not enforce declared types. Find the rows with "
        f"SELECT rowid, {col} FROM {quote_ident(table)} WHERE {where}; fix them, or read "
        "with options.query and an explicit CAST."
    )


def _to_sqlite(predicate: str) -> str:
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        return sqlglot.transpile(predicate, read="duckdb", write="sqlite")[0]
    except ParseError as exc:
        raise QueryError(
            f"The predicate {predicate!r} does not parse: {_first_line(exc)}",
            connector=CONNECTOR,
        ) from None


def _open_error(path: Any, exc: BaseException) -> ConnectorError:
    return ConnectorError(
        f"Cannot open {str(path)!r} as a SQLite database: {_first_line(exc)}",
        connector=CONNECTOR,
        location=str(path),
        hint="Check that the connection's `path` names a SQLite database file.",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
