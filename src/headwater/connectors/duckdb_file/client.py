"""The ``duckdb`` source and destination: tables of a DuckDB database file.

Reads stream ``con.sql(query).to_arrow_reader(batch_rows)`` with columns, predicate
(already DuckDB SQL) and limit pushed into the query. Writes scan the incoming Arrow
stream from DuckDB itself (no Python per row). ``overwrite`` writes a staging table
and swaps it in within one transaction: a failed write rolls back and leaves the
previous table as it was; other connections see the old table until the commit.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import RejectSink, Stream, WriteMode, WriteResult
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.errors import (
    ConfigError,
    ConnectorError,
    HeadwaterError,
    QueryError,
    SourceNotFoundError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckdbClient", "quote_ident"]

CONNECTOR = "duckdb"
_SOURCE_VIEW = "__hw_source"


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes, embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


class DuckdbClient:
    """A DuckDB database file as a source and a destination."""

    def __init__(self, config: DuckdbConfig) -> None:
        self.config = config
        self.file = config.file

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
        """
        self._require_file()
        con = self._connect(read_only=True)
        try:
            streams = []
            for name, (schema, table) in sorted(self._tables(con).items()):
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
                f"Unknown read option(s) for duckdb: {', '.join(sorted(opts))}.",
                connector=CONNECTOR,
                hint="Valid read options: query, batch_rows.",
            )
        self._require_file()
        con = self._connect(read_only=True)
        try:
            if query:
                source = f"({query}) AS __hw_q"
            else:
                tables = self._tables(con)
                if stream not in tables:
                    raise SourceNotFoundError(
                        f"No table or view named {stream!r} in {str(self.file)!r}.",
                        connector=CONNECTOR,
                        location=str(self.file),
                        hint=choices_hint(stream, tables, "tables"),
                    )
                schema, table = tables[stream]
                source = f"{quote_ident(schema)}.{quote_ident(table)}"
            select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
            sql = f"SELECT {select} FROM {source}"
            if predicate:
                sql += f" WHERE ({predicate})"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            try:
                reader = con.sql(sql).to_arrow_reader(batch_rows)
            except Exception as exc:
                raise QueryError(
                    f"Reading {stream!r} from {str(self.file)!r} failed: {_first_line(exc)}",
                    connector=CONNECTOR,
                    location=str(self.file),
                ) from None
            try:
                empty = True
                for batch in reader:
                    empty = False
                    yield batch
                if empty:  # an empty result still carries its schema
                    yield pa.RecordBatch.from_pylist([], schema=reader.schema)
            except Exception as exc:
                raise ConnectorError(
                    f"Reading {stream!r} from {str(self.file)!r} failed: {_first_line(exc)}",
                    connector=CONNECTOR,
                    location=str(self.file),
                ) from exc
        finally:
            con.close()

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
        """Append to ``target`` (created when missing) or overwrite it atomically.

        ``target`` is one table name in the ``main`` schema (quoted as given).
        """
        if mode == "merge":
            raise UnsupportedOperationError(
                "The duckdb connector cannot merge (upsert) yet.",
                connector=CONNECTOR,
                hint="Write with mode 'overwrite' or 'append', or merge into a managed dataset.",
            )
        if mode not in ("append", "overwrite"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for duckdb: append, overwrite.",
            )
        if not target.strip():
            raise ConfigError("The target table name is empty.", connector=CONNECTOR)
        counter = _Counter(batches)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect(read_only=False)
        qt = f"main.{quote_ident(target)}"
        try:
            con.register(_SOURCE_VIEW, counter.reader())
            con.execute("BEGIN TRANSACTION")
            found = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND lower(table_name) = lower(?)",
                [target],
            ).fetchall()
            exists = found[0][0] > 0
            if mode == "append":
                if exists:
                    con.execute(f"INSERT INTO {qt} BY NAME SELECT * FROM {_SOURCE_VIEW}")
                else:
                    con.execute(f"CREATE TABLE {qt} AS SELECT * FROM {_SOURCE_VIEW}")
            else:
                staging = f"__hw_staging_{uuid.uuid4().hex[:12]}"
                con.execute(
                    f"CREATE TABLE main.{quote_ident(staging)} AS SELECT * FROM {_SOURCE_VIEW}"
                )
                if exists:
                    con.execute(f"DROP TABLE {qt}")
                con.execute(
                    f"ALTER TABLE main.{quote_ident(staging)} RENAME TO {quote_ident(target)}"
                )
            con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):  # no transaction open (failed before BEGIN)
                con.execute("ROLLBACK")
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
                f"The DuckDB database {str(self.file)!r} does not exist.",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Fix the connection's `path` (relative paths start at the workspace root).",
            )

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
            raise ConnectorError(
                f"Cannot open {str(self.file)!r} as a DuckDB database: {_first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Check that the connection's `path` names a DuckDB database file, "
                "and that no other process holds it open for writing.",
            ) from None
        # TIMESTAMPTZ reads as timestamp[us, tz=UTC] whatever the machine's zone
        con.execute("SET TimeZone = 'UTC'")
        return con

    @staticmethod
    def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() "
            "AND table_schema NOT IN ('information_schema', 'pg_catalog')"
        ).fetchall()
        return {(t if s == "main" else f"{s}.{t}"): (s, t) for s, t in rows}


class _Counter:
    """Counts the rows and bytes of the incoming stream as DuckDB scans it."""

    def __init__(self, source: pa.RecordBatchReader) -> None:
        self.source = source
        self.rows = 0
        self.bytes = 0
        self.error: BaseException | None = None

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.source.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.source:
                self.rows += batch.num_rows
                self.bytes += batch.nbytes
                yield batch
        except BaseException as exc:
            self.error = exc
            raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
