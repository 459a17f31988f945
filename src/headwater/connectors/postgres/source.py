"""The ``postgres`` source: tables and queries read through ADBC as Arrow batches.

``stream`` is ``table`` (in the connection's ``schema``), ``schema.table``, or any
name when ``options.query`` holds a SELECT. Columns, the predicate and the limit
are pushed into the SQL; identifiers are always quoted; the predicate (DuckDB SQL)
is parsed and re-rendered for PostgreSQL by sqlglot, so it is one expression, never
a second statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import RejectSink, Stream
from headwater.connectors.postgres.catalog import TableInfo, list_tables, table_info
from headwater.connectors.postgres.client import connect, driver_error, fetch_all
from headwater.connectors.postgres.factory import CONNECTOR, PostgresConfig
from headwater.connectors.postgres.types import qualified, quote_ident
from headwater.errors import ConfigError, HeadwaterError, SourceNotFoundError, choices_hint

if TYPE_CHECKING:
    import pyarrow as pa
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = ["PostgresSource", "to_postgres_predicate"]

_READ_OPTIONS = ("query",)


class PostgresSource:
    """Reads PostgreSQL tables, views and queries."""

    def __init__(self, config: PostgresConfig) -> None:
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
        """Every table and view of every schema the user may use, as ``schema.table``."""
        conn = connect(self.config)
        try:
            tables = list_tables(conn)
        except Exception as exc:
            raise driver_error(self.config, exc, "listing tables") from None
        finally:
            conn.close()
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
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``stream``; ``state`` is ignored (no incremental reads yet)."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_READ_OPTIONS))
        if unknown:
            raise ConfigError(
                f"Unknown read option {unknown[0]!r} for postgres.",
                connector=CONNECTOR,
                field=f"options.{unknown[0]}",
                hint=choices_hint(unknown[0], _READ_OPTIONS, "options"),
            )
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}.", connector=CONNECTOR)
        where = to_postgres_predicate(predicate) if predicate else None
        query = opts.get("query")
        if query is not None and not (isinstance(query, str) and query.strip()):
            raise ConfigError("options.query must be a SELECT statement.", connector=CONNECTOR)
        conn = connect(self.config)
        try:
            if query:
                source = f"({query.strip().rstrip(';')}) AS hw_query"
            else:
                info = self._resolve(conn, stream)
                source = qualified(info.schema, info.name)
                _check_columns(info, columns)
        except BaseException:
            conn.close()
            raise
        sql = _select(source, columns, where, limit)
        return self._scan(conn, sql, stream)

    def _scan(self, conn: Connection, sql: str, stream: str) -> Iterator[pa.RecordBatch]:
        from headwater.connectors.postgres.convert import batch_converter

        try:
            cur = conn.cursor()
            try:
                cur.execute(_text_uuids(sql, cur.adbc_execute_schema(sql)))
                reader = cur.fetch_record_batch()
            except Exception as exc:
                raise driver_error(self.config, exc, f"reading {stream!r}") from None
            _, convert = batch_converter(reader.schema)
            rows_max = self.config.batch_rows
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as exc:
                    raise driver_error(self.config, exc, f"reading {stream!r}") from None
                out = convert(batch)
                if out.num_rows <= rows_max:
                    yield out
                else:
                    for start in range(0, out.num_rows, rows_max):
                        yield out.slice(start, rows_max)
            cur.close()
        finally:
            conn.close()

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


def _stream(info: TableInfo) -> Stream:
    kind = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}
    return Stream(
        f"{info.schema}.{info.name}",
        info.arrow_schema,
        primary_key=info.primary_key,
        description=kind.get(info.kind, "foreign table"),
    )


def _check_columns(info: TableInfo, columns: list[str] | None) -> None:
    known = [c.name for c in info.columns]
    for name in columns or ():
        if name not in known:
            raise ConfigError(
                f"Table {info.schema}.{info.name} has no column {name!r}.",
                connector=CONNECTOR,
                column=name,
                hint=choices_hint(name, known, "columns"),
            )


def _select(source: str, columns: list[str] | None, where: str | None, limit: int | None) -> str:
    projection = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    sql = f"SELECT {projection} FROM {source}"
    if where:
        sql += f" WHERE {where}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


def _text_uuids(sql: str, schema: pa.Schema) -> str:
    """``sql`` wrapped so uuid columns arrive as text (ADBC sends 16 raw bytes otherwise)."""

    def typname(field: pa.Field) -> str:
        return str((field.metadata or {}).get(b"POSTGRESQL:type", b"").decode())

    if not any(typname(f) in ("uuid", "_uuid") for f in schema):
        return sql
    items = []
    for f in schema:
        cast = {"uuid": "::text", "_uuid": "::text[]"}.get(typname(f), "")
        items.append(f"{quote_ident(f.name)}{cast} AS {quote_ident(f.name)}")
    return f"SELECT {', '.join(items)} FROM ({sql}) AS hw_read"


def to_postgres_predicate(predicate: str) -> str:
    """A DuckDB boolean expression rendered as one parenthesized PostgreSQL expression."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

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
    return "(" + parsed[0].sql(dialect="postgres") + ")"
