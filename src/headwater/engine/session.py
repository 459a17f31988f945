"""DuckDB sessions over managed datasets and Arrow data.

Each managed dataset ``zone.name`` appears as the view ``zone.name`` over a
pyarrow dataset of its Delta files, so DuckDB pushes projections and filters
down to the Parquet scan. DuckDB never downloads an extension here: reading S3,
Delta or databases goes through Python libraries into Arrow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.errors import QueryError

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as pads

__all__ = ["DatasetResolver", "EngineSession", "connect", "referenced_tables"]

# name, version, as_of -> pyarrow dataset, or (local Parquet files, schema) that DuckDB may
# read directly; raises DatasetNotFoundError when missing
DatasetResolver = Callable[
    [str, int | None, "datetime | str | None"],
    "pads.Dataset | tuple[list[str], pa.Schema]",
]

_DUCKDB_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_lock = threading.Lock()


def connect(
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that never fetches extensions.

    ``temp_directory`` is where DuckDB spills when a join, sort or check outgrows
    ``memory_limit``.
    """
    import duckdb

    config: dict[str, Any] = dict(_DUCKDB_CONFIG)
    if temp_directory:
        config["temp_directory"] = temp_directory
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    with _lock:  # duckdb.connect is not re-entrant while extensions initialize
        return duckdb.connect(config=config)


def referenced_tables(sql: str) -> list[str]:
    """``zone.name`` tables a query mentions (best effort; [] when it does not parse)."""
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return []
    names: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.db and table.name and table.name not in ctes:
                name = f"{table.db}.{table.name}"
                if name not in names:
                    names.append(name)
    return names


class EngineSession:
    """One DuckDB connection with managed datasets attached as views."""

    def __init__(
        self,
        resolver: DatasetResolver,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        version: int | None = None,
        as_of: datetime | str | None = None,
        temp_directory: str | None = None,
        arrow_resolver: DatasetResolver | None = None,
    ) -> None:
        self._resolver = resolver
        self._arrow_resolver = arrow_resolver
        self._version = version
        self._as_of = as_of
        self._attached: set[str] = set()
        self._schemas: set[str] = set()
        self.con = connect(
            threads=threads, memory_limit=memory_limit, temp_directory=temp_directory
        )

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def attach(self, name: str, *, alias: str | None = None) -> None:
        """Expose dataset ``name`` as the view ``alias`` (default: the same ``zone.name``)."""
        view = alias or name
        if view in self._attached:
            return
        data = self._resolver(name, self._version, self._as_of)
        zone, _, table = view.partition(".")
        if zone not in self._schemas:
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
            self._schemas.add(zone)
        source = self._parquet_source(data) if isinstance(data, tuple) else None
        if source is None:
            if isinstance(data, tuple):  # files unusable as plain Parquet: scan via Arrow
                data = (
                    self._arrow_resolver(name, self._version, self._as_of)
                    if self._arrow_resolver
                    else _arrow_dataset(data)
                )
            internal = f"__hw_{zone}_{table}"
            self.con.register(internal, data)
            source = f"SELECT * FROM {internal}"
        self.con.execute(f'CREATE OR REPLACE VIEW "{zone}"."{table}" AS {source}')
        self._attached.add(view)

    def _parquet_source(self, data: tuple[list[str], pa.Schema]) -> str | None:
        """SELECT over DuckDB's Parquet reader, columns in the dataset's order; None if a
        column of the schema is missing from the files (then the Arrow scan is used)."""
        files, schema = data
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        scan = f"read_parquet([{listed}], union_by_name = true)"
        present = {row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        if not set(schema.names) <= present:
            return None
        columns = ", ".join('"' + n.replace('"', '""') + '"' for n in schema.names)
        return f"SELECT {columns} FROM {scan}"

    def attach_many(self, names: Iterable[str]) -> None:
        for name in names:
            self.attach(name)

    def register_arrow(self, name: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Expose in-memory Arrow data as a view."""
        self.con.register(name, data)

    def check_single_statement(self, sql: str) -> None:
        """Raise QueryError unless ``sql`` parses (DuckDB's parser) as exactly one statement."""
        try:
            statements = self.con.extract_statements(sql)
        except Exception as exc:
            raise _query_error(exc, sql) from None
        if len(statements) != 1:
            raise QueryError(
                f"expected one SQL statement, found {len(statements)}",
                hint="Run statements one at a time; separate queries with UNION ALL or CTEs.",
            )

    def reader(self, sql: str, *, batch_rows: int = 256_000) -> pa.RecordBatchReader:
        """Stream a query's result as Arrow batches."""
        try:
            return self.con.sql(sql).to_arrow_reader(batch_rows)
        except Exception as exc:  # duckdb.Error subclasses
            raise _query_error(exc, sql) from None

    def table(self, sql: str) -> pa.Table:
        try:
            rel = self.con.sql(sql)
            return pa.table(rel.to_arrow_table()) if rel is not None else pa.table({})
        except Exception as exc:
            raise _query_error(exc, sql) from None

    def execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, params or []).fetchall()
        except Exception as exc:
            raise _query_error(exc, sql) from None


def _query_error(exc: Exception, sql: str) -> QueryError:
    import duckdb

    if not isinstance(exc, duckdb.Error):
        raise exc
    text = str(exc).strip()
    hint = None
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
        hint = "Datasets are queried as zone.name; list them with `headwater datasets list`."
    # DuckDB's text already names its kind ("Parser Error: ...", "Binder Error: ...")
    return QueryError(text, hint=hint, sql=sql if len(sql) < 2000 else None)


def _arrow_dataset(data: tuple[list[str], pa.Schema]) -> pads.Dataset:
    import pyarrow.dataset as pads

    files, schema = data
    return pads.dataset(files, schema=schema, format="parquet")
