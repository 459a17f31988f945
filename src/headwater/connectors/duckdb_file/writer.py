"""The ``duckdb`` destination: append, atomic overwrite and merge, exactly once per load id.

DuckDB scans the incoming Arrow stream itself (a registered ``RecordBatchReader``: no
Python per row). Every write is one DuckDB transaction, DDL included: the ``CREATE
TABLE``, ``ALTER TABLE ... ADD COLUMN`` (schema contract ``evolve``), the staging table
and the ``_headwater_loads`` ledger row commit or vanish together with the data. DuckDB
writes its WAL only at commit, so a process killed mid-write leaves the file as it was.

* ``append`` inserts by column name (``INSERT ... BY NAME``), creating the table when
  missing (``CREATE TABLE ... AS``, with DuckDB's types for the Arrow ones).
* ``overwrite`` fills a staging table, drops the old table and renames the staging
  table in its place: other connections see the old table until the commit.
* ``merge`` copies the stream into a temporary staging table numbered in stream order,
  keeps the last occurrence of each key, then runs one ``MERGE INTO`` (update matched
  rows, insert new keys, delete matched rows flagged by ``soft_delete_column``). No
  unique index is needed.

What is not DuckDB's own (argument checks, ledger flow, contract plan, input stream)
comes from :class:`headwater.connectors.sql.writer.FileWriter`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.contract import Conformer
from headwater.connectors.duckdb_file.client import (
    CONNECTOR,
    DuckdbClient,
    open_error,
    quote_ident,
)
from headwater.connectors.sql import writer as shared
from headwater.connectors.sql.client import first_line
from headwater.connectors.sql.writer import LEDGER, Dialect, FileWriter, Progress, WriteJob
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorUnavailableError,
    HeadwaterError,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    import duckdb

__all__ = ["LEDGER", "DuckdbWriter"]

_DIALECT = Dialect(connector=CONNECTOR, product="DuckDB")
_UUID = pa.uuid()
_JSON = pa.json_()


class DuckdbWriter(FileWriter["duckdb.DuckDBPyConnection", "duckdb.DuckDBPyConnection"]):
    """Writes Arrow streams into the tables of one DuckDB file (``main`` schema)."""

    dialect = _DIALECT
    client: DuckdbClient

    # -- the transaction ---------------------------------------------------------------------
    def _guard(self) -> threading.Lock:
        return _file_lock(self.file)

    def _check_storable(self, schema: pa.Schema) -> None:
        for f in schema:
            if _has_type(f.type, lambda t: pa.types.is_decimal256(t) and t.precision > 38):
                raise UnsupportedOperationError(
                    f"Column {f.name!r} has type {f.type}: DuckDB decimals hold at most 38 digits.",
                    connector=CONNECTOR,
                    column=f.name,
                    hint="Cast it to decimal128(38, s) (or float64, or text) in a transform.",
                )

    def _open(self) -> duckdb.DuckDBPyConnection:
        return self.client._connect(read_only=False)

    def _close(self, con: duckdb.DuckDBPyConnection) -> None:
        con.close()

    def _begin(
        self, con: duckdb.DuckDBPyConnection, load_id: str | None
    ) -> duckdb.DuckDBPyConnection:
        if load_id is not None:
            _ensure_ledger(con)
        con.execute("BEGIN TRANSACTION")
        return con

    def _statement(self, tx: duckdb.DuckDBPyConnection, sql: str) -> None:
        tx.execute(sql)

    def _rollback(self, con: duckdb.DuckDBPyConnection) -> None:
        with contextlib.suppress(Exception):  # no transaction open, or already rolled back
            con.execute("ROLLBACK")

    def _ledger_lookup(self, tx: duckdb.DuckDBPyConnection, load_id: str) -> int | None:
        row = tx.execute(shared.ledger_lookup_sql(_LEDGER), [load_id]).fetchone()
        return None if row is None else int(row[0] or 0)

    def _ledger_insert(
        self, tx: duckdb.DuckDBPyConnection, load_id: str, target: str, mode: str, rows: int
    ) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        tx.execute(shared.ledger_insert_sql(_LEDGER), [load_id, target, mode, rows, now])

    def _recorded_after_failure(
        self, con: duckdb.DuckDBPyConnection, exc: Exception, load_id: str
    ) -> int | None:
        if not _is_duplicate_ledger(exc):
            return None
        # another connection committed the same load id first: it is loaded, once
        with contextlib.suppress(Exception):
            return self._ledger_lookup(con, load_id)
        return None

    def _special_error(self, exc: Exception, target: str) -> HeadwaterError | None:
        if "lock" in str(exc).lower():
            return open_error(self.file, exc)
        if "conflict" in str(exc).lower():
            return ConnectorUnavailableError(
                f"Writing table {target!r} to {str(self.file)!r} conflicted with another "
                f"transaction: {first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Another connection changed the same table at the same time; "
                "nothing was written and the step is retried.",
            )
        return None

    def _write_hint(self, exc: BaseException) -> str:
        return shared.write_hint(
            exc,
            [
                (
                    ("conversion error", "could not convert"),
                    "A value does not convert to the column's DuckDB type; nothing was "
                    "written. Cast it in a transform, or use `schema_contract: discard_row`.",
                )
            ],
        )

    # -- the three modes, inside the open transaction -------------------------------------------
    def _run(self, tx: duckdb.DuckDBPyConnection, job: WriteJob) -> Conformer:
        batches, mode, soft = job.batches, job.mode, job.soft
        progress, details = job.progress, job.details
        con = tx
        name, existing = _table(con, job.target)
        raw = batches.schema
        wp = shared.plan_write(_DIALECT, job, name, existing)
        plan, conformer, extra_names = wp.plan, wp.conformer, wp.extra_names
        data = [f.name for f in plan.schema if f.name not in extra_names]
        view = f"__hw_source_{uuid.uuid4().hex[:12]}"
        merge_keys = wp.keys if mode == "merge" else None
        stream = pa.RecordBatchReader.from_batches(
            plan.schema,
            shared.stream_batches(
                _DIALECT, batches, conformer, progress, merge_keys, to_text=_text
            ),
        )
        con.register(view, stream)
        qt = f"main.{quote_ident(name)}"
        try:
            if mode == "overwrite":
                staging = f"main.{quote_ident(shared.staging_name('staging'))}"
                if plan.created:
                    con.execute(f"CREATE TABLE {staging} AS SELECT * FROM {view}")
                else:
                    con.execute(f"CREATE TABLE {staging} AS SELECT * FROM {qt} LIMIT 0")
                    con.execute(f"INSERT INTO {staging} BY NAME SELECT * FROM {view}")
                crash_point("load.during_swap")
                if existing is not None:
                    con.execute(f"DROP TABLE {qt}")
                con.execute(f"ALTER TABLE {staging} RENAME TO {quote_ident(name)}")
                return conformer
            added = [f for f in plan.add_columns if f.name not in extra_names]
            if added:
                ddl = _duckdb_types(con, raw, [f.name for f in added])
                for f in added:
                    con.execute(f"ALTER TABLE {qt} ADD COLUMN {quote_ident(f.name)} {ddl[f.name]}")
            details["columns_added"] = [f.name for f in added]
            if mode == "append":
                if existing is None:
                    con.execute(f"CREATE TABLE {qt} AS SELECT * FROM {view}")
                else:
                    con.execute(f"INSERT INTO {qt} BY NAME SELECT * FROM {view}")
                return conformer
            assert wp.keys is not None
            details.update(_merge(con, qt, view, existing is None, progress, wp.keys, soft, data))
            return conformer
        finally:
            with contextlib.suppress(Exception):
                con.unregister(view)


_LEDGER = f"main.{quote_ident(LEDGER)}"
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    """One writer at a time per database file in this process.

    DuckDB lets several connections of one process write concurrently and fails the later
    committer on a conflict; queueing Headwater's own writers instead makes two loads of
    the same file (or the same load id) wait for each other, as SQLite's lock does.
    Other processes cannot open the file for writing at all while it is open here.
    """
    key = str(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.Lock()
        return lock


def _merge(
    con: duckdb.DuckDBPyConnection,
    qt: str,
    view: str,
    create: bool,
    progress: Progress,
    keys: list[str],
    soft: str | None,
    data: list[str],
) -> dict[str, Any]:
    q = quote_ident
    stage = q(shared.staging_name("merge"))
    con.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {view}")
    duplicates = 0
    if shared.may_repeat(progress.keys_seen, keys):
        duplicates = _count(con, shared.dedup_sql(stage, keys))
    cols = ", ".join(q(n) for n in data)
    if create:
        con.execute(f"CREATE TABLE {qt} AS SELECT {cols} FROM {stage} LIMIT 0")
    on = " AND ".join(f"__hw_t.{q(k)} = __hw_s.{q(k)}" for k in keys)
    flag = f"coalesce(__hw_s.{q(soft)}, false)" if soft else None
    inserted = _count(
        con,
        f"SELECT count(*) FROM {stage} AS __hw_s WHERE "
        + (f"NOT {flag} AND " if flag else "")
        + f"NOT EXISTS (SELECT 1 FROM {qt} AS __hw_t WHERE {on})",
    )
    deleted = 0
    if flag:
        deleted = _count(
            con,
            f"SELECT count(*) FROM {qt} AS __hw_t WHERE EXISTS "
            f"(SELECT 1 FROM {stage} AS __hw_s WHERE {flag} AND {on})",
        )
    key_set = {k.casefold() for k in keys}
    non_keys = [n for n in data if n.casefold() not in key_set]
    clauses = []
    if flag:
        clauses.append(f"WHEN MATCHED AND {flag} THEN DELETE")
    if non_keys:
        sets = ", ".join(f"{q(n)} = __hw_s.{q(n)}" for n in non_keys)
        clauses.append(f"WHEN MATCHED THEN UPDATE SET {sets}")
    values = ", ".join(f"__hw_s.{q(n)}" for n in data)
    clauses.append(
        "WHEN NOT MATCHED "
        + (f"AND NOT {flag} " if flag else "")
        + f"THEN INSERT ({cols}) VALUES ({values})"
    )
    affected = _count(
        con, f"MERGE INTO {qt} AS __hw_t USING {stage} AS __hw_s ON ({on}) " + " ".join(clauses)
    )
    con.execute(f"DROP TABLE {stage}")
    return shared.merge_result(
        progress,
        keys,
        inserted=inserted,
        updated=max(0, affected - inserted - deleted),
        deleted=deleted,
        duplicates=duplicates,
    )


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _text(column: pa.Array) -> pa.Array:
    """A UUID or JSON column as text (how an existing table's column reads)."""
    if column.type == _JSON:
        return column.storage
    return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())


# -- catalog -------------------------------------------------------------------------------


def _table(con: duckdb.DuckDBPyConnection, target: str) -> tuple[str, pa.Schema | None]:
    """The stored name of ``main.target`` (matched ignoring case, as DuckDB does) and its
    Arrow schema as a read returns it; ``(target, None)`` when there is no such table."""
    rows = con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main' "
        "AND lower(table_name) = lower(?)",
        [target],
    ).fetchall()
    if not rows:
        return target, None
    name, kind = rows[0]
    if kind != "BASE TABLE":
        raise ConfigError(
            f"{target!r} is a view, not a table: a load cannot write into it.",
            connector=CONNECTOR,
            hint="Load into another table name, or drop the view.",
        )
    schema = con.sql(f"SELECT * FROM main.{quote_ident(name)} LIMIT 0").to_arrow_table().schema
    return str(name), schema


def _duckdb_types(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, names: list[str]
) -> dict[str, str]:
    """DuckDB's column types for Arrow fields (as ``CREATE TABLE ... AS`` would make them)."""
    folded = {n.casefold() for n in names}
    empty = pa.table({f.name: pa.array([], f.type) for f in schema if f.name.casefold() in folded})
    view = f"__hw_types_{uuid.uuid4().hex[:12]}"
    con.register(view, empty)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
    finally:
        con.unregister(view)
    by_fold = {str(r[0]).casefold(): str(r[1]) for r in described}
    return {n: by_fold[n.casefold()] for n in names}


# -- ledger --------------------------------------------------------------------------------


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger table in its own short transaction; a concurrent creator is fine."""
    import duckdb

    for attempt in range(10):
        try:
            con.execute(shared.ledger_ddl(_LEDGER, not_null=False))
            return
        except duckdb.Error:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            found = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ?",
                [LEDGER],
            ).fetchall()
            if found and found[0][0]:
                return
            if attempt == 9:
                raise
            time.sleep(0.01 * (attempt + 1))


def _is_duplicate_ledger(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (("duplicate key" in text or "conflict" in text) and "load_id" in text) or (
        "conflict" in text and LEDGER in text
    )


def _has_type(t: pa.DataType, test: Any) -> bool:
    if test(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_type(t.value_type, test)
    if isinstance(t, pa.ExtensionType):
        return _has_type(t.storage_type, test)
    return any(_has_type(t.field(i).type, test) for i in range(t.num_fields))
