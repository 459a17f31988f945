"""The Delta side of a write: commit metadata, the merge (upsert) path, error text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa  # type: ignore[import-untyped]
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)

from headwater.lake.history import MODE_KEY, ROWS_KEY, RUN_ID_KEY, SCHEMA_VERSION_KEY
from headwater.lake.merge import check_keys, dedupe_last, merge_predicate
from headwater.lake.schema import WritePlan

__all__ = ["TARGET_FILE_SIZE", "PreparedWrite", "commit_metadata", "error_text", "run_merge"]

TARGET_FILE_SIZE = 128 * 1024 * 1024
_BACKTRACE = re.compile(r"\n\s*(?:0:|Stack backtrace:|Caused by:)")


@dataclass(frozen=True)
class PreparedWrite:
    """Everything decided about a write before its data starts to flow."""

    dataset: str
    location: str
    storage_options: dict[str, str] | None
    table: DeltaTable | None
    plan: WritePlan
    mode: str
    keys: Sequence[str]
    run_id: str | None
    schema_version: int
    extra_metadata: dict[str, str] | None = None
    """More custom commit metadata (e.g. a checkpoint committed with the data)."""
    transaction: tuple[str, int] | None = None
    """A Delta application transaction ``(app_id, version)`` recorded in the same commit."""


def commit_metadata(prepared: PreparedWrite, rows: int | None) -> dict[str, str]:
    """Custom metadata of the commit: run id, mode, schema version, and rows when known.

    Commit properties are fixed before a streamed input is consumed, so the row count of a
    streamed append or overwrite is not known here; Delta records it as ``num_added_rows``.
    """
    meta = {MODE_KEY: prepared.mode, SCHEMA_VERSION_KEY: str(prepared.schema_version)}
    if prepared.run_id is not None:
        meta[RUN_ID_KEY] = prepared.run_id
    if rows is not None:
        meta[ROWS_KEY] = str(rows)
    if prepared.extra_metadata:
        meta.update(prepared.extra_metadata)
    return meta


def commit_properties(prepared: PreparedWrite, rows: int | None) -> CommitProperties:
    """Commit metadata plus the application transaction, when the write carries one."""
    transactions = None
    if prepared.transaction is not None:
        app_id, version = prepared.transaction
        transactions = [Transaction(app_id=app_id, version=version)]
    return CommitProperties(
        custom_metadata=commit_metadata(prepared, rows), app_transactions=transactions
    )


def error_text(exc: BaseException) -> str:
    """A native error's message without the Rust backtrace that may follow it."""
    text = str(exc).strip() or type(exc).__name__
    return _BACKTRACE.split(text, maxsplit=1)[0].strip()


def stream_write(
    prepared: PreparedWrite, data: pa.RecordBatchReader | pa.Table, rows: int | None
) -> DeltaTable:
    """Append or overwrite ``data`` in one commit (creating the table when it is missing)."""
    plan, table = prepared.plan, prepared.table
    schema_mode: Literal["merge", "overwrite"] | None = None
    if table is not None and plan.change == "replaced":
        schema_mode = "overwrite"
    elif table is not None and plan.change == "evolved":
        schema_mode = "merge"
    target: DeltaTable | str = table if table is not None else prepared.location
    options: dict[str, Any] = {
        "schema_mode": schema_mode,
        "storage_options": None if table is not None else prepared.storage_options,
        "target_file_size": TARGET_FILE_SIZE,
        "commit_properties": commit_properties(prepared, rows),
    }
    if prepared.mode == "overwrite":
        write_deltalake(target, data, mode="overwrite", **options)
    else:
        write_deltalake(target, data, mode="append", **options)
    if table is not None:
        return table
    return DeltaTable(prepared.location, storage_options=prepared.storage_options)


def _merge_writer_properties(schema: pa.Schema) -> WriterProperties | None:
    """No Parquet statistics for top-level string and binary columns of merge output.

    deltalake's merge writes those columns as Arrow string/binary *views*, and pyarrow (26)
    has no comparison kernels for views: a pushed-down filter that meets view statistics
    fails ("no kernel matching input types (string, string_view)"), in ``read(filter=...)``
    and in DuckDB scans alike. Without statistics pyarrow filters the rows after casting them
    to the dataset's types, which works; see also :mod:`headwater.lake.scan`.
    """
    names = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    if not names:
        return None
    no_stats = ColumnProperties(statistics_enabled="NONE")
    return WriterProperties(column_properties={name: no_stats for name in names})


def run_merge(prepared: PreparedWrite, stream: Iterator[pa.RecordBatch]) -> tuple[DeltaTable, int]:
    """Upsert the stream on the dataset's keys; returns the table and the rows upserted.

    The source is deduplicated by key first, keeping the last occurrence of each key, so a
    key repeated within one write yields one row, never two.
    """
    keys, plan = prepared.keys, prepared.plan
    source = pa.Table.from_batches(list(stream), schema=plan.schema)
    check_keys(source, keys, prepared.dataset)
    source = dedupe_last(source, keys)
    rows = source.num_rows
    table = prepared.table
    if table is None or rows == 0:
        # a missing table is created; an empty upsert still records one (empty) commit
        return stream_write(prepared, source, rows), rows
    table.merge(
        source,
        predicate=merge_predicate(keys),
        source_alias="s",
        target_alias="t",
        merge_schema=plan.change == "evolved",
        streamed_exec=False,  # a materialized source lets Delta prune the files it rewrites
        writer_properties=_merge_writer_properties(plan.schema),
        commit_properties=commit_properties(prepared, rows),
    ).when_matched_update_all().when_not_matched_insert_all().execute()
    return table, rows
