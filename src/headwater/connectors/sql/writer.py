"""The write plumbing the file-backed SQL destinations (``sqlite``, ``duckdb``) share.

A :class:`FileWriter` runs one load as one database transaction: argument checks, the
``_headwater_loads`` ledger (a load id already recorded returns its row count without
reading the input), the schema-contract plan, the conformed and counted input stream
(numbered in stream order for a merge) and the error mapping. A connector's subclass
supplies what its database does differently: how a transaction opens, how the table
is looked up and how the rows of the three modes reach it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

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
from headwater.connectors.sql.client import FileDatabaseClient, first_line, quote_ident
from headwater.crashpoints import crash_point
from headwater.errors import (
    ConfigError,
    ConnectorError,
    HeadwaterError,
    SchemaIncompatibleError,
    choices_hint,
)

__all__ = [
    "LEDGER",
    "SEQ",
    "Dialect",
    "FileWriter",
    "Progress",
    "WriteJob",
    "WritePlan",
    "dedup_sql",
    "has_column",
    "ledger_ddl",
    "ledger_insert_sql",
    "ledger_lookup_sql",
    "may_repeat",
    "merge_result",
    "plan_write",
    "staging_name",
    "stream_batches",
    "text_extensions",
    "write_hint",
]

LEDGER = "_headwater_loads"
SEQ = "__hw_seq"
_MODES = ("append", "overwrite", "merge")
_MERGE_OPTIONS = ("soft_delete_column",)
_UUID = pa.uuid()
_JSON = pa.json_()

Tx = TypeVar("Tx")
Con = TypeVar("Con")


@dataclass(frozen=True)
class Dialect:
    """How a connector names itself in messages."""

    connector: str  # the connector name: ``sqlite``, ``duckdb``
    product: str  # the database's own name: ``SQLite``, ``DuckDB``


@dataclass
class Progress:
    """What went through the stream: input bytes, rows written, the caller's own error."""

    rows: int = 0
    bytes: int = 0
    error: BaseException | None = None
    keys_seen: list[pa.RecordBatch] = field(default_factory=list)


@dataclass
class WriteJob:
    """One write: its checked arguments, and what it gathers as the rows go through."""

    target: str
    batches: pa.RecordBatchReader
    mode: WriteMode
    keys: list[str] | None
    soft: str | None  # the merge's soft-delete column
    contract: SchemaContract
    rejects: RejectSink | None
    progress: Progress = field(default_factory=Progress)
    details: dict[str, Any] = field(default_factory=dict)  # WriteResult.details


class FileWriter(ABC, Generic[Con, Tx]):
    """One load into one table of a database file, in one transaction.

    ``Con`` is the connector's connection, ``Tx`` what statements run on inside the
    transaction (the connection itself, or a cursor of it).
    """

    dialect: Dialect

    def __init__(self, client: FileDatabaseClient[Any]) -> None:
        self.client = client
        self.file: Path = client.file

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
        d = self.dialect
        if mode not in _MODES:
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=d.connector,
                hint=f"Valid modes for {d.connector}: append, overwrite, merge.",
            )
        if not isinstance(target, str) or not target.strip():
            raise ConfigError("The target table name is empty.", connector=d.connector)
        if target.casefold() == LEDGER.casefold() or target.startswith("__hw_"):
            raise ConfigError(
                f"The target name {target!r} is reserved by Headwater.", connector=d.connector
            )
        contract = check_contract_name(schema_contract)
        soft = _merge_options(d, batches.schema, keys, options) if mode == "merge" else None
        if mode != "merge" and options:
            raise ConfigError(
                f"Unknown write option {sorted(options)[0]!r} for {d.connector}.",
                connector=d.connector,
                hint="Only mode: merge takes a write option (soft_delete_column).",
            )
        _check_load_id(d, load_id)
        self._check_storable(batches.schema)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorError(
                f"Cannot create the directory of the {d.product} database {str(self.file)!r}: "
                f"{first_line(exc)}",
                connector=d.connector,
                location=str(self.file),
                hint="Fix the connection's `path`, or create the directory with write access.",
            ) from None
        job = WriteJob(target, batches, mode, keys, soft, contract, rejects)
        with self._guard():
            return self._write(job, load_id)

    def _write(self, job: WriteJob, load_id: str | None) -> WriteResult:
        target, mode, progress, details = job.target, job.mode, job.progress, job.details
        con = self._open()
        details.update(mode=mode, table=target)
        if load_id is not None:
            details["load_id"] = load_id
        location = f"{self.file}#{target}"
        try:
            tx = self._begin(con, load_id)
            try:
                if load_id is not None:
                    recorded = self._ledger_lookup(tx, load_id)
                    if recorded is not None:
                        self._statement(tx, "ROLLBACK")
                        details["already_loaded"] = True
                        return WriteResult(rows=recorded, location=location, details=details)
                conformer = self._run(tx, job)
                details["rows_rejected"] = conformer.rows_rejected
                rows = int(details.pop("rows", progress.rows))
                if load_id is not None:
                    self._ledger_insert(tx, load_id, target, mode, rows)
                crash_point("load.before_commit")
                self._statement(tx, "COMMIT")
            finally:
                self._end(tx)
        except BaseException as exc:
            self._rollback(con)
            if progress.error is not None:
                raise progress.error from None
            if isinstance(exc, HeadwaterError) or not isinstance(exc, Exception):
                raise
            if load_id is not None:
                recorded = self._recorded_after_failure(con, exc, load_id)
                if recorded is not None:
                    details["already_loaded"] = True
                    return WriteResult(rows=recorded, location=location, details=details)
            special = self._special_error(exc, target)
            if special is not None:
                raise special from None
            raise ConnectorError(
                f"Writing table {target!r} to {str(self.file)!r} failed: {first_line(exc)}",
                connector=self.dialect.connector,
                location=str(self.file),
                hint=self._write_hint(exc),
            ) from exc
        finally:
            self._close(con)
        return WriteResult(rows=rows, bytes=progress.bytes, location=location, details=details)

    # -- what each database does its own way -----------------------------------------------
    def _guard(self) -> contextlib.AbstractContextManager[object]:
        """Held around the whole write (nothing by default)."""
        return contextlib.nullcontext()

    @abstractmethod
    def _check_storable(self, schema: pa.Schema) -> None: ...

    @abstractmethod
    def _open(self) -> Con: ...

    @abstractmethod
    def _close(self, con: Con) -> None: ...

    @abstractmethod
    def _begin(self, con: Con, load_id: str | None) -> Tx:
        """Open the write transaction (the ledger table exists after it when ``load_id``)."""

    def _end(self, tx: Tx) -> None:
        """Release what :meth:`_begin` took, committed or not (nothing by default)."""

    @abstractmethod
    def _statement(self, tx: Tx, sql: str) -> None: ...

    @abstractmethod
    def _rollback(self, con: Con) -> None: ...

    @abstractmethod
    def _ledger_lookup(self, tx: Tx, load_id: str) -> int | None: ...

    @abstractmethod
    def _ledger_insert(self, tx: Tx, load_id: str, target: str, mode: str, rows: int) -> None: ...

    def _recorded_after_failure(self, con: Con, exc: Exception, load_id: str) -> int | None:
        """The row count of ``load_id`` when the failure was another writer loading it first."""
        return None

    @abstractmethod
    def _special_error(self, exc: Exception, target: str) -> HeadwaterError | None:
        """The error for a failure of the database's own kind (a lock, a conflict), if any."""

    @abstractmethod
    def _write_hint(self, exc: BaseException) -> str: ...

    @abstractmethod
    def _run(self, tx: Tx, job: WriteJob) -> Conformer:
        """Write the rows (the mode's statements), inside the open transaction."""


# -- the contract plan ---------------------------------------------------------------------


@dataclass(frozen=True)
class WritePlan:
    """The contract plan of one write and what rides along with the rows."""

    plan: ContractPlan
    conformer: Conformer
    keys: list[str] | None  # the merge keys as the table spells them
    extra_names: set[str]  # columns that travel with the rows but are not the table's data


def plan_write(dialect: Dialect, job: WriteJob, name: str, existing: pa.Schema | None) -> WritePlan:
    """Plan the job's input into table ``name`` (Arrow schema ``existing``, None when missing)."""
    raw, mode, keys, soft, contract = job.batches.schema, job.mode, job.keys, job.soft, job.contract
    # an existing table's JSON and UUID columns read as text: compare and send text
    incoming = raw if existing is None else text_extensions(raw)
    extra: list[pa.Field] = []
    if mode == "merge":
        extra.append(pa.field(SEQ, pa.int64()))
        if soft and not has_column(existing, soft):
            extra.append(pa.field(soft, incoming.field(soft).type))
    if mode == "overwrite" and (contract == "evolve" or existing is None):
        plan = plan_contract(name, None, raw, contract)
    else:
        base = existing
        if base is not None and extra:
            base = pa.schema([*base, *extra])
        plan = plan_contract(name, base, _with(incoming, extra), contract, case_insensitive=True)
    conformer = Conformer(plan, _WithoutSeq(job.rejects) if job.rejects is not None else None)
    if mode == "merge" and keys:
        keys = [_written_name(dialect, plan, k, name) for k in keys]
    return WritePlan(plan, conformer, keys, {f.name for f in extra})


def has_column(schema: pa.Schema | None, name: str) -> bool:
    return schema is not None and any(f.name.casefold() == name.casefold() for f in schema)


def _with(schema: pa.Schema, extra: list[pa.Field]) -> pa.Schema:
    names = {f.name for f in schema}
    return pa.schema([*schema, *(f for f in extra if f.name not in names)])


def _written_name(dialect: Dialect, plan: ContractPlan, key: str, table: str) -> str:
    for f in plan.schema:
        if f.name.casefold() == key.casefold():
            return str(f.name)
    raise ConfigError(
        f"Merge key {key!r} is not a column of table {table!r} (schema contract "
        f"{plan.contract!r} does not add it).",
        connector=dialect.connector,
        column=key,
        hint="Use `schema_contract: evolve`, or merge on columns the table has.",
    )


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
    if not isinstance(record, dict) or SEQ not in record:
        return reject
    record.pop(SEQ)
    raw = json.dumps(record, default=str, ensure_ascii=False)
    return dataclasses.replace(reject, raw_record=raw)


# -- streams ---------------------------------------------------------------------------------


def stream_batches(
    dialect: Dialect,
    batches: pa.RecordBatchReader,
    conformer: Conformer,
    progress: Progress,
    keys: list[str] | None,
    *,
    to_text: Callable[[pa.Array], pa.Array],
    convert: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
) -> Iterator[pa.RecordBatch]:
    """``batches`` conformed to the plan, counted as they go (then ``convert``-ed).

    Into an existing table, JSON and UUID columns go as text (``to_text`` makes it).
    For a merge (``keys`` given) each row is numbered in stream order before it is
    conformed, and a null key is refused. An error raised here is kept in ``progress``:
    the driver wraps it in its own.
    """
    numbered = keys is not None
    text = not conformer.plan.created
    start = 0
    try:
        for batch in batches:
            progress.bytes += batch.nbytes
            if text:
                batch = _text_extension_values(batch, to_text)
            if numbered:
                n = batch.num_rows
                seq = pa.array(range(start, start + n), pa.int64())
                start += n
                batch = pa.RecordBatch.from_arrays(
                    [*batch.columns, seq],
                    schema=batch.schema.append(pa.field(SEQ, pa.int64())),
                )
            batch = conformer(batch)
            if numbered:
                assert keys is not None
                _refuse_null_keys(dialect, batch, keys)
                progress.keys_seen.append(batch.select(keys))
            progress.rows += batch.num_rows
            yield batch if convert is None else convert(batch)
    except BaseException as exc:
        progress.error = exc
        raise


def text_extensions(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        pa.field(f.name, pa.string(), f.nullable, f.metadata) if f.type in (_UUID, _JSON) else f
        for f in schema
    )


def _text_extension_values(
    batch: pa.RecordBatch, to_text: Callable[[pa.Array], pa.Array]
) -> pa.RecordBatch:
    if not any(t in (_UUID, _JSON) for t in batch.schema.types):
        return batch
    arrays = [to_text(c) if c.type in (_UUID, _JSON) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=text_extensions(batch.schema))


def _refuse_null_keys(dialect: Dialect, batch: pa.RecordBatch, keys: list[str]) -> None:
    for key in keys:
        nulls = batch.column(batch.schema.get_field_index(key)).null_count
        if nulls:
            raise SchemaIncompatibleError(
                f"Merge key {key!r} is null in {nulls} incoming row(s); a null key can never "
                "match a row, so the merge was refused (nothing written).",
                connector=dialect.connector,
                column=key,
                hint=f"Filter out or fill the rows where {key!r} is null in a transform.",
            )


# -- merge ---------------------------------------------------------------------------------


def may_repeat(seen: list[pa.RecordBatch], keys: list[str]) -> bool:
    """False when no key occurs twice in the stream (the de-duplication pass is skipped)."""
    if not seen:
        return False
    try:
        table = pa.Table.from_batches(seen)
        return bool(table.group_by(keys).aggregate([]).num_rows != table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return True


def dedup_sql(stage: str, keys: Sequence[str]) -> str:
    """Delete all but the last occurrence (in stream order) of each key from ``stage``."""
    key_list = ", ".join(quote_ident(k) for k in keys)
    seq = quote_ident(SEQ)
    return (
        f"DELETE FROM {stage} WHERE {seq} NOT IN "
        f"(SELECT max({seq}) FROM {stage} GROUP BY {key_list})"
    )


def merge_result(
    progress: Progress,
    keys: list[str],
    *,
    inserted: int,
    updated: int,
    deleted: int,
    duplicates: int,
) -> dict[str, Any]:
    """The details of a merge (``rows``: the rows written, each key once)."""
    return {
        "rows": progress.rows - duplicates,
        "keys": list(keys),
        "inserted": inserted,
        "updated": updated,
        "deleted": deleted,
        "duplicates": duplicates,
    }


# -- ledger --------------------------------------------------------------------------------


def ledger_ddl(qualified: str, *, not_null: bool) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified} ("
        f'"load_id" VARCHAR(128) PRIMARY KEY{" NOT NULL" if not_null else ""}, '
        '"target_table" VARCHAR(1024), "mode" VARCHAR(16), "rows" BIGINT, '
        '"committed_at" TIMESTAMP)'
    )


def ledger_lookup_sql(qualified: str) -> str:
    return f'SELECT "rows" FROM {qualified} WHERE "load_id" = ?'


def ledger_insert_sql(qualified: str) -> str:
    return (
        f'INSERT INTO {qualified} ("load_id", "target_table", "mode", "rows", '
        '"committed_at") VALUES (?, ?, ?, ?, ?)'
    )


# -- errors and argument checks ------------------------------------------------------------


def write_hint(exc: BaseException, more: Sequence[tuple[tuple[str, ...], str]] = ()) -> str:
    """The hint for a failed write: a constraint, then the first of ``more`` whose words
    the error contains, else that nothing was written."""
    text = str(exc).lower()
    if "constraint" in text:
        return (
            "The table's constraints (PRIMARY KEY, UNIQUE, NOT NULL, CHECK) refused a row; "
            "nothing was written. Use mode: merge with keys to upsert."
        )
    for words, hint in more:
        if any(w in text for w in words):
            return hint
    return "Nothing was written (the transaction was rolled back)."


def _check_load_id(dialect: Dialect, load_id: str | None) -> None:
    if load_id is None:
        return
    if not isinstance(load_id, str) or not load_id or len(load_id) > 128:
        raise ConfigError(
            f"load_id must be a non-empty string of at most 128 characters, got {load_id!r}.",
            connector=dialect.connector,
            field="load_id",
        )


def _merge_options(
    dialect: Dialect,
    schema: pa.Schema,
    keys: list[str] | None,
    options: Mapping[str, Any] | None,
) -> str | None:
    """Check merge keys and options against the data's schema; the soft-delete column."""
    c = dialect.connector
    opts = dict(options or {})
    soft = opts.pop("soft_delete_column", None)
    if opts:
        name = sorted(opts)[0]
        raise ConfigError(
            f"Unknown write option {name!r} for a {c} merge.",
            connector=c,
            hint=choices_hint(name, _MERGE_OPTIONS, "options"),
        )
    if not keys:
        raise ConfigError(
            f"mode: merge on {c} needs the key columns that identify a row.",
            connector=c,
            hint="Set `keys: [id]` (one or more columns) on the load step.",
        )
    names = schema.names
    folded = [n.casefold() for n in names]
    if len(set(folded)) != len(folded):
        raise ConfigError(
            f"The data has two columns with the same name ({dialect.product} ignores case in "
            "names); a merge cannot tell them apart.",
            connector=c,
            hint="Rename or drop the duplicate column in a transform.",
        )
    for key in keys:
        if not isinstance(key, str) or key not in names:
            raise ConfigError(
                f"Merge key {key!r} is not a column of the data.",
                connector=c,
                column=str(key),
                hint=choices_hint(str(key), names, "columns"),
            )
    if len({k.casefold() for k in keys}) != len(keys):
        raise ConfigError(
            f"Merge keys {keys!r} name a column twice.",
            connector=c,
            hint="List each key column once.",
        )
    if SEQ in names:
        raise ConfigError(f"The column name {SEQ!r} is reserved.", connector=c)
    if soft is None:
        return None
    if not isinstance(soft, str) or soft not in names:
        raise ConfigError(
            f"soft_delete_column {soft!r} is not a column of the data.",
            connector=c,
            field="options.soft_delete_column",
            hint=choices_hint(str(soft), names, "columns"),
        )
    if not pa.types.is_boolean(schema.field(soft).type):
        raise ConfigError(
            f"soft_delete_column {soft!r} must be a boolean column, not {schema.field(soft).type}.",
            connector=c,
            field="options.soft_delete_column",
        )
    if soft in keys:
        raise ConfigError(f"soft_delete_column {soft!r} cannot also be a merge key.", connector=c)
    return soft


def staging_name(kind: str) -> str:
    """A fresh name for a staging table (``__hw_staging_…``, ``__hw_merge_…``)."""
    return f"__hw_{kind}_{uuid.uuid4().hex[:12]}"
