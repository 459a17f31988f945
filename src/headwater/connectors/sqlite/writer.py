"""The ``sqlite`` destination: append, atomic overwrite and merge, exactly once per load id.

Every write is one SQLite transaction, opened with ``BEGIN IMMEDIATE`` (the database's
write lock is taken first, so two writers queue instead of failing half-way) and
closed with ``COMMIT``; any failure rolls it back and the file is as it was. SQLite's
DDL is transactional, so the ``CREATE TABLE``, ``ALTER TABLE ... ADD COLUMN`` (schema
contract ``evolve``), the staging table and the ``_headwater_loads`` ledger row all
commit or vanish together with the data.

* ``append`` bulk-ingests Arrow through ADBC into the table (created when missing).
* ``overwrite`` fills a staging table, drops the old table and renames the staging
  table in its place, in the same transaction: readers see the old table until the
  commit, and a failure leaves it untouched.
* ``merge`` ingests into a temporary staging table numbered in stream order, deletes
  all but the last occurrence of each key, then (optional soft delete) ``DELETE``,
  ``UPDATE ... FROM`` the staging table and ``INSERT ... SELECT`` the keys the target
  lacks. No unique index is needed: the write lock makes the statements one atomic
  upsert.

With a ``load_id`` the ledger row is inserted in the same transaction, and a load id
already in the ledger returns its recorded row count without reading the input.
:class:`SqliteWriter` supplies only SQLite's part of a write; the rest (argument checks,
ledger flow, contract plan, input stream) is :mod:`headwater.connectors.sql.writer`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.contract import Conformer
from headwater.connectors.sql import writer as shared
from headwater.connectors.sql.writer import LEDGER, SEQ, Dialect, FileWriter, Progress, WriteJob
from headwater.connectors.sqlite.client import (
    CONNECTOR,
    SqliteClient,
    is_locked,
    open_error,
    quote_ident,
)
from headwater.connectors.sqlite.types import arrow_type, declared_type, storage_type, to_storage
from headwater.crashpoints import crash_point
from headwater.errors import ConfigError, HeadwaterError, UnsupportedOperationError

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection, Cursor

__all__ = ["LEDGER", "SqliteWriter"]

_DIALECT = Dialect(connector=CONNECTOR, product="SQLite")


@dataclass(frozen=True)
class _Col:
    name: str
    declared: str


class SqliteWriter(FileWriter["Connection", "Cursor"]):
    """Writes Arrow streams into the tables of one SQLite file."""

    dialect = _DIALECT
    client: SqliteClient

    # -- the transaction ---------------------------------------------------------------------
    def _check_storable(self, schema: pa.Schema) -> None:
        for f in schema:
            try:
                storage_type(f.type)
            except TypeError:
                raise UnsupportedOperationError(
                    f"Column {f.name!r} has type {f.type}, which the sqlite connector cannot "
                    "store.",
                    connector=CONNECTOR,
                    column=f.name,
                    hint="Serialize nested columns to JSON text (or a JSON column) and durations "
                    "to integers in a transform before loading.",
                ) from None

    def _open(self) -> Connection:
        return self.client._adbc(autocommit=True)

    def _close(self, con: Connection) -> None:
        con.close()

    def _begin(self, con: Connection, load_id: str | None) -> Cursor:
        cur = con.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            if load_id is not None:  # DDL is transactional: the ledger is created inside
                _execute(cur, shared.ledger_ddl(quote_ident(LEDGER), not_null=True))
        except BaseException:
            cur.close()
            raise
        return cur

    def _end(self, tx: Cursor) -> None:
        tx.close()

    def _statement(self, tx: Cursor, sql: str) -> None:
        tx.execute(sql)

    def _rollback(self, con: Connection) -> None:
        with contextlib.suppress(Exception):  # nothing open, or the connection is gone
            cur = con.cursor()
            cur.execute("ROLLBACK")
            cur.close()

    def _ledger_lookup(self, tx: Cursor, load_id: str) -> int | None:
        tx.execute(shared.ledger_lookup_sql(quote_ident(LEDGER)), (load_id,))
        row = tx.fetchone()
        return None if row is None else int(row[0] or 0)

    def _ledger_insert(self, tx: Cursor, load_id: str, target: str, mode: str, rows: int) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        _execute(
            tx, shared.ledger_insert_sql(quote_ident(LEDGER)), (load_id, target, mode, rows, stamp)
        )

    def _special_error(self, exc: Exception, target: str) -> HeadwaterError | None:
        return open_error(self.file, exc) if is_locked(exc) else None

    def _write_hint(self, exc: BaseException) -> str:
        return shared.write_hint(
            exc,
            [
                (
                    ("readonly", "read-only", "permission"),
                    "The database file or its directory is not writable.",
                ),
                (
                    ("disk", "full"),
                    "The disk is full; free space and run again (nothing was written).",
                ),
            ],
        )

    # -- the three modes, inside the open transaction -------------------------------------------
    def _run(self, tx: Cursor, job: WriteJob) -> Conformer:
        batches, mode, soft = job.batches, job.mode, job.soft
        progress, details = job.progress, job.details
        cur = tx
        name, existing = _table(cur, job.target)
        existing_arrow = (
            pa.schema(pa.field(c.name, arrow_type(c.declared)) for c in existing)
            if existing is not None
            else None
        )
        wp = shared.plan_write(_DIALECT, job, name, existing_arrow)
        plan, conformer, extra_names = wp.plan, wp.conformer, wp.extra_names
        data_fields = [f for f in plan.schema if f.name not in extra_names]

        if mode == "overwrite":
            staging = shared.staging_name("staging")
            if plan.created:
                cols = [_Col(f.name, declared_type(f.type)) for f in data_fields]
            else:
                assert existing is not None
                cols = existing
            _execute(cur, _create_sql(quote_ident(staging), cols))
            _ingest(cur, staging, _stream(batches, conformer, progress, None), temporary=False)
            crash_point("load.during_swap")
            if existing is not None:
                _execute(cur, f"DROP TABLE {quote_ident(name)}")
            _execute(cur, f"ALTER TABLE {quote_ident(staging)} RENAME TO {quote_ident(name)}")
            return conformer

        if existing is None:
            cols = [_Col(f.name, declared_type(f.type)) for f in data_fields]
            _execute(cur, _create_sql(quote_ident(name), cols))
        for f in plan.add_columns:
            if f.name in extra_names:
                continue
            _execute(
                cur,
                f"ALTER TABLE {quote_ident(name)} ADD COLUMN {quote_ident(f.name)} "
                f"{declared_type(f.type)}",
            )
        details["columns_added"] = [f.name for f in plan.add_columns if f.name not in extra_names]
        if mode == "append":
            _ingest(cur, name, _stream(batches, conformer, progress, None), temporary=False)
            return conformer
        assert wp.keys is not None
        _, now = _table(cur, name)
        assert now is not None
        declared = {c.name.casefold(): c.declared for c in now}
        details.update(
            _merge(cur, name, batches, conformer, progress, wp.keys, soft, data_fields, declared)
        )
        return conformer


def _merge(
    cur: Cursor,
    table: str,
    batches: pa.RecordBatchReader,
    conformer: Conformer,
    progress: Progress,
    keys: list[str],
    soft: str | None,
    data_fields: list[pa.Field],
    declared: dict[str, str],
) -> dict[str, Any]:
    q = quote_ident
    stage = shared.staging_name("merge")
    written = [f.name for f in data_fields]
    stage_cols = [_Col(n, declared[n.casefold()]) for n in written]
    flag_in_target = soft is not None and soft.casefold() in declared
    if soft is not None and not flag_in_target:
        stage_cols.append(_Col(soft, "BOOLEAN"))
    stage_cols.append(_Col(SEQ, "INTEGER"))
    _execute(cur, _create_sql(f"temp.{q(stage)}", stage_cols, temporary=True))
    _ingest(cur, stage, _stream(batches, conformer, progress, keys), temporary=True)
    s_table, t_table = f"temp.{q(stage)}", q(table)
    key_list = ", ".join(q(k) for k in keys)
    _execute(cur, f"CREATE INDEX temp.{q(stage + '_k')} ON {q(stage)} ({key_list})")
    on = " AND ".join(f"__hw_t.{q(k)} = __hw_s.{q(k)}" for k in keys)
    duplicates = 0
    if shared.may_repeat(progress.keys_seen, keys):
        _execute(cur, shared.dedup_sql(s_table, keys))
        duplicates = _changes(cur)
    flag = f"coalesce(__hw_s.{q(soft)}, 0) = 1" if soft else None
    deleted = 0
    if flag:
        match = " AND ".join(f"{t_table}.{q(k)} = __hw_s.{q(k)}" for k in keys)
        _execute(
            cur,
            f"DELETE FROM {t_table} WHERE EXISTS "
            f"(SELECT 1 FROM {s_table} AS __hw_s WHERE {flag} AND {match})",
        )
        deleted = _changes(cur)
    non_keys = [n for n in written if n.casefold() not in {k.casefold() for k in keys}]
    updated = 0
    if non_keys:
        sets = ", ".join(f"{q(n)} = __hw_s.{q(n)}" for n in non_keys)
        _execute(
            cur,
            f"UPDATE {t_table} AS __hw_t SET {sets} FROM {s_table} AS __hw_s WHERE {on}"
            + (f" AND NOT ({flag})" if flag else ""),
        )
        updated = _changes(cur)
    cols = ", ".join(q(n) for n in written)
    values = ", ".join(f"__hw_s.{q(n)}" for n in written)
    _execute(
        cur,
        f"INSERT INTO {t_table} ({cols}) SELECT {values} FROM {s_table} AS __hw_s "
        f"LEFT JOIN {t_table} AS __hw_t ON {on} WHERE __hw_t.{q(keys[0])} IS NULL"
        + (f" AND NOT ({flag})" if flag else "")
        + f" ORDER BY __hw_s.{q(SEQ)}",
    )
    inserted = _changes(cur)
    _execute(cur, f"DROP TABLE {s_table}")
    return shared.merge_result(
        progress, keys, inserted=inserted, updated=updated, deleted=deleted, duplicates=duplicates
    )


def _stream(
    batches: pa.RecordBatchReader,
    conformer: Conformer,
    progress: Progress,
    keys: list[str] | None,
) -> pa.RecordBatchReader:
    """``batches`` conformed to the plan and converted to storage types, counted as they go."""
    out_schema = pa.schema(pa.field(f.name, storage_type(f.type)) for f in conformer.plan.schema)

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [to_storage(col) for col in batch.columns]
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

    gen = shared.stream_batches(
        _DIALECT, batches, conformer, progress, keys, to_text=to_storage, convert=convert
    )
    return pa.RecordBatchReader.from_batches(out_schema, gen)


# -- SQL helpers ---------------------------------------------------------------------------


def _execute(cur: Cursor, sql: str, params: tuple[Any, ...] | None = None) -> None:
    cur.execute(sql, params) if params is not None else cur.execute(sql)
    with contextlib.suppress(Exception):
        cur.fetchall()


def _changes(cur: Cursor) -> int:
    cur.execute("SELECT changes()")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _ingest(cur: Cursor, table: str, reader: pa.RecordBatchReader, *, temporary: bool) -> None:
    cur.adbc_ingest(table, reader, mode="append", temporary=temporary)


def _create_sql(qualified: str, cols: list[_Col], *, temporary: bool = False) -> str:
    body = ", ".join(f"{quote_ident(c.name)} {c.declared}".rstrip() for c in cols)
    return f"CREATE {'TEMP ' if temporary else ''}TABLE {qualified} ({body})"


def _table(cur: Cursor, target: str) -> tuple[str, list[_Col] | None]:
    """The stored name of table ``target`` (SQLite matches names case-insensitively) and
    its columns; ``(target, None)`` when there is no such table."""
    cur.execute(
        "SELECT name, type FROM sqlite_schema WHERE name = ? COLLATE NOCASE "
        "AND type IN ('table', 'view')",
        (target,),
    )
    rows = cur.fetchall()
    if not rows:
        return target, None
    name, kind = rows[0]
    if kind != "table":
        raise ConfigError(
            f"{target!r} is a view, not a table: a load cannot write into it.",
            connector=CONNECTOR,
            hint="Load into another table name, or drop the view.",
        )
    cur.execute("SELECT name, type FROM pragma_table_info(?)", (name,))
    return str(name), [_Col(str(r[0]), str(r[1] or "")) for r in cur.fetchall()]
