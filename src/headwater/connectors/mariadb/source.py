"""The ``mariadb`` source: tables and queries read as Arrow batches.

Tables and columns come from ``information_schema``; reads stream through
connectorx's ``arrow_stream`` (Arrow batches built in Rust from the MySQL wire
protocol; nothing is materialized whole) with the session time zone set to UTC, and
every batch is cast to the documented mapping (:mod:`.types`).

``stream`` is ``table`` (in the URL's database), ``database.table``, or any name
when ``options.query`` holds a SELECT. Columns, the predicate and the limit are
pushed into the SQL; identifiers are quoted with backticks; the predicate (DuckDB
SQL) is parsed and re-rendered for MySQL by sqlglot, so it is one expression, never
a second statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, Stream
from headwater.connectors.mariadb.client import connect, driver_error, fetch_all, scrub
from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.mariadb.types import arrow_type, qualified, quote_ident
from headwater.errors import ConfigError, HeadwaterError, SourceNotFoundError, choices_hint

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["Column", "MariadbSource", "TableInfo", "list_tables", "table_info"]

_READ_OPTIONS = ("query",)
# connectorx decodes DECIMAL through rust_decimal (at most 28 digits): wider decimal
# columns of a table are selected as text and cast to decimal128/256 in Arrow.
_CX_DECIMAL_DIGITS = 28

_COLUMNS = """
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.COLUMN_KEY
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = %s {filter}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""

_KEYS = """
SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' {filter}
ORDER BY TABLE_NAME, ORDINAL_POSITION
"""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    column_type: str
    arrow: pa.DataType | None  # None: not mapped, left as the driver yields it
    nullable: bool


@dataclass(frozen=True)
class TableInfo:
    database: str
    name: str
    kind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow or pa.string(), c.nullable) for c in self.columns]
        )


def _collect(conn: Connection, database: str, table: str | None) -> list[TableInfo]:
    where = " AND c.TABLE_NAME = %s" if table is not None else ""
    params = (database, table) if table is not None else (database,)
    rows = fetch_all(conn, _COLUMNS.format(filter=where), params)
    keys: dict[str, list[str]] = {}
    key_filter = " AND TABLE_NAME = %s" if table is not None else ""
    for name, column in fetch_all(conn, _KEYS.format(filter=key_filter), params):
        keys.setdefault(str(name), []).append(str(column))
    tables: dict[str, tuple[str, list[Column]]] = {}
    for _db, name, kind, col, data_type, column_type, prec, scale, nullable, _key in rows:
        arrow = arrow_type(str(data_type), str(column_type), prec, scale)
        column = Column(str(col), str(data_type), str(column_type), arrow, nullable == "YES")
        tables.setdefault(str(name), (str(kind), []))[1].append(column)
    return [
        TableInfo(database, name, kind, tuple(cols), tuple(keys.get(name, ())))
        for name, (kind, cols) in tables.items()
    ]


def list_tables(conn: Connection, database: str) -> list[TableInfo]:
    return _collect(conn, database, None)


def table_info(conn: Connection, database: str, table: str) -> TableInfo | None:
    found = _collect(conn, database, table)
    return found[0] if found else None


class MariadbSource:
    """Reads MariaDB/MySQL tables, views and queries."""

    def __init__(self, config: MariadbConfig) -> None:
        self.config = config

    def check(self) -> None:
        conn = connect(self.config)
        try:
            fetch_all(conn, "SELECT 1")
        except HeadwaterError:
            raise
        except Exception as exc:
            raise driver_error(self.config, exc, "running SELECT 1") from None
        finally:
            conn.close()

    def discover(self) -> list[Stream]:
        """Every table and view of the URL's database, with mapped Arrow schemas."""
        conn = connect(self.config)
        try:
            tables = list_tables(conn, self.config.database)
        except Exception as exc:
            raise driver_error(self.config, exc, "listing tables") from None
        finally:
            conn.close()
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
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``stream``; ``state`` is ignored (no incremental reads yet)."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_READ_OPTIONS))
        if unknown:
            raise ConfigError(
                f"Unknown read option {unknown[0]!r} for mariadb.",
                connector=CONNECTOR,
                field=f"options.{unknown[0]}",
                hint=choices_hint(unknown[0], _READ_OPTIONS, "options"),
            )
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}.", connector=CONNECTOR)
        where = to_mysql_predicate(predicate) if predicate else None
        query = opts.get("query")
        if query is not None and not (isinstance(query, str) and query.strip()):
            raise ConfigError("options.query must be a SELECT statement.", connector=CONNECTOR)
        target: pa.Schema | None = None
        if query:
            source = f"({query.strip().rstrip(';')}) AS hw_query"
        else:
            conn = connect(self.config)
            try:
                info = self._resolve(conn, stream)
            finally:
                conn.close()
            source = qualified(info.database, info.name)
            _check_columns(info, columns)
            by_name = {c.name: c for c in info.columns}
            wanted = [by_name[c] for c in columns] if columns else list(info.columns)
            target = pa.schema([pa.field(c.name, c.arrow) for c in wanted if c.arrow])
            columns = [c.name for c in wanted]
        sql = _select(source, columns, where, limit, target)
        return self._scan(sql, stream, target)

    def _scan(self, sql: str, stream: str, target: pa.Schema | None) -> Iterator[pa.RecordBatch]:
        import connectorx as cx  # type: ignore[import-untyped]

        try:
            reader = cx.read_sql(
                self.config.cx_url,
                sql,
                return_type="arrow_stream",
                batch_size=self.config.batch_rows,
                pre_execution_query=["SET time_zone = '+00:00'"],
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
        lost = any(w in text.lower() for w in ("connect", "timed out", "broken pipe", "reset"))
        if lost:
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


def _check_columns(info: TableInfo, columns: list[str] | None) -> None:
    known = [c.name for c in info.columns]
    for name in columns or ():
        if name not in known:
            raise ConfigError(
                f"Table {info.database}.{info.name} has no column {name!r}.",
                connector=CONNECTOR,
                column=name,
                hint=choices_hint(name, known, "columns"),
            )


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
) -> str:
    projection = ", ".join(_item(c, target) for c in columns) if columns else "*"
    sql = f"SELECT {projection} FROM {source}"
    if where:
        sql += f" WHERE {where}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


def to_mysql_predicate(predicate: str) -> str:
    """A DuckDB boolean expression rendered as one parenthesized MySQL expression."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

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
    ):
        raise ConfigError(
            f"The predicate {predicate!r} must be one boolean expression.",
            connector=CONNECTOR,
            field="predicate",
            hint="Write it like a WHERE clause, e.g. `amount > 10 AND country = 'FR'`.",
        )
    return "(" + parsed[0].sql(dialect="mysql") + ")"
