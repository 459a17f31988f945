"""Stream an Arrow RecordBatchReader into one Parquet, CSV or JSON Lines file.

Parquet and CSV use pyarrow's writers (batches are buffered only up to a row group);
JSON Lines uses DuckDB's ``COPY ... (FORMAT json)`` reading the Arrow stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.connectors.files.duck import connect, first_line, lit
from headwater.connectors.files.options import WriteOptions
from headwater.connectors.files.storage import CONNECTOR, Storage
from headwater.errors import ConnectorError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["EXTENSIONS", "write_file"]

EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
COMPRESSION_EXTENSIONS = {"gzip": ".gz", "zstd": ".zst"}
_ROW_GROUP_BYTES = 128 << 20


def write_file(
    storage: Storage,
    path: str,
    reader: pa.RecordBatchReader,
    fmt: str,
    compression: str | None,
    opts: WriteOptions,
) -> int:
    """Write every batch of ``reader`` to ``path``; return the number of rows."""
    if fmt == "parquet":
        return _write_parquet(storage, path, reader, compression, opts)
    if fmt == "csv":
        return _write_csv(storage, path, reader, compression, opts)
    return _write_jsonl(storage, path, reader, compression)


def _write_parquet(
    storage: Storage,
    path: str,
    reader: pa.RecordBatchReader,
    compression: str | None,
    opts: WriteOptions,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    sink = storage.open_output(path)
    try:
        writer = pq.ParquetWriter(sink, reader.schema, compression=compression or "zstd")
        try:
            pending: list[pa.RecordBatch] = []
            pending_rows = pending_bytes = 0
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                pending_bytes += batch.nbytes
                if pending_rows >= opts.row_group_rows or pending_bytes >= _ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(pending, reader.schema))
                    rows += pending_rows
                    pending, pending_rows, pending_bytes = [], 0, 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, reader.schema))
                rows += pending_rows
        finally:
            writer.close()
    finally:
        sink.close()
    return rows


def _write_csv(
    storage: Storage,
    path: str,
    reader: pa.RecordBatchReader,
    compression: str | None,
    opts: WriteOptions,
) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _refuse_nested(reader.schema, "csv")
    rows = 0
    sink: pa.NativeFile = storage.open_output(path)
    try:
        if compression and compression != "none":
            sink = pa.CompressedOutputStream(sink, compression)
        options = pacsv.WriteOptions(include_header=opts.header, delimiter=opts.delimiter)
        with pacsv.CSVWriter(sink, reader.schema, write_options=options) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    finally:
        sink.close()
    return rows


def _write_jsonl(
    storage: Storage, path: str, reader: pa.RecordBatchReader, compression: str | None
) -> int:
    import duckdb

    con = connect(storage)
    try:
        con.register("hw_source", reader)
        codec = compression if compression in ("gzip", "zstd") else "none"
        result = con.execute(
            f"COPY hw_source TO {lit(storage.uri(path))} (FORMAT json, COMPRESSION {codec})"
        ).fetchall()
        return int(result[0][0]) if result else 0
    except duckdb.Error as exc:
        raise ConnectorError(
            f"Writing JSON Lines to {storage.uri(path)} failed: {first_line(exc)}",
            connector=CONNECTOR,
            location=storage.uri(path),
        ) from None
    finally:
        con.close()


def _refuse_nested(schema: pa.Schema, fmt: str) -> None:
    import pyarrow.types as pat

    for field in schema:
        if pat.is_nested(field.type):
            raise ConnectorError(
                f"Column {field.name!r} has nested type {field.type}, which {fmt} cannot hold.",
                connector=CONNECTOR,
                column=field.name,
                hint="Write parquet or jsonl, or flatten the column first.",
            )
