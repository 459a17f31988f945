"""The ``duckdb`` source and destination: tables of a DuckDB database file.

Reads stream ``con.sql(query).to_arrow_reader(batch_rows)`` with columns, predicate
(already DuckDB SQL) and limit pushed into the query. Writes scan the incoming Arrow
stream from DuckDB itself (no Python per row). ``overwrite`` writes a staging table
and swaps it in within one transaction: a failed write rolls back and leaves the
previous table as it was; other connections see the old table until the commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from headwater.connectors.base import (
    Stream,
)
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.connectors.sql.client import FileDatabaseClient, ReadRequest, first_line, quote_ident
from headwater.errors import (
    ConfigError,
    ConnectorError,
    ConnectorUnavailableError,
    HeadwaterError,
    QueryError,
    SourceFormatError,
    SourceNotFoundError,
    choices_hint,
)

if TYPE_CHECKING:
    import duckdb

    from headwater.connectors.duckdb_file.writer import DuckdbWriter

__all__ = ["DuckdbClient", "quote_ident"]

CONNECTOR = "duckdb"


class DuckdbClient(FileDatabaseClient[DuckdbConfig]):
    """A DuckDB database file as a source and a destination."""

    connector: ClassVar[str] = CONNECTOR
    product: ClassVar[str] = "DuckDB"

    # -- checks and metadata -----------------------------------------------------------------
    def check(self) -> None:
        """The file exists and is a DuckDB database (or, if missing, its directory is writable)."""
        if not self.file.exists():
            if (
                not self.config.read_only
                and self.file.parent.is_dir()
                and os.access(self.file.parent, os.W_OK)
            ):
                return  # a destination creates it on first write
            self._require_file()
        self._connect(read_only=True).close()

    def discover(self) -> list[Stream]:
        """Every table and view, with its Arrow schema and primary key.

        Tables in the ``main`` schema are named as they are; others ``schema.table``.
        Headwater's own tables (the ``_headwater_loads`` ledger, ``__hw_*`` staging) are
        left out; they can still be read by name.
        """
        self._require_file()
        con = self._connect(read_only=True)
        try:
            streams = []
            for name, (schema, table) in sorted(self._tables(con).items()):
                if schema == "main" and (
                    table.casefold() == "_headwater_loads" or table.startswith("__hw_")
                ):
                    continue
                qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
                arrow = con.sql(f"SELECT * FROM {qualified} LIMIT 0").to_arrow_table().schema
                row = con.execute(
                    "SELECT constraint_column_names FROM duckdb_constraints() "
                    "WHERE database_name = current_database() AND schema_name = ? "
                    "AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                    [schema, table],
                ).fetchall()
                pk = tuple(row[0][0]) if row else ()
                streams.append(Stream(name, schema=arrow, primary_key=pk))
            return streams
        finally:
            con.close()

    # -- read ----------------------------------------------------------------------------------
    def _read(self, request: ReadRequest) -> Iterator[pa.RecordBatch]:
        """Yield ``stream`` (a table name, or ``options: {query: ...}``) as Arrow batches.

        ``columns``, ``predicate`` (DuckDB SQL, checked to be one expression), ``order_by``
        (ascending, NULLs last) and ``limit`` run in DuckDB.
        """
        stream, query, columns = request.stream, request.query, request.columns
        predicate, limit, order_by = request.predicate, request.limit, request.order_by
        where = render_predicate(predicate) if predicate else None
        self._require_file()
        con = self._connect(read_only=True)
        try:
            source = self._source(con, stream, query)
            if query is None:
                self._check_columns(con, source, stream, [*(columns or ()), *(order_by or ())])
            select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
            sql = f"SELECT {select} FROM {source}"
            if where:
                sql += f" WHERE {where}"
            if order_by:
                sql += " ORDER BY " + ", ".join(
                    f"{quote_ident(c)} ASC NULLS LAST" for c in order_by
                )
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            try:
                reader = con.sql(sql).to_arrow_reader(request.batch_rows)
            except Exception as exc:
                raise self._error(exc, f"Reading {stream!r}") from None
        except BaseException:
            con.close()
            raise
        return self._scan(con, reader, stream)

    def _scan(
        self, con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader, stream: str
    ) -> Iterator[pa.RecordBatch]:
        try:
            empty = True
            for batch in reader:
                empty = False
                yield batch
            if empty:  # an empty result still carries its schema
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        except HeadwaterError:
            raise
        except Exception as exc:
            raise self._error(exc, f"Reading {stream!r}", runtime=True) from exc
        finally:
            con.close()

    def _bounds(
        self, stream: str, column: str, predicate: str | None, query: str | None
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``, in one query.

        Python scalars as a read returns them (``int``, ``float``, ``Decimal``, ``date``,
        ``datetime``, tz-aware for ``TIMESTAMPTZ``); ``(None, None)`` when no row matches.
        """
        where = render_predicate(predicate) if predicate else None
        self._require_file()
        con = self._connect(read_only=True)
        try:
            source = self._source(con, stream, query)
            if query is None:
                self._check_columns(con, source, stream, [column])
            q = quote_ident(column)
            sql = f"SELECT min({q}) AS lo, max({q}) AS hi FROM {source}"
            if where:
                sql += f" WHERE {where}"
            try:
                row = con.sql(sql).to_arrow_table().to_pylist()[0]
            except Exception as exc:
                raise self._error(exc, f"Reading the bounds of {column!r} in {stream!r}") from None
        finally:
            con.close()
        return row["lo"], row["hi"]

    @staticmethod
    def _check_columns(
        con: duckdb.DuckDBPyConnection, source: str, stream: str, names: Sequence[str]
    ) -> None:
        if not names:
            return
        known = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        folded = {k.casefold() for k in known}
        for name in names:
            if name.casefold() not in folded:
                raise SourceNotFoundError(
                    f"Table {stream!r} has no column {name!r}.",
                    connector=CONNECTOR,
                    column=name,
                    hint=choices_hint(name, known, "columns"),
                )

    def _source(self, con: duckdb.DuckDBPyConnection, stream: str, query: str | None) -> str:
        if query is not None:
            text = str(query).strip().rstrip(";").strip()
            if not text:
                raise ConfigError("options.query must be a SELECT statement.", connector=CONNECTOR)
            return f"({text}) AS __hw_q"
        tables = self._tables(con)
        found = tables.get(stream) or _casefold_get(tables, stream)
        if found is None:
            raise SourceNotFoundError(
                f"No table or view named {stream!r} in {str(self.file)!r}.",
                connector=CONNECTOR,
                location=str(self.file),
                hint=choices_hint(stream, tables, "tables") + " Or read a query: options.query.",
            )
        schema, table = found
        return f"{quote_ident(schema)}.{quote_ident(table)}"

    # -- write ---------------------------------------------------------------------------------
    def _writer(self) -> DuckdbWriter:
        """See :mod:`headwater.connectors.duckdb_file.writer`."""
        from headwater.connectors.duckdb_file.writer import DuckdbWriter

        return DuckdbWriter(self)

    # -- helpers -------------------------------------------------------------------------------
    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        import duckdb

        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if self.config.threads:
            config["threads"] = self.config.threads
        if self.config.memory_limit:
            config["memory_limit"] = self.config.memory_limit
        try:
            con = duckdb.connect(
                str(self.file), read_only=read_only or self.config.read_only, config=config
            )
        except duckdb.Error as exc:
            raise open_error(self.file, exc) from None
        # TIMESTAMPTZ reads as timestamp[us, tz=UTC] whatever the machine's zone
        con.execute("SET TimeZone = 'UTC'")
        return con

    def _error(self, exc: BaseException, doing: str, *, runtime: bool = False) -> HeadwaterError:
        """A driver error as ours: a bad query is a QueryError, a lost file a ConnectorError."""
        if _is_lock(exc) or _is_corrupt(exc):
            return open_error(self.file, exc)
        cls: type[HeadwaterError] = ConnectorError if runtime else QueryError
        return cls(
            f"{doing} from {str(self.file)!r} failed: {_first_line(exc)}",
            connector=CONNECTOR,
            location=str(self.file),
        )

    @staticmethod
    def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() "
            "AND table_schema NOT IN ('information_schema', 'pg_catalog')"
        ).fetchall()
        return {(t if s == "main" else f"{s}.{t}"): (s, t) for s, t in rows}


def _casefold_get(tables: Mapping[str, tuple[str, str]], name: str) -> tuple[str, str] | None:
    folded = name.casefold()
    for key, value in tables.items():
        if key.casefold() == folded:
            return value
    return None


def _is_lock(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text or "lock on file" in text


def _is_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "not a valid duckdb database" in text or "corrupt" in text or "checksum" in text


def open_error(path: Any, exc: BaseException) -> ConnectorError:
    """The error for a file that cannot be opened: locked (transient) or not a database."""
    if _is_lock(exc):
        return ConnectorUnavailableError(
            f"The DuckDB database {str(path)!r} is locked by another process: {_first_line(exc)}",
            connector=CONNECTOR,
            location=str(path),
            hint="A DuckDB file can be open for writing by one process at a time; the step "
            "is retried. Close the other process (or open it `read_only` there).",
        )
    if _is_corrupt(exc):
        return SourceFormatError(
            f"{str(path)!r} is not a DuckDB database, or it is corrupted: {_first_line(exc)}",
            connector=CONNECTOR,
            location=str(path),
            hint="Check that the connection's `path` names a DuckDB database file (written "
            "by a compatible DuckDB version); restore a corrupted one from a backup.",
        )
    return ConnectorError(
        f"Cannot open {str(path)!r} as a DuckDB database: {_first_line(exc)}",
        connector=CONNECTOR,
        location=str(path),
        hint="Check that the connection's `path` names a DuckDB database file, that its "
        "directory exists and is writable, and that no other process holds it open for "
        "writing.",
    )


def render_predicate(predicate: str) -> str:
    """``predicate`` checked to be one DuckDB boolean expression, re-rendered in parentheses.

    Rendering from the parsed tree (never the raw text) means the predicate cannot close
    the WHERE clause and start a second statement.
    """
    from headwater.connectors.sql.predicate import parse_predicate

    return "(" + parse_predicate(predicate, CONNECTOR).sql(dialect="duckdb") + ")"


_first_line = first_line
