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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.base import (
    Reject,
    RejectSink,
    SchemaContract,
    WriteMode,
    WriteResult,
)
from headwater.connectors.contract import (
    Conformer,
    ContractPlan,
    check_contract_name,
    plan_contract,
)
from headwater.connectors.sqlite.client import (
    CONNECTOR,
    SqliteClient,
    first_line,
    is_locked,
    open_error,
    quote_ident,
)
from headwater.connectors.sqlite.types import arrow_type, declared_type, storage_type, to_storage
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorError,
    HeadwaterError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Cursor

__all__ = ["LEDGER", "SqliteWriter"]

LEDGER = "_headwater_loads"
_SEQ = "__hw_seq"
_MODES = ("append", "overwrite", "merge")
_MERGE_OPTIONS = ("soft_delete_column",)
_UUID = pa.uuid()
_JSON = pa.json_()


@dataclass(frozen=True)
class _Col:
    name: str
    declared: str


@dataclass
class _Progress:
    """What went through the stream: input bytes, rows written, the caller's own error."""

    rows: int = 0
    bytes: int = 0
    error: BaseException | None = None
    keys_seen: list[pa.RecordBatch] = field(default_factory=list)


class SqliteWriter:
    """Writes Arrow streams into the tables of one SQLite file."""

    def __init__(self, client: SqliteClient) -> None:
        self.client = client
        self.file = client.file

    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        load_id: str | None = None,
        schema_contract: SchemaContract = "evolve",
        rejects: RejectSink | None = None,
    ) -> WriteResult:
        if mode not in _MODES:
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for sqlite: append, overwrite, merge.",
            )
        if not isinstance(target, str) or not target.strip():
            raise ConfigError("The target table name is empty.", connector=CONNECTOR)
        if target.casefold() == LEDGER.casefold() or target.startswith("__hw_"):
            raise ConfigError(
                f"The target name {target!r} is reserved by Headwater.", connector=CONNECTOR
            )
        contract = check_contract_name(schema_contract)
        soft = _merge_options(batches.schema, keys, options) if mode == "merge" else None
        if mode != "merge" and options:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for sqlite.",
                connector=CONNECTOR,
                hint="Only mode: merge takes a write option (soft_delete_column).",
            )
        _check_load_id(load_id)
        _check_storable(batches.schema)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorError(
                f"Cannot create the directory of the SQLite database {str(self.file)!r}: "
                f"{first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Fix the connection's `path`, or create the directory with write access.",
            ) from None
        con = self.client._adbc(autocommit=True)
        progress = _Progress()
        details: dict[str, Any] = {"mode": mode, "table": target}
        if load_id is not None:
            details["load_id"] = load_id
        location = f"{self.file}#{target}"
        try:
            cur = con.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                if load_id is not None:
                    recorded = _ledger_lookup(cur, load_id)
                    if recorded is not None:
                        cur.execute("ROLLBACK")
                        details["already_loaded"] = True
                        return WriteResult(rows=recorded, location=location, details=details)
                conformer = self._run(
                    cur, target, batches, mode, keys, soft, contract, rejects, progress, details
                )
                details["rows_rejected"] = conformer.rows_rejected
                rows = int(details.pop("rows", progress.rows))
                if load_id is not None:
                    _ledger_insert(cur, load_id, target, mode, rows)
                crash_point("load.before_commit")
                cur.execute("COMMIT")
            finally:
                cur.close()
        except BaseException as exc:
            _rollback(con)
            if progress.error is not None:
                raise progress.error from None
            if isinstance(exc, HeadwaterError) or not isinstance(exc, Exception):
                raise
            if is_locked(exc):
                raise open_error(self.file, exc) from None
            raise ConnectorError(
                f"Writing table {target!r} to {str(self.file)!r} failed: {first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint=_write_hint(exc),
            ) from exc
        finally:
            con.close()
        return WriteResult(rows=rows, bytes=progress.bytes, location=location, details=details)

    # -- the three modes, inside the open transaction -------------------------------------------
    def _run(
        self,
        cur: Cursor,
        target: str,
        batches: pa.RecordBatchReader,
        mode: WriteMode,
        keys: list[str] | None,
        soft: str | None,
        contract: SchemaContract,
        rejects: RejectSink | None,
        progress: _Progress,
        details: dict[str, Any],
    ) -> Conformer:
        name, existing = _table(cur, target)
        raw = batches.schema
        # an existing table's JSON and UUID columns read as text: compare and send text
        incoming = raw if existing is None else _text_extensions(raw)
        existing_arrow = (
            pa.schema(pa.field(c.name, arrow_type(c.declared)) for c in existing)
            if existing is not None
            else None
        )
        # columns that travel with the rows but are not the target's data
        extra: list[pa.Field] = []
        if mode == "merge":
            extra.append(pa.field(_SEQ, pa.int64()))
            if soft and not _has(existing_arrow, soft):
                extra.append(pa.field(soft, incoming.field(soft).type))
        if mode == "overwrite" and (contract == "evolve" or existing_arrow is None):
            plan = plan_contract(name, None, raw, contract)
        else:
            base = existing_arrow
            if base is not None and extra:
                base = pa.schema([*base, *extra])
            plan = plan_contract(
                name, base, _with(incoming, extra), contract, case_insensitive=True
            )
        conformer = Conformer(plan, _WithoutSeq(rejects) if rejects is not None else None)
        if mode == "merge" and keys:
            keys = [_written_name(plan, k, name) for k in keys]
        extra_names = {f.name for f in extra}
        data_fields = [f for f in plan.schema if f.name not in extra_names]

        if mode == "overwrite":
            staging = f"__hw_staging_{uuid.uuid4().hex[:12]}"
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
        assert keys is not None
        _, now = _table(cur, name)
        assert now is not None
        declared = {c.name.casefold(): c.declared for c in now}
        details.update(
            _merge(cur, name, batches, conformer, progress, keys, soft, data_fields, declared)
        )
        return conformer


def _merge(
    cur: Cursor,
    table: str,
    batches: pa.RecordBatchReader,
    conformer: Conformer,
    progress: _Progress,
    keys: list[str],
    soft: str | None,
    data_fields: list[pa.Field],
    declared: dict[str, str],
) -> dict[str, Any]:
    q = quote_ident
    stage = f"__hw_merge_{uuid.uuid4().hex[:12]}"
    written = [f.name for f in data_fields]
    stage_cols = [_Col(n, declared[n.casefold()]) for n in written]
    flag_in_target = soft is not None and soft.casefold() in declared
    if soft is not None and not flag_in_target:
        stage_cols.append(_Col(soft, "BOOLEAN"))
    stage_cols.append(_Col(_SEQ, "INTEGER"))
    _execute(cur, _create_sql(f"temp.{q(stage)}", stage_cols, temporary=True))
    _ingest(cur, stage, _stream(batches, conformer, progress, keys), temporary=True)
    s_table, t_table = f"temp.{q(stage)}", q(table)
    key_list = ", ".join(q(k) for k in keys)
    _execute(cur, f"CREATE INDEX temp.{q(stage + '_k')} ON {q(stage)} ({key_list})")
    on = " AND ".join(f"__hw_t.{q(k)} = __hw_s.{q(k)}" for k in keys)
    duplicates = 0
    if _may_repeat(progress.keys_seen, keys):
        _execute(
            cur,
            f"DELETE FROM {s_table} WHERE {q(_SEQ)} NOT IN "
            f"(SELECT max({q(_SEQ)}) FROM {s_table} GROUP BY {key_list})",
        )
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
        + f" ORDER BY __hw_s.{q(_SEQ)}",
    )
    inserted = _changes(cur)
    _execute(cur, f"DROP TABLE {s_table}")
    return {
        "rows": progress.rows - duplicates,
        "keys": list(keys),
        "inserted": inserted,
        "updated": updated,
        "deleted": deleted,
        "duplicates": duplicates,
    }


@dataclass
class _WithoutSeq:
    """A reject sink that hides the merge's row-number column from the raw records."""

    sink: RejectSink

    def add(self, rejects: Iterable[Reject]) -> None:
        self.sink.add(_without_seq(r) for r in rejects)


def _without_seq(reject: Reject) -> Reject:
    try:
        record = json.loads(reject.raw_record)
    except ValueError:
        return reject
    if not isinstance(record, dict) or _SEQ not in record:
        return reject
    record.pop(_SEQ)
    raw = json.dumps(record, default=str, ensure_ascii=False)
    return dataclasses.replace(reject, raw_record=raw)


# -- streams ---------------------------------------------------------------------------------


def _stream(
    batches: pa.RecordBatchReader,
    conformer: Conformer,
    progress: _Progress,
    keys: list[str] | None,
) -> pa.RecordBatchReader:
    """``batches`` conformed to the plan and converted to storage types, counted as they go.

    For a merge (``keys`` given) each row is numbered in stream order before it is
    conformed, and a null key is refused.
    """
    plan = conformer.plan
    numbered = keys is not None
    text = not plan.created
    out_schema = pa.schema(pa.field(f.name, storage_type(f.type)) for f in plan.schema)

    def gen() -> Iterator[pa.RecordBatch]:
        start = 0
        try:
            for batch in batches:
                progress.bytes += batch.nbytes
                if text:
                    batch = _text_extension_values(batch)
                if numbered:
                    n = batch.num_rows
                    seq = pa.array(range(start, start + n), pa.int64())
                    start += n
                    batch = pa.RecordBatch.from_arrays(
                        [*batch.columns, seq],
                        schema=batch.schema.append(pa.field(_SEQ, pa.int64())),
                    )
                batch = conformer(batch)
                if numbered:
                    assert keys is not None
                    _refuse_null_keys(batch, keys)
                    progress.keys_seen.append(batch.select(keys))
                progress.rows += batch.num_rows
                arrays = [to_storage(col) for col in batch.columns]
                yield pa.RecordBatch.from_arrays(arrays, schema=out_schema)
        except BaseException as exc:
            progress.error = exc  # the driver wraps it in its own error: keep the original
            raise

    return pa.RecordBatchReader.from_batches(out_schema, gen())


def _text_extensions(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        pa.field(f.name, pa.string(), f.nullable, f.metadata) if f.type in (_UUID, _JSON) else f
        for f in schema
    )


def _text_extension_values(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(t in (_UUID, _JSON) for t in batch.schema.types):
        return batch
    arrays = [
        to_storage(column) if column.type in (_UUID, _JSON) else column for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=_text_extensions(batch.schema))


def _refuse_null_keys(batch: pa.RecordBatch, keys: list[str]) -> None:
    for key in keys:
        nulls = batch.column(batch.schema.get_field_index(key)).null_count
        if nulls:
            raise SchemaIncompatibleError(
                f"Merge key {key!r} is null in {nulls} incoming row(s); a null key can never "
                "match a row, so the merge was refused (nothing written).",
                connector=CONNECTOR,
                column=key,
                hint=f"Filter out or fill the rows where {key!r} is null in a transform.",
            )


def _may_repeat(seen: list[pa.RecordBatch], keys: list[str]) -> bool:
    """False when no key occurs twice in the stream (the de-duplication pass is skipped)."""
    if not seen:
        return False
    try:
        table = pa.Table.from_batches(seen)
        return bool(table.group_by(keys).aggregate([]).num_rows != table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return True


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


def _has(schema: pa.Schema | None, name: str) -> bool:
    return schema is not None and any(f.name.casefold() == name.casefold() for f in schema)


def _with(schema: pa.Schema, extra: list[pa.Field]) -> pa.Schema:
    names = {f.name for f in schema}
    return pa.schema([*schema, *(f for f in extra if f.name not in names)])


def _written_name(plan: ContractPlan, key: str, table: str) -> str:
    for f in plan.schema:
        if f.name.casefold() == key.casefold():
            return str(f.name)
    raise ConfigError(
        f"Merge key {key!r} is not a column of table {table!r} (schema contract "
        f"{plan.contract!r} does not add it).",
        connector=CONNECTOR,
        column=key,
        hint="Use `schema_contract: evolve`, or merge on columns the table has.",
    )


def _rollback(con: Any) -> None:
    with contextlib.suppress(Exception):  # nothing open, or the connection is gone
        cur = con.cursor()
        cur.execute("ROLLBACK")
        cur.close()


def _write_hint(exc: BaseException) -> str:
    text = str(exc).lower()
    if "constraint" in text:
        return (
            "The table's constraints (PRIMARY KEY, UNIQUE, NOT NULL, CHECK) refused a row; "
            "nothing was written. Use mode: merge with keys to upsert."
        )
    if "readonly" in text or "read-only" in text or "permission" in text:
        return "The database file or its directory is not writable."
    if "disk" in text or "full" in text:
        return "The disk is full; free space and run again (nothing was written)."
    return "Nothing was written (the transaction was rolled back)."


# -- ledger --------------------------------------------------------------------------------


def _ledger_lookup(cur: Cursor, load_id: str) -> int | None:
    _execute(
        cur,
        f"CREATE TABLE IF NOT EXISTS {quote_ident(LEDGER)} ("
        '"load_id" VARCHAR(128) PRIMARY KEY NOT NULL, "target_table" VARCHAR(1024), '
        '"mode" VARCHAR(16), "rows" BIGINT, "committed_at" TIMESTAMP)',
    )
    cur.execute(f'SELECT "rows" FROM {quote_ident(LEDGER)} WHERE "load_id" = ?', (load_id,))
    row = cur.fetchone()
    return None if row is None else int(row[0] or 0)


def _ledger_insert(cur: Cursor, load_id: str, target: str, mode: str, rows: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    _execute(
        cur,
        f'INSERT INTO {quote_ident(LEDGER)} ("load_id", "target_table", "mode", "rows", '
        '"committed_at") VALUES (?, ?, ?, ?, ?)',
        (load_id, target, mode, rows, stamp),
    )


# -- argument checks -----------------------------------------------------------------------


def _check_load_id(load_id: str | None) -> None:
    if load_id is None:
        return
    if not isinstance(load_id, str) or not load_id or len(load_id) > 128:
        raise ConfigError(
            f"load_id must be a non-empty string of at most 128 characters, got {load_id!r}.",
            connector=CONNECTOR,
            field="load_id",
        )


def _check_storable(schema: pa.Schema) -> None:
    for f in schema:
        try:
            storage_type(f.type)
        except TypeError:
            raise UnsupportedOperationError(
                f"Column {f.name!r} has type {f.type}, which the sqlite connector cannot store.",
                connector=CONNECTOR,
                column=f.name,
                hint="Serialize nested columns to JSON text (or a JSON column) and durations "
                "to integers in a transform before loading.",
            ) from None


def _merge_options(
    schema: pa.Schema, keys: list[str] | None, options: Mapping[str, Any] | None
) -> str | None:
    """Check merge keys and options against the data's schema; the soft-delete column."""
    opts = dict(options or {})
    soft = opts.pop("soft_delete_column", None)
    if opts:
        name = sorted(opts)[0]
        raise ConfigError(
            f"Unknown write option {name!r} for a sqlite merge.",
            connector=CONNECTOR,
            hint=choices_hint(name, _MERGE_OPTIONS, "options"),
        )
    if not keys:
        raise ConfigError(
            "mode: merge on sqlite needs the key columns that identify a row.",
            connector=CONNECTOR,
            hint="Set `keys: [id]` (one or more columns) on the load step.",
        )
    names = schema.names
    folded = [n.casefold() for n in names]
    if len(set(folded)) != len(folded):
        raise ConfigError(
            "The data has two columns with the same name (SQLite ignores case in names); "
            "a merge cannot tell them apart.",
            connector=CONNECTOR,
            hint="Rename or drop the duplicate column in a transform.",
        )
    for key in keys:
        if not isinstance(key, str) or key not in names:
            raise ConfigError(
                f"Merge key {key!r} is not a column of the data.",
                connector=CONNECTOR,
                column=str(key),
                hint=choices_hint(str(key), names, "columns"),
            )
    if len({k.casefold() for k in keys}) != len(keys):
        raise ConfigError(
            f"Merge keys {keys!r} name a column twice.",
            connector=CONNECTOR,
            hint="List each key column once.",
        )
    if _SEQ in names:
        raise ConfigError(f"The column name {_SEQ!r} is reserved.", connector=CONNECTOR)
    if soft is None:
        return None
    if not isinstance(soft, str) or soft not in names:
        raise ConfigError(
            f"soft_delete_column {soft!r} is not a column of the data.",
            connector=CONNECTOR,
            field="options.soft_delete_column",
            hint=choices_hint(str(soft), names, "columns"),
        )
    if not pa.types.is_boolean(schema.field(soft).type):
        raise ConfigError(
            f"soft_delete_column {soft!r} must be a boolean column, not {schema.field(soft).type}.",
            connector=CONNECTOR,
            field="options.soft_delete_column",
        )
    if soft in keys:
        raise ConfigError(
            f"soft_delete_column {soft!r} cannot also be a merge key.", connector=CONNECTOR
        )
    return soft
