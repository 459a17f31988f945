"""The ``postgres`` source: tables and queries read through ADBC as Arrow batches.

``stream`` is ``table`` (in the connection's ``schema``), ``schema.table``, or any
name when ``options.query`` holds a SELECT. Columns, the predicate, the order and the
limit are pushed into one SQL statement; identifiers are always quoted; the predicate
(DuckDB SQL) is parsed and re-rendered for PostgreSQL by sqlglot, so it is one
expression, never a second statement.

Every read runs with the session ``TimeZone`` set to UTC, so a predicate comparing a
``timestamptz`` column with a naive timestamp literal (or a ``timestamp`` column with a
tz-aware one) means the same instant whatever the server's default time zone is, and
agrees with the Arrow mapping (``timestamptz`` is read as UTC instants).

Parallel range reads share one snapshot (:meth:`PostgresSource.shared_snapshot`): a
coordinator connection exports its ``REPEATABLE READ`` snapshot with
``pg_export_snapshot()`` and stays open; every range's connection starts a
``REPEATABLE READ, READ ONLY`` transaction that imports it (``SET TRANSACTION SNAPSHOT``)
before its query, so all ranges see the table as of one instant, as one read would.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, Stream
from headwater.connectors.postgres.catalog import TableInfo, list_tables, table_info
from headwater.connectors.postgres.client import (
    connect,
    connection_lost,
    driver_error,
    fetch_all,
)
from headwater.connectors.postgres.factory import CONNECTOR, PostgresConfig
from headwater.connectors.postgres.types import qualified, quote_ident
from headwater.connectors.server.snapshot import RangeSplit
from headwater.connectors.server.source import check_connection, check_read_options, on_connection
from headwater.errors import (
    ConfigError,
    ConnectorUnavailableError,
    SourceFormatError,
    SourceNotFoundError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = ["PostgresSource", "to_postgres_predicate"]

_ALIAS = "hw_src"  # the relation read, so ORDER BY names its columns, not output aliases
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)*")
# primary-key types a default parallel read splits on (ranges of an ordered, dense-ish key)
_SPLIT_TYPES = frozenset(["int2", "int4", "int8", "date", "timestamp", "timestamptz"])


class PostgresSource:
    """Reads PostgreSQL tables, views and queries.

    ``snapshot`` (an id exported by ``pg_export_snapshot()``): every connection this source
    opens reads that snapshot (see :meth:`shared_snapshot`).
    """

    def __init__(self, config: PostgresConfig, *, snapshot: str | None = None) -> None:
        if snapshot is not None and not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ConfigError(f"Not a snapshot id: {snapshot!r}.", connector=CONNECTOR)
        self.config = config
        self.snapshot = snapshot

    @contextlib.contextmanager
    def shared_snapshot(self) -> Iterator[PostgresSource]:
        """A source whose every read sees the snapshot exported here, held until exit.

        The coordinator connection stays idle in its ``REPEATABLE READ`` transaction for
        the duration (an exported snapshot lives as long as its transaction): readers may
        import it at any time until then, so ranges started late see the same rows.
        """
        conn = connect(self.config)  # autocommit off: ADBC has opened a transaction
        try:
            try:
                cur = conn.cursor()
                try:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    # idle by design until the last range has imported the snapshot
                    cur.execute("SET idle_in_transaction_session_timeout = 0")
                    cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                    snapshot = str(cur.fetchall()[0][0])
                finally:
                    cur.close()
            except Exception as exc:
                lost = connection_lost(conn) if not getattr(exc, "sqlstate", None) else None
                raise driver_error(self.config, exc, "exporting a snapshot", lost=lost) from None
            yield PostgresSource(self.config, snapshot=snapshot)
        finally:
            _close(conn, None)

    def default_split(
        self,
        stream: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RangeSplit | None:
        """Split on the primary key when the read is big (see ``parallel_read_rows``).

        Only table reads qualify (not ``options.query``), on a single-column integer, date
        or timestamp primary key; the size is the planner's estimate of the rows the read
        returns (``EXPLAIN``: statistics, no scan), so an incremental read of a few new rows
        of a big table stays one stream.
        """
        threshold = self.config.parallel_read_rows
        if threshold <= 0 or _query_option(options):
            return None
        where = to_postgres_predicate(predicate) if predicate else None
        conn = self._connect()
        try:
            info = self._resolve(conn, stream)
            if info.kind not in ("r", "p") or len(info.primary_key) != 1:
                return None
            key = next(c for c in info.columns if c.name == info.primary_key[0])
            if key.typname not in _SPLIT_TYPES:
                return None
            sql = f"SELECT 1 FROM {qualified(info.schema, info.name)} AS {_ALIAS}"
            if where:
                sql += f" WHERE {where}"
            try:
                cur = conn.cursor()
                try:  # ADBC wraps a query in COPY, which cannot hold an EXPLAIN
                    cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
                    cur.execute(f"EXPLAIN (FORMAT JSON) {sql}")
                    plan = cur.fetchall()[0][0]
                finally:
                    cur.close()
            except Exception as exc:
                raise driver_error(self.config, exc, f"estimating the rows of {stream!r}") from None
        finally:
            _close(conn, None)
        parsed = json.loads(plan) if isinstance(plan, str | bytes) else plan
        estimate = int(parsed[0]["Plan"]["Plan Rows"])
        if estimate < threshold:
            return None
        return RangeSplit(key.name, self.config.parallel_read_partitions, estimate)

    def check(self) -> None:
        check_connection(self.config, connect, fetch_all, driver_error)

    def discover(self) -> list[Stream]:
        """Every table and view of every schema the user may use, as ``schema.table``."""
        tables = on_connection(self.config, connect, driver_error, "listing tables", list_tables)
        return [_stream(t) for t in tables]

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
        order_by: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``stream``; the predicate, order and limit run in PostgreSQL.

        ``state`` is not used: the engine turns a cursor into ``predicate`` and ``order_by``.
        """
        query = _query_option(options)
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}.", connector=CONNECTOR)
        where = to_postgres_predicate(predicate) if predicate else None
        order = _order_names(order_by)
        conn = self._connect()
        try:
            targets: list[pa.DataType] | None = None
            if query:
                source = f"({query}) AS {_ALIAS}"
                projection = self._query_projection(conn, source, columns, stream)
            else:
                info = self._resolve(conn, stream)
                _check_columns(info, columns)
                _check_columns(info, order, what="order_by")
                source = f"{qualified(info.schema, info.name)} AS {_ALIAS}"
                projection, targets = _projection(info, columns)
        except BaseException:
            conn.close()
            raise
        sql = f"SELECT {projection} FROM {source}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += " ORDER BY " + ", ".join(
                f"{_ALIAS}.{quote_ident(c)} ASC NULLS LAST" for c in order
            )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._scan(conn, sql, stream, targets, rejects)

    def column_bounds(
        self,
        stream: str,
        column: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``, in one query.

        Values are Python scalars (int, float, Decimal, str, date, datetime: tz-aware in
        UTC for ``timestamptz``); ``(None, None)`` when no row matches.
        """
        query = _query_option(options)
        if not isinstance(column, str) or not column:
            raise ConfigError(
                f"column_bounds needs a column name, got {column!r}.", connector=CONNECTOR
            )
        where = to_postgres_predicate(predicate) if predicate else None
        conn = self._connect()
        try:
            cast = ""
            target: pa.DataType | None = None
            if query:
                source = f"({query}) AS {_ALIAS}"
            else:
                info = self._resolve(conn, stream)
                _check_columns(info, [column])
                source = f"{qualified(info.schema, info.name)} AS {_ALIAS}"
                col = next(c for c in info.columns if c.name == column)
                cast, target = col.read_cast, col.arrow
            ref = f"{_ALIAS}.{quote_ident(column)}"
            sql = f"SELECT min({ref}){cast} AS lo, max({ref}){cast} AS hi FROM {source}"
            if where:
                sql += f" WHERE {where}"
            cur = conn.cursor()
            try:
                cur.execute(sql)
                table = cur.fetch_arrow_table()
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == "42883":  # min(<type>) does not exist
                    raise UnsupportedOperationError(
                        f"Column {column!r} of {stream!r} has a PostgreSQL type with no "
                        "ordering (min/max), so it cannot split a read into ranges.",
                        connector=CONNECTOR,
                        column=column,
                        hint="Partition on an integer, numeric, date, timestamp or text column.",
                    ) from None
                raise driver_error(self.config, exc, f"reading the bounds of {stream!r}") from None
            finally:
                cur.close()
        finally:
            conn.close()
        return _scalar(table.column(0), target), _scalar(table.column(1), target)

    def _connect(self) -> Connection:
        conn = connect(self.config)
        try:
            cur = conn.cursor()
            try:
                if self.snapshot is not None:  # before any query of the transaction
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
                cur.execute("SET TIME ZONE 'UTC'")
            finally:
                cur.close()
        except Exception as exc:
            conn.close()
            if self.snapshot is not None and getattr(exc, "sqlstate", None) == "22023":
                # "invalid snapshot identifier": the coordinator's session ended (killed,
                # restarted server) before this range started; a retry exports a new one
                raise ConnectorUnavailableError(
                    f"PostgreSQL at {self.config.where}: the snapshot shared by a parallel "
                    "read is gone (the session that exported it ended) before every range "
                    "had started.",
                    connector=CONNECTOR,
                    location=self.config.where,
                    hint="The step is retried from a new snapshot; with repeated failures, "
                    "read with `partition: false`.",
                ) from None
            doing = "importing the read's snapshot" if self.snapshot else "setting the time zone"
            raise driver_error(self.config, exc, doing) from None
        return conn

    def _query_projection(
        self, conn: Connection, source: str, columns: list[str] | None, stream: str
    ) -> str:
        """The select list over a query: binary-only types cast to text (known by a prepare)."""
        plain = ", ".join(f"{_ALIAS}.{quote_ident(c)}" for c in columns) if columns else "*"
        cur = conn.cursor()
        try:
            schema = cur.adbc_execute_schema(f"SELECT {plain} FROM {source}")
        except Exception as exc:
            raise driver_error(self.config, exc, f"reading {stream!r}") from None
        finally:
            cur.close()
        casts = [(f.name, _query_cast(f)) for f in schema]
        if not any(cast for _, cast in casts):
            return plain
        return ", ".join(
            f"{_ALIAS}.{quote_ident(n)}{cast} AS {quote_ident(n)}" for n, cast in casts
        )

    def _scan(
        self,
        conn: Connection,
        sql: str,
        stream: str,
        targets: list[pa.DataType] | None,
        rejects: RejectSink | None,
    ) -> Iterator[pa.RecordBatch]:
        from headwater.connectors.postgres.convert import batch_converter

        cur = None
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql)
                reader = cur.fetch_record_batch()
            except Exception as exc:
                lost = connection_lost(conn) if not getattr(exc, "sqlstate", None) else None
                raise driver_error(self.config, exc, f"reading {stream!r}", lost=lost) from None
            converted, convert = batch_converter(reader.schema, targets)
            rows_max = self.config.batch_rows
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as exc:  # no SQLSTATE here: probe the connection
                    lost = connection_lost(conn)
                    raise driver_error(self.config, exc, f"reading {stream!r}", lost=lost) from None
                try:
                    out = convert(batch)
                except pa.ArrowInvalid as exc:
                    out = _salvage(batch, converted, convert, stream, rejects, exc)
                if out.num_rows <= rows_max:
                    yield out
                else:
                    for start in range(0, out.num_rows, rows_max):
                        yield out.slice(start, rows_max)
        finally:
            _close(conn, cur)

    def _resolve(self, conn: Connection, stream: str) -> TableInfo:
        """``schema.table`` when that table exists, else ``stream`` in the default schema."""
        candidates: list[tuple[str, str]] = []
        schema, dot, table = stream.partition(".")
        if dot and schema and table:
            candidates.append((schema, table))
        candidates.append((self.config.schema_name, stream))
        try:
            for schema_name, table_name in candidates:
                info = table_info(conn, schema_name, table_name)
                if info is not None:
                    return info
            names = [f"{t.schema}.{t.name}" for t in list_tables(conn)]
        except Exception as exc:
            raise driver_error(self.config, exc, "looking up tables") from None
        raise SourceNotFoundError(
            f"No table or view {stream!r} in PostgreSQL at {self.config.where} "
            f"(looked in schema {self.config.schema_name!r}).",
            connector=CONNECTOR,
            location=self.config.where,
            hint=choices_hint(stream, names, "tables") + " Or read a query: options.query.",
        )


def _close(conn: Connection, cur: Any) -> None:
    """Close the cursor, then the connection (ADBC refuses the other order); never raise."""
    if cur is not None:
        with contextlib.suppress(Exception):
            cur.close()
    with contextlib.suppress(Exception):
        conn.close()


def _query_option(options: Mapping[str, Any] | None) -> str | None:
    query = check_read_options(options, connector=CONNECTOR).get("query")
    return None if query is None else str(query).strip().rstrip(";")


def _order_names(order_by: Sequence[str] | None) -> list[str]:
    if order_by is None:
        return []
    if isinstance(order_by, str) or not all(isinstance(c, str) and c for c in order_by):
        raise ConfigError(
            f"order_by must be a list of column names, got {order_by!r}.",
            connector=CONNECTOR,
            field="order_by",
        )
    return list(order_by)


def _query_cast(field: pa.Field) -> str:
    """The cast of a query's column (by ADBC's type) so it reads as its mapped Arrow type."""
    dtype = field.type
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return "::text[]" if _binary_only(dtype.value_type) else ""
    typname = str((field.metadata or {}).get(b"POSTGRESQL:type", b"").decode())
    if typname == "oid":
        return "::int8"
    if typname == "money":
        return "::text"
    return "::text" if _binary_only(dtype) else ""


def _binary_only(dtype: pa.DataType) -> bool:
    """ADBC's form of a type it cannot decode: an opaque extension over the binary wire form."""

    if not isinstance(dtype, pa.BaseExtensionType):
        return False
    return bool(dtype.extension_name == "arrow.uuid" or pa.types.is_binary(dtype.storage_type))


def _projection(info: TableInfo, columns: list[str] | None) -> tuple[str, list[pa.DataType]]:
    """The select list of a table read (with :attr:`Column.read_cast`) and its Arrow types."""
    by_name = {c.name: c for c in info.columns}
    cols = [by_name[n] for n in columns] if columns else list(info.columns)
    targets = [c.arrow for c in cols]
    if not any(c.read_cast for c in cols):
        plain = ", ".join(f"{_ALIAS}.{quote_ident(c.name)}" for c in cols) if columns else "*"
        return plain, targets
    items = [f"{_ALIAS}.{quote_ident(c.name)}{c.read_cast} AS {quote_ident(c.name)}" for c in cols]
    return ", ".join(items), targets


def _salvage(
    batch: pa.RecordBatch,
    converted: pa.Schema,
    convert: Callable[[pa.RecordBatch], pa.RecordBatch],
    stream: str,
    rejects: RejectSink | None,
    error: Exception,
) -> pa.RecordBatch:
    """Convert a batch holding numeric NaN/Infinity (no decimal form): such rows are rejected.

    Without a reject sink the read fails, naming the column and the value.
    """
    import json

    import pyarrow.compute as pc

    from headwater.connectors.base import Reject
    from headwater.connectors.postgres.convert import (
        NUMERIC_SPECIALS,
        NUMERIC_TEXT_SPECIALS,
        is_numeric,
    )

    specials = pa.array([*NUMERIC_SPECIALS, *NUMERIC_TEXT_SPECIALS], pa.string())
    # numeric columns as their text: ADBC's extension (its storage) or read ::text (decimal out)
    texts: dict[str, pa.Array] = {}
    for name, column, out in zip(batch.schema.names, batch.columns, converted, strict=True):
        if is_numeric(column.type):
            texts[name] = column.storage
        elif pa.types.is_string(column.type) and pa.types.is_decimal(out.type):
            texts[name] = column
    bad: dict[int, str] = {}
    for name, text in texts.items():
        hits = pc.indices_nonzero(pc.fill_null(pc.is_in(text, specials), False))
        for i in hits.to_pylist():
            value = NUMERIC_TEXT_SPECIALS.get(text[i].as_py(), text[i].as_py())
            bad.setdefault(int(i), f"numeric value {value} of column `{name}` has no decimal form")
    if not bad:
        raise error  # the conversion failed for another reason
    if rejects is None:
        first = min(bad)
        raise SourceFormatError(
            f"Cannot read {stream!r}: {bad[first]} (row {first + 1} of a batch).",
            connector=CONNECTOR,
            hint="Read the column as text or float8 through options.query "
            "(SELECT amount::float8 ...), or let the step quarantine such rows.",
        )
    readable = pa.RecordBatch.from_arrays(
        [texts.get(n, c) for n, c in zip(batch.schema.names, batch.columns, strict=True)],
        names=batch.schema.names,
    )
    rows = readable.take(pa.array(sorted(bad), pa.int64())).to_pylist()
    for row in rows:
        for name in texts:
            row[name] = NUMERIC_TEXT_SPECIALS.get(row[name], row[name])
    rejects.add(
        Reject(raw_record=json.dumps(row, default=str, ensure_ascii=False), error=bad[i])
        for i, row in zip(sorted(bad), rows, strict=True)
    )
    keep = [i not in bad for i in range(batch.num_rows)]
    return convert(batch.filter(pa.array(keep, pa.bool_())))


def _scalar(column: pa.ChunkedArray, target: pa.DataType | None = None) -> Any:
    """One min/max value as a Python scalar (numeric as Decimal, uuid as text)."""
    from headwater.connectors.postgres.convert import batch_converter, is_numeric

    chunk = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if is_numeric(column.type) or (target is not None and pa.types.is_decimal(target)):
        text = (chunk.storage if is_numeric(column.type) else chunk)[0].as_py()
        return None if text is None else Decimal(text)
    schema = pa.schema([pa.field("v", column.type)])
    _, convert = batch_converter(schema)
    return convert(pa.RecordBatch.from_arrays([chunk], schema=schema)).column(0)[0].as_py()


def _stream(info: TableInfo) -> Stream:
    kind = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}
    return Stream(
        f"{info.schema}.{info.name}",
        info.arrow_schema,
        primary_key=info.primary_key,
        description=kind.get(info.kind, "foreign table"),
    )


def _check_columns(info: TableInfo, columns: Sequence[str] | None, *, what: str = "") -> None:
    known = [c.name for c in info.columns]
    for name in columns or ():
        if name not in known:
            raise ConfigError(
                f"Table {info.schema}.{info.name} has no column {name!r}"
                + (f" (in {what})." if what else "."),
                connector=CONNECTOR,
                column=name,
                field=what or None,
                hint=choices_hint(name, known, "columns"),
            )


def to_postgres_predicate(predicate: str) -> str:
    """A DuckDB boolean expression rendered as one parenthesized PostgreSQL expression.

    DuckDB types PostgreSQL lacks are renamed in casts: ``TIMESTAMP_S/_MS/_NS`` become
    ``timestamp`` (PostgreSQL keeps microseconds), ``TINYINT``/``UTINYINT`` ``smallint``,
    unsigned and 128-bit integers ``numeric``.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, SqlglotError

    if not isinstance(predicate, str) or not predicate.strip():
        raise ConfigError(
            f"The predicate {predicate!r} is empty.", connector=CONNECTOR, field="predicate"
        )
    try:
        parsed = sqlglot.parse(predicate, read="duckdb")
    except ParseError:
        raise ConfigError(
            f"Cannot parse the predicate {predicate!r}.",
            connector=CONNECTOR,
            field="predicate",
        ) from None
    if (
        len(parsed) != 1
        or parsed[0] is None
        or isinstance(parsed[0], (exp.Query, exp.Command, exp.DDL, exp.DML))
    ):
        raise ConfigError(
            f"The predicate {predicate!r} must be one boolean expression.",
            connector=CONNECTOR,
            field="predicate",
            hint="Write it like a WHERE clause, e.g. `amount > 10 AND country = 'FR'`.",
        )
    tree = parsed[0].transform(_postgres_types)
    try:
        rendered: str = tree.sql(dialect="postgres", unsupported_level="raise")
    except SqlglotError as exc:
        raise ConfigError(
            f"The predicate {predicate!r} cannot be written in PostgreSQL SQL: {exc}",
            connector=CONNECTOR,
            field="predicate",
        ) from None
    return f"({rendered})"


def _postgres_types(node: Any) -> Any:
    from sqlglot import exp

    if not isinstance(node, exp.DataType):
        return node
    t = exp.DataType.Type
    rename = {
        t.TIMESTAMP_S: "TIMESTAMP",
        t.TIMESTAMP_MS: "TIMESTAMP",
        t.TIMESTAMP_NS: "TIMESTAMP",
        t.TINYINT: "SMALLINT",
        t.UTINYINT: "SMALLINT",
        t.USMALLINT: "INT",
        t.UINT: "BIGINT",
        t.UBIGINT: "NUMERIC(20, 0)",
        t.INT128: "NUMERIC(39, 0)",
        t.UINT128: "NUMERIC(39, 0)",
    }
    target = rename.get(node.this)
    return exp.DataType.build(target, dialect="postgres") if target else node
