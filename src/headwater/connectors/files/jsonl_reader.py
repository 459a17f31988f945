"""JSON Lines through DuckDB; lines that are not JSON or do not fit go to the reject gate.

DuckDB's ``read_json`` has no rejects table and its ``ignore_errors`` turns a bad
line into a row of NULLs (and a value that does not cast into a silent NULL), so it
is not used to skip errors. Instead:

1. Fast path: ``read_json(..., format='newline_delimited', columns=<schema>)`` in
   strict mode, streamed with ``to_arrow_reader``. Files without bad lines never
   leave it.
2. On the first error, the reader switches to the block path
   (:mod:`headwater.connectors.files.jsonl_blocks`) for the rest of the stream:
   blocks of ~8 MiB go through ``read_json`` one by one, and only a block that
   fails is parsed line by line (in one DuckDB query per block) to name each bad
   line. Rows the fast path already yielded are skipped, so nothing is doubled:
   DuckDB preserves insertion order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.files.duck import lit, named_args
from headwater.connectors.files.jsonl_blocks import infer_from_objects, read_blocks
from headwater.connectors.files.options import ReadOptions
from headwater.connectors.files.reading import (
    RejectGate,
    bind,
    empty_batch,
    is_data_error,
    scan_error,
    text_head,
)
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import SourceFormatError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["jsonl_schema", "read_jsonl"]


def read_jsonl(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    files: Sequence[FileRef],
    opts: ReadOptions,
    *,
    columns: list[str] | None,
    predicate: str | None,
    limit: int | None,
    gate: RejectGate,
) -> Iterator[pa.RecordBatch]:
    """Yield the batches of ``files``; bad lines go to ``gate`` as they are found."""
    import duckdb

    struct = _columns(con, storage, files, opts)
    source = _source(files, opts, struct)
    yielded = 0
    schema: pa.Schema | None = None
    try:
        reader = bind(con, source, columns, predicate, limit).to_arrow_reader(opts.batch_rows)
        schema = reader.schema
        for batch in reader:
            if batch.num_rows:
                yielded += batch.num_rows
                yield batch
        bad_line = False
    except (duckdb.Error, OSError) as exc:
        if not is_data_error(exc):
            raise scan_error(exc, files) from None
        bad_line = True  # continue on the line path below
    if bad_line:
        remaining = None if limit is None else limit - yielded
        if remaining != 0:
            for batch in read_blocks(
                con,
                storage,
                files,
                compression=opts.compression,
                batch_rows=opts.batch_rows,
                struct=struct,
                columns=columns,
                predicate=predicate,
                remaining=remaining,
                skip=yielded,
                gate=gate,
            ):
                yielded += batch.num_rows
                yield batch
    if not yielded:  # no rows: one empty batch, so the consumer still learns the schema
        if schema is None:
            schema = bind(con, source, columns, predicate, 0).to_arrow_table().schema
        yield empty_batch(schema)


def jsonl_schema(
    con: duckdb.DuckDBPyConnection, storage: Storage, files: Sequence[FileRef], opts: ReadOptions
) -> pa.Schema:
    struct = _columns(con, storage, files, opts)
    rel = con.sql(f"SELECT * FROM {_source(files, opts, struct)} LIMIT 0")
    schema: pa.Schema = rel.to_arrow_table().schema
    return schema


def _source(files: Sequence[FileRef], opts: ReadOptions, struct: dict[str, str]) -> str:
    args: dict[str, Any] = {
        "format": "newline_delimited",
        "records": True,
        "columns": struct,
        "compression": None if opts.compression == "auto" else opts.compression,
    }
    return f"read_json({lit([f.uri for f in files])}{named_args(args)})"


def _columns(
    con: duckdb.DuckDBPyConnection, storage: Storage, files: Sequence[FileRef], opts: ReadOptions
) -> dict[str, str]:
    """Explicit ``schema``, else the types DuckDB infers from a sample (bad lines ignored)."""
    import duckdb

    text_head(storage, files[0], opts.compression, "utf-8")  # refuses binary files
    if opts.columns_schema:
        return dict(opts.columns_schema)
    args: dict[str, Any] = {
        "format": "newline_delimited",
        "records": True,
        "ignore_errors": True,
        "sample_size": opts.sample_size,
        "compression": None if opts.compression == "auto" else opts.compression,
    }
    try:
        rel = con.sql(f"SELECT * FROM read_json({lit([f.uri for f in files])}{named_args(args)})")
        struct = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
    except duckdb.Error:  # lines that are not objects in the sample
        struct = infer_from_objects(con, storage, files[0], opts.compression, opts.sample_size)
    if not struct or list(struct) == ["json"]:
        raise SourceFormatError(
            f"{files[0].uri} holds no JSON objects to infer columns from.",
            connector=CONNECTOR,
            location=files[0].uri,
            hint="JSON Lines files hold one JSON object per line; or pass options.schema.",
        )
    return struct
