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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
from headwater.connectors.duckdb_file.client import (
    CONNECTOR,
    DuckdbClient,
    first_line,
    open_error,
    quote_ident,
)
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorError,
    ConnectorUnavailableError,
    HeadwaterError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
    choices_hint,
)

if TYPE_CHECKING:
    import duckdb

__all__ = ["LEDGER", "DuckdbWriter"]

LEDGER = "_headwater_loads"
_SEQ = "__hw_seq"
_MODES = ("append", "overwrite", "merge")
_MERGE_OPTIONS = ("soft_delete_column",)
_UUID = pa.uuid()
_JSON = pa.json_()


@dataclass
class _Progress:
    rows: int = 0
    bytes: int = 0
    error: BaseException | None = None
    keys_seen: list[pa.RecordBatch] = field(default_factory=list)


class DuckdbWriter:
    """Writes Arrow streams into the tables of one DuckDB file (``main`` schema)."""

    def __init__(self, client: DuckdbClient) -> None:
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
                hint="Valid modes for duckdb: append, overwrite, merge.",
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
                f"Unknown write option {sorted(options)[0]!r} for duckdb.",
                connector=CONNECTOR,
                hint="Only mode: merge takes a write option (soft_delete_column).",
            )
        _check_load_id(load_id)
        _check_storable(batches.schema)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorError(
                f"Cannot create the directory of the DuckDB database {str(self.file)!r}: "
                f"{first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint="Fix the connection's `path`, or create the directory with write access.",
            ) from None
        with _file_lock(self.file):
            return self._write(target, batches, mode, keys, soft, contract, load_id, rejects)

    def _write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        mode: WriteMode,
        keys: list[str] | None,
        soft: str | None,
        contract: SchemaContract,
        load_id: str | None,
        rejects: RejectSink | None,
    ) -> WriteResult:
        con = self.client._connect(read_only=False)
        progress = _Progress()
        details: dict[str, Any] = {"mode": mode, "table": target}
        if load_id is not None:
            details["load_id"] = load_id
        location = f"{self.file}#{target}"
        try:
            if load_id is not None:
                _ensure_ledger(con)
            con.execute("BEGIN TRANSACTION")
            if load_id is not None:
                recorded = _ledger_lookup(con, load_id)
                if recorded is not None:
                    con.execute("ROLLBACK")
                    details["already_loaded"] = True
                    return WriteResult(rows=recorded, location=location, details=details)
            conformer = self._run(
                con, target, batches, mode, keys, soft, contract, rejects, progress, details
            )
            details["rows_rejected"] = conformer.rows_rejected
            rows = int(details.pop("rows", progress.rows))
            if load_id is not None:
                _ledger_insert(con, load_id, target, mode, rows)
            crash_point("load.before_commit")
            con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):  # no transaction open, or already rolled back
                con.execute("ROLLBACK")
            if progress.error is not None:
                raise progress.error from None
            if isinstance(exc, HeadwaterError) or not isinstance(exc, Exception):
                raise
            if load_id is not None and _is_duplicate_ledger(exc):
                # another connection committed the same load id first: it is loaded, once
                recorded = _recorded_after_conflict(con, load_id)
                if recorded is not None:
                    details["already_loaded"] = True
                    return WriteResult(rows=recorded, location=location, details=details)
            if "lock" in str(exc).lower():
                raise open_error(self.file, exc) from None
            if "conflict" in str(exc).lower():
                raise ConnectorUnavailableError(
                    f"Writing table {target!r} to {str(self.file)!r} conflicted with another "
                    f"transaction: {first_line(exc)}",
                    connector=CONNECTOR,
                    location=str(self.file),
                    hint="Another connection changed the same table at the same time; "
                    "nothing was written and the step is retried.",
                ) from None
            raise ConnectorError(
                f"Writing table {target!r} to {str(self.file)!r} failed: {first_line(exc)}",
                connector=CONNECTOR,
                location=str(self.file),
                hint=_write_hint(exc),
            ) from exc
        finally:
            con.close()
        return WriteResult(rows=rows, bytes=progress.bytes, location=location, details=details)

    def _run(
        self,
        con: duckdb.DuckDBPyConnection,
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
        name, existing = _table(con, target)
        raw = batches.schema
        # an existing table's UUID and JSON columns read as text: compare and send text
        incoming = raw if existing is None else _text_extensions(raw)
        extra: list[pa.Field] = []
        if mode == "merge":
            extra.append(pa.field(_SEQ, pa.int64()))
            if soft and not _has(existing, soft):
                extra.append(pa.field(soft, incoming.field(soft).type))
        if mode == "overwrite" and (contract == "evolve" or existing is None):
            plan = plan_contract(name, None, raw, contract)
        else:
            base = existing
            if base is not None and extra:
                base = pa.schema([*base, *extra])
            plan = plan_contract(
                name, base, _with(incoming, extra), contract, case_insensitive=True
            )
        conformer = Conformer(plan, _WithoutSeq(rejects) if rejects is not None else None)
        if mode == "merge" and keys:
            keys = [_written_name(plan, k, name) for k in keys]
        extra_names = {f.name for f in extra}
        data = [f.name for f in plan.schema if f.name not in extra_names]
        view = f"__hw_source_{uuid.uuid4().hex[:12]}"
        stream = _stream(batches, conformer, progress, keys if mode == "merge" else None)
        con.register(view, stream)
        qt = f"main.{quote_ident(name)}"
        try:
            if mode == "overwrite":
                staging = f"main.{quote_ident(f'__hw_staging_{uuid.uuid4().hex[:12]}')}"
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
            assert keys is not None
            details.update(
                _merge(con, qt, view, existing is None, progress, keys, soft, data, extra_names)
            )
            return conformer
        finally:
            with contextlib.suppress(Exception):
                con.unregister(view)


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
    progress: _Progress,
    keys: list[str],
    soft: str | None,
    data: list[str],
    extra_names: set[str],
) -> dict[str, Any]:
    q = quote_ident
    stage = q(f"__hw_merge_{uuid.uuid4().hex[:12]}")
    con.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {view}")
    key_list = ", ".join(q(k) for k in keys)
    duplicates = 0
    if _may_repeat(progress.keys_seen, keys):
        duplicates = _count(
            con,
            f"DELETE FROM {stage} WHERE {q(_SEQ)} NOT IN "
            f"(SELECT max({q(_SEQ)}) FROM {stage} GROUP BY {key_list})",
        )
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
    return {
        "rows": progress.rows - duplicates,
        "keys": list(keys),
        "inserted": inserted,
        "updated": max(0, affected - inserted - deleted),
        "deleted": deleted,
        "duplicates": duplicates,
    }


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


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
    """``batches`` conformed to the plan and counted as DuckDB scans them.

    For a merge (``keys`` given) each row is numbered in stream order before it is
    conformed, and a null key is refused.
    """
    plan = conformer.plan
    numbered = keys is not None
    text = not plan.created

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
                yield batch
        except BaseException as exc:
            progress.error = exc  # DuckDB wraps it in its own error: keep the original
            raise

    return pa.RecordBatchReader.from_batches(plan.schema, gen())


def _text_extensions(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        pa.field(f.name, pa.string(), f.nullable, f.metadata) if f.type in (_UUID, _JSON) else f
        for f in schema
    )


def _text_extension_values(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(t in (_UUID, _JSON) for t in batch.schema.types):
        return batch
    arrays = []
    for column in batch.columns:
        if column.type == _JSON:
            arrays.append(column.storage)
        elif column.type == _UUID:
            arrays.append(
                pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
            )
        else:
            arrays.append(column)
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
    if not seen:
        return False
    try:
        table = pa.Table.from_batches(seen)
        return bool(table.group_by(keys).aggregate([]).num_rows != table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return True


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


def _write_hint(exc: BaseException) -> str:
    text = str(exc).lower()
    if "constraint" in text:
        return (
            "The table's constraints (PRIMARY KEY, UNIQUE, NOT NULL, CHECK) refused a row; "
            "nothing was written. Use mode: merge with keys to upsert."
        )
    if "conversion error" in text or "could not convert" in text:
        return (
            "A value does not convert to the column's DuckDB type; nothing was written. "
            "Cast it in a transform, or use `schema_contract: discard_row`."
        )
    return "Nothing was written (the transaction was rolled back)."


# -- ledger --------------------------------------------------------------------------------

_LEDGER_DDL = (
    f"CREATE TABLE IF NOT EXISTS main.{quote_ident(LEDGER)} ("
    '"load_id" VARCHAR(128) PRIMARY KEY, "target_table" VARCHAR(1024), "mode" VARCHAR(16), '
    '"rows" BIGINT, "committed_at" TIMESTAMP)'
)


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger table in its own short transaction; a concurrent creator is fine."""
    import duckdb

    for attempt in range(10):
        try:
            con.execute(_LEDGER_DDL)
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


def _ledger_lookup(con: duckdb.DuckDBPyConnection, load_id: str) -> int | None:
    row = con.execute(
        f'SELECT "rows" FROM main.{quote_ident(LEDGER)} WHERE "load_id" = ?', [load_id]
    ).fetchone()
    return None if row is None else int(row[0] or 0)


def _ledger_insert(
    con: duckdb.DuckDBPyConnection, load_id: str, target: str, mode: str, rows: int
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f'INSERT INTO main.{quote_ident(LEDGER)} ("load_id", "target_table", "mode", "rows", '
        '"committed_at") VALUES (?, ?, ?, ?, ?)',
        [load_id, target, mode, rows, now],
    )


def _is_duplicate_ledger(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (("duplicate key" in text or "conflict" in text) and "load_id" in text) or (
        "conflict" in text and LEDGER in text
    )


def _recorded_after_conflict(con: duckdb.DuckDBPyConnection, load_id: str) -> int | None:
    with contextlib.suppress(Exception):
        return _ledger_lookup(con, load_id)
    return None


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
        if _has_type(f.type, lambda t: pa.types.is_decimal256(t) and t.precision > 38):
            raise UnsupportedOperationError(
                f"Column {f.name!r} has type {f.type}: DuckDB decimals hold at most 38 digits.",
                connector=CONNECTOR,
                column=f.name,
                hint="Cast it to decimal128(38, s) (or float64, or text) in a transform.",
            )


def _has_type(t: pa.DataType, test: Any) -> bool:
    if test(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_type(t.value_type, test)
    if isinstance(t, pa.ExtensionType):
        return _has_type(t.storage_type, test)
    return any(_has_type(t.field(i).type, test) for i in range(t.num_fields))


def _merge_options(
    schema: pa.Schema, keys: list[str] | None, options: Mapping[str, Any] | None
) -> str | None:
    """Check merge keys and options against the data's schema; the soft-delete column."""
    opts = dict(options or {})
    soft = opts.pop("soft_delete_column", None)
    if opts:
        name = sorted(opts)[0]
        raise ConfigError(
            f"Unknown write option {name!r} for a duckdb merge.",
            connector=CONNECTOR,
            hint=choices_hint(name, _MERGE_OPTIONS, "options"),
        )
    if not keys:
        raise ConfigError(
            "mode: merge on duckdb needs the key columns that identify a row.",
            connector=CONNECTOR,
            hint="Set `keys: [id]` (one or more columns) on the load step.",
        )
    names = schema.names
    folded = [n.casefold() for n in names]
    if len(set(folded)) != len(folded):
        raise ConfigError(
            "The data has two columns with the same name (DuckDB ignores case in names); "
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
