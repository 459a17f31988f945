"""The ``sqlite`` source and destination, over the ADBC SQLite driver.

Reads stream Arrow batches straight from the driver (``fetch_record_batch``), with
columns, predicate (DuckDB SQL, transpiled by sqlglot) and limit pushed into the
query. Writes bulk-ingest Arrow through ADBC. ``overwrite`` writes a staging table
and swaps it in within the same transaction: a failed write rolls back and leaves
the previous table as it was, and readers see the old table until the commit.
Metadata (``discover``, ``check``) goes through the same driver, read-only.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from headwater.connectors.base import (
    Stream,
)
from headwater.connectors.sql.client import FileDatabaseClient, ReadRequest, first_line, quote_ident
from headwater.connectors.sqlite.factory import SqliteConfig
from headwater.connectors.sqlite.predicate import to_sqlite
from headwater.connectors.sqlite.types import (
    arrow_type,
    conform,
    select_expr,
    sort_expr,
)
from headwater.errors import (
    ConfigError,
    ConnectorError,
    ConnectorUnavailableError,
    HeadwaterError,
    SourceFormatError,
    SourceNotFoundError,
    choices_hint,
)

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection

    from headwater.connectors.sqlite.writer import SqliteWriter

__all__ = ["SqliteClient", "quote_ident"]

CONNECTOR = "sqlite"


@dataclass(frozen=True)
class _Column:
    name: str
    declared: str
    type: pa.DataType
    not_null: bool
    pk: int


class SqliteClient(FileDatabaseClient[SqliteConfig]):
    """A SQLite database file as a source and a destination."""

    connector: ClassVar[str] = CONNECTOR
    product: ClassVar[str] = "SQLite"

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
            con.rows("SELECT count(*) FROM sqlite_schema")

    def discover(self) -> list[Stream]:
        """Every table and view, with its mapped Arrow schema and primary key.

        Headwater's own tables (the ``_headwater_loads`` ledger, ``__hw_*`` staging) are
        left out; they can still be read by name.
        """
        self._require_file()
        with self._meta() as con:
            names = [
                r[0]
                for r in con.rows(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
                if not _internal(r[0])
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
    def _read(self, request: ReadRequest) -> Iterator[pa.RecordBatch]:
        """Yield ``stream`` (a table name, or ``options: {query: ...}``) as Arrow batches.

        ``columns``, ``predicate`` (DuckDB SQL, rendered for SQLite with exact temporal
        literals), ``order_by`` (ascending, NULLs last) and ``limit`` run in SQLite.
        """
        r = request
        self._require_file()
        sql, target = self._select(r.stream, r.query, r.columns, r.predicate, r.limit, r.order_by)
        return self._stream(sql, target, r.stream, r.batch_rows)

    def _bounds(
        self, stream: str, column: str, predicate: str | None, query: str | None
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``, in one query.

        Values are Python scalars of the column's mapped type (``int``, ``float``,
        ``Decimal``, ``date``, ``datetime``, tz-aware for ``TIMESTAMPTZ``); ``(None, None)``
        when no row matches. Over ``options.query`` the values are SQLite's own (the
        query's columns have no declared type).
        """
        self._require_file()
        col_type: pa.DataType | None = None
        if query:
            source = f"({_strip_query(query)}) AS __hw_q"
            where = to_sqlite(predicate) if predicate else None
        else:
            cols = self._table_columns(stream)
            by_name = {c.name.casefold(): c for c in cols}
            found = by_name.get(column.casefold())
            if found is None:
                raise _no_column(stream, column, [c.name for c in cols])
            column, col_type = found.name, found.type
            source = quote_ident(stream)
            where = to_sqlite(predicate, {c.name: c.type for c in cols}) if predicate else None
        q = quote_ident(column)
        cond = f" WHERE {where}" if where else ""
        if col_type is None or not _needs_ordered_bounds(col_type):
            sql = f"SELECT min({q}), max({q}) FROM {source}{cond}"
        else:  # decimal text: the extremes by numeric value, returned as their exact text
            key = sort_expr(q, col_type)
            pick = select_expr(q, col_type)
            filt = f"{cond} AND {q} IS NOT NULL" if cond else f" WHERE {q} IS NOT NULL"
            sql = (
                f"SELECT (SELECT {pick} FROM {source}{filt} ORDER BY {key} ASC LIMIT 1), "
                f"(SELECT {pick} FROM {source}{filt} ORDER BY {key} DESC LIMIT 1)"
            )
        with self._meta() as con:
            try:
                result = con.rows(sql)
            except Exception as exc:
                raise _query_error(self.file, stream, exc) from None
        low, high = (result[0] if result else (None, None))[:2]
        if low is None and high is None:
            return None, None
        if col_type is None:
            return low, high
        try:
            values = conform(pa.array([low, high]), col_type).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SourceFormatError(
                f"Column {column!r} of table {stream!r} in {str(self.file)!r} is read as "
                f"{col_type} but holds a value that is not one: {_first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                column=column,
                hint=_mismatch_hint(stream, column, col_type),
            ) from None
        return values[0], values[1]

    def _table_columns(self, stream: str) -> list[_Column]:
        with self._meta() as con:
            cols = self._columns(con, stream)
        if not cols:
            raise SourceNotFoundError(
                f"No table or view named {stream!r} in {str(self.file)!r}.",
                connector=CONNECTOR,
                location=str(self.file),
                hint=choices_hint(stream, [s.name for s in self.discover()], "tables")
                + " Or read a query: options.query.",
            )
        return cols

    def _select(
        self,
        stream: str,
        query: str | None,
        columns: list[str] | None,
        predicate: str | None,
        limit: int | None,
        order_by: Sequence[str] | None,
    ) -> tuple[str, pa.Schema | None]:
        target: pa.Schema | None = None
        if query:
            source = f"({_strip_query(query)}) AS __hw_q"
            select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
            where = to_sqlite(predicate) if predicate else None
            keys = [quote_ident(c) for c in order_by or ()]
        else:
            cols = self._table_columns(stream)
            by_name = {c.name.casefold(): c for c in cols}
            known = [c.name for c in cols]
            for name in [*(columns or ()), *(order_by or ())]:
                if name.casefold() not in by_name:
                    raise _no_column(stream, name, known)
            where = to_sqlite(predicate, {c.name: c.type for c in cols}) if predicate else None
            # ORDER BY names the table's own column, never the SELECT's converted alias
            keys = [
                sort_expr(
                    f"__hw_t.{quote_ident(by_name[n.casefold()].name)}", by_name[n.casefold()].type
                )
                for n in order_by or ()
            ]
            if columns:
                cols = [by_name[c.casefold()] for c in columns]
            source = f"{quote_ident(stream)} AS __hw_t"
            select = ", ".join(
                f"{select_expr(f'__hw_t.{quote_ident(c.name)}', c.type, c.declared)} "
                f"AS {quote_ident(c.name)}"
                for c in cols
            )
            target = pa.schema(pa.field(c.name, c.type) for c in cols)
            return _hinted(cols, select, source, where, keys, limit), target
        sql = f"SELECT {select} FROM {source}"
        if where:
            sql += f" WHERE {where}"
        if keys:
            sql += " ORDER BY " + ", ".join(f"{k} ASC NULLS LAST" for k in keys)
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
                carry: pa.RecordBatch | None = None  # rows short of a whole batch
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    if target is None:
                        empty = False
                        yield batch
                        continue
                    # the hint row shifts the driver's batches by one: re-cut them whole
                    batch = _without_hint(batch, len(target))
                    if carry is not None:
                        batch = pa.concat_batches([carry, batch])
                        carry = None
                    while batch.num_rows >= batch_rows:
                        empty = False
                        yield self._conform(batch.slice(0, batch_rows), target, stream)
                        batch = batch.slice(batch_rows)
                    if batch.num_rows:
                        carry = batch
                if carry is not None:
                    empty = False
                    yield self._conform(carry, target, stream)  # type: ignore[arg-type]
                if empty:  # an empty result still carries its schema
                    yield pa.RecordBatch.from_pylist([], schema=target or reader.schema)
            finally:
                cur.close()
        except HeadwaterError:
            raise
        except Exception as exc:
            raise _query_error(self.file, stream, exc) from exc
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
    def _writer(self) -> SqliteWriter:
        """See :mod:`headwater.connectors.sqlite.writer`."""
        from headwater.connectors.sqlite.writer import SqliteWriter

        return SqliteWriter(self)

    # -- helpers -------------------------------------------------------------------------------
    def _meta(self) -> _Meta:
        return _Meta(self)

    @staticmethod
    def _columns(con: _Meta, table: str) -> list[_Column]:
        """The columns of ``table`` (matched case-insensitively, as SQLite does); [] if none."""
        rows = con.rows('SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (table,))
        return [_Column(r[0], r[1] or "", arrow_type(r[1] or ""), bool(r[2]), r[3]) for r in rows]

    def _adbc(self, *, autocommit: bool = False, read_only: bool = False) -> Connection:
        """An ADBC connection with the lock timeout set; errors name the file."""
        import adbc_driver_sqlite.dbapi as adbc

        uri = str(self.file)
        if read_only:
            uri = "file:" + urllib.parse.quote(uri) + "?mode=ro"
        try:
            con = adbc.connect(uri, autocommit=autocommit)
        except Exception as exc:
            raise open_error(self.file, exc) from None
        try:
            cur = con.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(self.config.timeout * 1000)}")
            cur.fetchall()
            cur.execute("SELECT count(*) FROM sqlite_schema")
            cur.fetchall()
            cur.close()
        except Exception as exc:
            con.close()
            raise open_error(self.file, exc) from None
        return con


class _Meta:
    """A short-lived read-only ADBC connection for metadata and scalars; errors name the file.

    Everything goes through the ADBC driver's own SQLite library, never the standard
    library's ``sqlite3`` as well: two copies of SQLite in one process do not see each
    other's POSIX locks, and closing one would drop the other's (a known way to corrupt
    a database).
    """

    def __init__(self, client: SqliteClient) -> None:
        self.client = client
        self.con: Connection | None = None

    def __enter__(self) -> _Meta:
        self.con = self.client._adbc(autocommit=True, read_only=True)
        return self

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        assert self.con is not None
        cur = self.con.cursor()
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()


_HINT = "__hw_hint"


def _hint_value(t: pa.DataType) -> str:
    """A literal of the storage class a column of mapped type ``t`` is read as."""
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "0"
    if pa.types.is_floating(t):
        return "0.0"
    if pa.types.is_binary(t):
        return "x''"
    return "''"


def _hinted(
    cols: Sequence[_Column],
    select: str,
    source: str,
    where: str | None,
    keys: Sequence[str],
    limit: int | None,
) -> str:
    """The table read, behind one *hint row* that fixes each column's Arrow type.

    The ADBC driver infers a column's type from the values of its first batch: a column
    that is NULL there becomes int64 and a later text value fails the read ("Type
    mismatch"), and an integer-looking NUMERIC column fails on its first REAL. The hint
    row carries one value of the right storage class per column; it is filtered out of
    the batches (``__hw_hint = 1``). With ``order_by`` the sort keys ride along as extra
    columns, so the one compound ``ORDER BY`` keeps the hint row first.
    """
    hints = ", ".join(f"{_hint_value(c.type)} AS {quote_ident(c.name)}" for c in cols)
    body = f"SELECT {select}, 0 AS {_HINT}"
    head = f"SELECT {hints}, 1 AS {_HINT}"
    for i, key in enumerate(keys):
        body += f", {key} AS __hw_k{i}"
        head += f", NULL AS __hw_k{i}"
    body += f" FROM {source}"
    if where:
        body += f" WHERE {where}"
    if keys:
        order = ", ".join(f"__hw_k{i} ASC NULLS LAST" for i in range(len(keys)))
        sql = f"{head} UNION ALL {body} ORDER BY {_HINT} DESC, {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit) + 1}"
        return sql
    if limit is not None:
        body = f"SELECT * FROM ({body} LIMIT {int(limit)})"
    return f"{head} UNION ALL {body}"


def _without_hint(batch: pa.RecordBatch, width: int) -> pa.RecordBatch:
    """``batch`` without the hint row and the helper columns after the first ``width``."""
    import pyarrow.compute as pc

    flag = batch.column(width)  # the hint flag follows the table's columns
    if pc.any(pc.equal(flag, 1)).as_py():
        batch = batch.filter(pc.equal(flag, 0))
    return batch.select(list(range(width)))


def _internal(name: str) -> bool:
    return name.casefold() == "_headwater_loads" or name.startswith("__hw_")


def _strip_query(query: str) -> str:
    text = str(query).strip().rstrip(";").strip()
    if not text:
        raise ConfigError("options.query must be a SELECT statement.", connector=CONNECTOR)
    return text


def _needs_ordered_bounds(t: pa.DataType) -> bool:
    """min()/max() of the stored value would not be the extremes (decimal text)."""
    return bool(pa.types.is_decimal(t))


def _no_column(table: str, column: str, known: Sequence[str]) -> SourceNotFoundError:
    return SourceNotFoundError(
        f"Table {table!r} has no column {column!r}.",
        connector=CONNECTOR,
        column=column,
        hint=choices_hint(column, known, "columns"),
    )


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


def is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def open_error(path: Any, exc: BaseException) -> ConnectorError:
    """The error for a file that cannot be opened: locked (transient) or not a database."""
    if is_locked(exc):
        return ConnectorUnavailableError(
            f"The SQLite database {str(path)!r} is locked by another connection: "
            f"{_first_line(exc)}",
            connector=CONNECTOR,
            location=str(path),
            hint="Another process is writing to it; the step is retried. Raise the "
            "connection's `timeout` to wait longer for the lock.",
        )
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return SourceFormatError(
            f"{str(path)!r} is not a SQLite database, or it is corrupted: {_first_line(exc)}",
            connector=CONNECTOR,
            location=str(path),
            hint="Check that the connection's `path` names a SQLite database file; restore "
            "a corrupted one from a backup (`sqlite3 FILE .recover` can salvage rows).",
        )
    return ConnectorError(
        f"Cannot open {str(path)!r} as a SQLite database: {_first_line(exc)}",
        connector=CONNECTOR,
        location=str(path),
        hint="Check that the connection's `path` names a SQLite database file and that "
        "its directory exists and is writable.",
    )


def _query_error(path: Any, stream: str, exc: BaseException) -> ConnectorError:
    if is_locked(exc) or "not a database" in str(exc).lower() or "malformed" in str(exc):
        return open_error(path, exc)
    return ConnectorError(
        f"Reading {stream!r} from {str(path)!r} failed: {_first_line(exc)}",
        connector=CONNECTOR,
        location=str(path),
    )


_first_line = first_line
