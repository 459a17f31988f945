"""The ``mariadb`` source: tables and queries read as Arrow batches.

Tables and columns come from ``information_schema``; reads stream through
connectorx's ``arrow_stream`` (Arrow batches built in Rust from the MySQL wire
protocol; nothing is materialized whole) with the session time zone set to UTC, and
every batch is cast to the documented mapping (:mod:`.types`).

``stream`` is ``table`` (in the URL's database), ``database.table``, or any name
when ``options.query`` holds a SELECT. Columns, the predicate, the order and the
limit are pushed into the SQL; identifiers are quoted with backticks; the predicate
(DuckDB SQL) is parsed and re-rendered for MySQL by sqlglot (:func:`to_mysql_predicate`),
so it is one expression, never a second statement.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, Stream
from headwater.connectors.mariadb.catalog import Column, TableInfo, list_tables, table_info
from headwater.connectors.mariadb.client import connect, driver_error, fetch_all, scrub
from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.mariadb.types import check_identifier, qualified, quote_ident
from headwater.connectors.server.source import check_connection, check_read_options, on_connection
from headwater.errors import ConfigError, HeadwaterError, SourceNotFoundError, choices_hint

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]
    from sqlglot import exp

__all__ = [
    "Column",
    "MariadbSource",
    "TableInfo",
    "list_tables",
    "table_info",
    "to_mysql_predicate",
]

# connectorx decodes DECIMAL through rust_decimal (at most 28 digits): wider decimal
# columns of a table are selected as text and cast to decimal128/256 in Arrow.
_CX_DECIMAL_DIGITS = 28
_ALIAS = "hw_src"  # the FROM item's alias: ORDER BY names the column, never a select alias
# every session reads and compares in UTC, and quotes strings the way sqlglot renders them
SESSION_SETUP = (
    "SET time_zone = '+00:00'",
    "SET sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
)
_FIELD_TIMESTAMP = 7  # MySQL protocol type of TIMESTAMP results (read as UTC)


class MariadbSource:
    """Reads MariaDB/MySQL tables, views and queries."""

    def __init__(self, config: MariadbConfig) -> None:
        self.config = config

    def check(self) -> None:
        check_connection(self.config, connect, fetch_all, driver_error)

    def discover(self) -> list[Stream]:
        """Every table and view of the URL's database, with mapped Arrow schemas."""
        tables = on_connection(
            self.config,
            connect,
            driver_error,
            "listing tables",
            lambda conn: list_tables(conn, self.config.database),
        )
        return [
            Stream(
                t.name,
                t.arrow_schema,
                primary_key=t.primary_key,
                description="view" if t.kind == "VIEW" else "table",
            )
            for t in tables
        ]

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
        """Yield batches of ``stream``, filtered, sorted (NULLs last) and limited in MariaDB.

        ``state`` is not used: incremental reads arrive as ``predicate`` + ``order_by``.
        """
        opts = _check_options(options)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"limit must be an integer >= 0, got {limit!r}.", connector=CONNECTOR)
        where = to_mysql_predicate(predicate) if predicate else None
        order = _order_names(order_by)
        query = opts.get("query")
        target: pa.Schema | None = None
        if query:
            source = _subquery(query)
            # connectorx's pool retries a refused login for 30 s: PyMySQL tells at once
            connect(self.config).close()
        else:
            info = self._table(stream)
            source = f"{qualified(info.database, info.name)} AS {quote_ident(_ALIAS)}"
            wanted = _columns(info, columns) if columns else list(info.columns)
            target = pa.schema([pa.field(c.name, c.arrow) for c in wanted if c.arrow])
            columns = [c.name for c in wanted]
            order = [_columns(info, [name])[0].name for name in order]
        sql = _select(source, columns, where, limit, target, order)
        return self._scan(sql, stream, target)

    def column_bounds(
        self,
        stream: str,
        column: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``, in one query.

        Python scalars as PyMySQL decodes them (int, float, Decimal, date, datetime,
        timedelta for ``time``, str, bytes); ``timestamp`` values are tz-aware UTC.
        ``(None, None)`` when no row matches (or every value is NULL).
        """
        opts = _check_options(options)
        if not isinstance(column, str) or not column:
            raise ConfigError(f"column_bounds needs a column name, got {column!r}.")
        where = to_mysql_predicate(predicate) if predicate else None
        query = opts.get("query")
        if query:
            source, name = _subquery(query), column
        else:
            info = self._table(stream)
            source = f"{qualified(info.database, info.name)} AS {quote_ident(_ALIAS)}"
            name = _columns(info, [column])[0].name
        ref = f"{quote_ident(_ALIAS)}.{quote_ident(name)}"
        sql = f"SELECT MIN({ref}), MAX({ref}) FROM {source}"
        if where:
            sql += f" WHERE {where}"
        conn = connect(self.config)
        try:
            with conn.cursor() as cur:
                for statement in SESSION_SETUP:
                    cur.execute(statement)
                cur.execute(sql)
                row = cur.fetchone()
                kinds = [d[1] for d in cur.description or ()]
        except HeadwaterError:
            raise
        except Exception as exc:
            raise driver_error(self.config, exc, f"reading the bounds of {column!r}") from None
        finally:
            conn.close()
        low, high = (row[0], row[1]) if row else (None, None)
        if kinds and kinds[0] == _FIELD_TIMESTAMP:
            low, high = _utc(low), _utc(high)
        return low, high

    def _table(self, stream: str) -> TableInfo:
        check_identifier(stream.rpartition(".")[2] or stream, "table")
        conn = connect(self.config)
        try:
            return self._resolve(conn, stream)
        finally:
            conn.close()

    def _scan(self, sql: str, stream: str, target: pa.Schema | None) -> Iterator[pa.RecordBatch]:
        import connectorx as cx  # type: ignore[import-untyped]

        try:
            reader = cx.read_sql(
                self.config.cx_url,
                sql,
                return_type="arrow_stream",
                batch_size=self.config.batch_rows,
                pre_execution_query=list(SESSION_SETUP),
            )
        except BaseException as exc:  # connectorx raises PanicException (a BaseException)
            raise self._error(exc, stream) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except BaseException as exc:
                raise self._error(exc, stream) from None
            yield _conform(batch, target)

    def _error(self, exc: BaseException, stream: str) -> BaseException:
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            return exc
        from headwater.connectors.mariadb.client import MariadbQueryError

        text = scrub(self.config, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        if _lost(text):
            from headwater.errors import ConnectorUnavailableError

            return ConnectorUnavailableError(
                f"MariaDB at {self.config.where} failed while reading {stream!r}: {text}",
                connector=CONNECTOR,
                location=self.config.where,
            )
        return MariadbQueryError(
            f"MariaDB at {self.config.where} failed while reading {stream!r}: {text}",
            connector=CONNECTOR,
            location=self.config.where,
        )

    def _resolve(self, conn: Connection, stream: str) -> TableInfo:
        """``database.table`` when that table exists, else ``stream`` in the URL's database."""
        candidates: list[tuple[str, str]] = []
        database, dot, table = stream.partition(".")
        if dot and database and table:
            candidates.append((database, table))
        candidates.append((self.config.database, stream))
        try:
            for db, name in candidates:
                info = table_info(conn, db, name)
                if info is not None:
                    return info
            names = [t.name for t in list_tables(conn, self.config.database)]
        except Exception as exc:
            raise driver_error(self.config, exc, "looking up tables") from None
        raise SourceNotFoundError(
            f"No table or view {stream!r} in MariaDB at {self.config.where}.",
            connector=CONNECTOR,
            location=self.config.where,
            hint=choices_hint(stream, names, "tables") + " Or read a query: options.query.",
        )


_LOST_WORDS = (
    "io error",  # connectorx: the socket closed under a read (e.g. KILL from another session)
    "codecerror",
    "bytes remaining on stream",
    "connectionclosed",
    "disconnected",
    "connect",
    "timed out",
    "broken pipe",
    "reset",
    "killed",
    "gone away",
)


def _lost(text: str) -> bool:
    """Whether a connectorx error means the connection was lost (retrying may help).

    A server error carries its code (``ERROR 1146 (42S02): ...``): decided by
    the code, as for PyMySQL errors; anything else by the driver's words for a closed
    or broken connection.
    """
    from headwater.connectors.mariadb.client import transient_code

    found = re.search(r"\b(?:code:\s*|ERROR\s+)(\d+)", text)
    if found:
        return transient_code(int(found.group(1)))
    lowered = text.lower()
    return any(word in lowered for word in _LOST_WORDS)


def _check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return check_read_options(options, connector=CONNECTOR)


def _subquery(query: str) -> str:
    return f"({query.strip().rstrip(';')}) AS {quote_ident(_ALIAS)}"


def _order_names(order_by: Sequence[str] | None) -> list[str]:
    if order_by is None:
        return []
    if isinstance(order_by, str):
        order_by = [order_by]
    names = list(order_by)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"order_by takes column names, got {name!r}.",
                connector=CONNECTOR,
                field="order_by",
            )
    return names


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _conform(batch: pa.RecordBatch, target: pa.Schema | None) -> pa.RecordBatch:
    """``batch`` with its columns cast to the documented mapping (driver types otherwise)."""
    if target is None:
        arrays = [_plain(a) for a in batch.columns]
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    arrays = []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        idx = target.get_field_index(name)
        if idx < 0:
            arrays.append(_plain(array))
            continue
        want = target.field(idx).type
        if pa.types.is_timestamp(want) and want.tz and pa.types.is_timestamp(array.type):
            array = array.cast(pa.timestamp("us"))  # UTC wall time (session zone) -> UTC
        arrays.append(array if array.type == want else array.cast(want))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _plain(array: pa.Array) -> pa.Array:
    """large_binary/large_string as binary/string (the connector's documented types)."""
    if pa.types.is_large_binary(array.type):
        return array.cast(pa.binary())
    if pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    return array


def _columns(info: TableInfo, names: Sequence[str]) -> list[Column]:
    """The columns called ``names`` (case-insensitive, as MariaDB), or a ConfigError."""
    out = []
    for name in names:
        column = info.column(name) if isinstance(name, str) else None
        if column is None:
            known = [c.name for c in info.columns]
            raise ConfigError(
                f"Table {info.database}.{info.name} has no column {name!r}.",
                connector=CONNECTOR,
                column=str(name),
                hint=choices_hint(str(name), known, "columns"),
            )
        out.append(column)
    return out


def _item(name: str, target: pa.Schema | None) -> str:
    """A projected column; decimals wider than 28 digits travel as text (see below)."""
    idx = target.get_field_index(name) if target is not None else -1
    if idx >= 0:
        t = target.field(idx).type  # type: ignore[union-attr]
        if pa.types.is_decimal(t) and t.precision > _CX_DECIMAL_DIGITS:
            return f"CAST({quote_ident(name)} AS CHAR) AS {quote_ident(name)}"
    return quote_ident(name)


def _select(
    source: str,
    columns: list[str] | None,
    where: str | None,
    limit: int | None,
    target: pa.Schema | None = None,
    order: Sequence[str] = (),
) -> str:
    projection = ", ".join(_item(c, target) for c in columns) if columns else "*"
    sql = f"SELECT {projection} FROM {source}"
    if where:
        sql += f" WHERE {where}"
    if order:
        # MariaDB has no NULLS LAST: `col IS NULL` (0 before 1) first, then the column;
        # qualified by the FROM alias so a projected CAST(... ) AS col alias never sorts
        refs = [f"{quote_ident(_ALIAS)}.{quote_ident(name)}" for name in order]
        sql += " ORDER BY " + ", ".join(f"{r} IS NULL, {r}" for r in refs)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


# -- predicates --------------------------------------------------------------------------------


def to_mysql_predicate(predicate: str) -> str:
    """A DuckDB boolean expression rendered as one parenthesized MySQL expression.

    Timestamps: MariaDB has no zoned timestamp type and ignores a UTC offset in a
    literal, and ``CAST(x AS DATETIME)`` drops the fraction of a second. So every cast
    to a timestamp type becomes ``CAST(x AS DATETIME(6))``, and a zoned literal
    (``CAST('2024-01-01 10:00:00+02:00' AS TIMESTAMPTZ)``) is converted to its UTC wall
    time first (``'2024-01-01 08:00:00.000000'``; a literal without an offset is taken as
    UTC). Sessions run in UTC, so this compares exactly with ``timestamp`` columns, and
    with ``datetime`` columns that hold UTC wall times (what the destination writes).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, SqlglotError

    try:
        parsed = sqlglot.parse(predicate, read="duckdb")
    except ParseError:
        raise ConfigError(
            f"Cannot parse the predicate {predicate!r}.", connector=CONNECTOR, field="predicate"
        ) from None
    if (
        len(parsed) != 1
        or parsed[0] is None
        or isinstance(parsed[0], (exp.Query, exp.Command, exp.DDL, exp.DML))
        or any(
            isinstance(node, (exp.Query, exp.Command, exp.DDL, exp.DML))
            for node in parsed[0].walk()
        )
    ):
        raise ConfigError(
            f"The predicate {predicate!r} must be one boolean expression.",
            connector=CONNECTOR,
            field="predicate",
            hint="Write it like a WHERE clause, e.g. `amount > 10 AND country = 'FR'`.",
        )
    try:
        tree = parsed[0].transform(_mysql_times)
        return "(" + tree.sql(dialect="mysql", unsupported_level=sqlglot.ErrorLevel.RAISE) + ")"
    except SqlglotError as exc:
        raise ConfigError(
            f"The predicate {predicate!r} cannot be written in MySQL: {exc}",
            connector=CONNECTOR,
            field="predicate",
        ) from None


def _timestamp_types() -> tuple[set[Any], set[Any]]:
    from sqlglot import exp

    t = exp.DataType.Type
    zoned = {t.TIMESTAMPTZ, t.TIMESTAMPLTZ}
    naive = {
        t.TIMESTAMP, t.TIMESTAMPNTZ, t.DATETIME, t.DATETIME2, t.DATETIME64, t.SMALLDATETIME,
        t.TIMESTAMP_S, t.TIMESTAMP_MS, t.TIMESTAMP_NS,
    }  # fmt: skip
    return zoned, naive


def _mysql_times(node: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    if not isinstance(node, (exp.Cast, exp.TryCast)):
        return node
    zoned, naive = _timestamp_types()
    kind = node.to.this
    if kind not in zoned and kind not in naive:
        return node
    value = node.this
    if kind in zoned and isinstance(value, exp.Literal) and value.is_string:
        value = exp.Literal.string(_utc_wall_time(value.this))
    return exp.Cast(this=value, to=exp.DataType.build("DATETIME(6)", dialect="mysql"))


def _utc_wall_time(text: str) -> str:
    """A zoned timestamp literal as UTC wall time text (no offset: taken as UTC)."""
    raw = text.strip()
    value: dt.datetime | None = None
    candidates = [raw]
    if raw.upper().endswith(" UTC"):
        candidates.append(raw[:-4] + "+00:00")
    for candidate in candidates:
        try:
            value = dt.datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    if value is None:
        raise ConfigError(
            f"Cannot read the zoned timestamp {text!r} in a predicate.",
            connector=CONNECTOR,
            field="predicate",
            hint="Write it as 'YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM'.",
        )
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")
