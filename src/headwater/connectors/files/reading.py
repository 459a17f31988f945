"""Pieces every file reader shares: the reject gate, the text sniff, query binding, scans."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from headwater.connectors.base import Reject, RejectSink
from headwater.connectors.files.duck import first_line, ident
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import (
    ConfigError,
    ConnectorError,
    QueryError,
    SourceFormatError,
    choices_hint,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "RejectGate",
    "bind",
    "empty_batch",
    "is_data_error",
    "read_head",
    "scan",
    "scan_error",
    "select_sql",
    "text_head",
]

HEAD_BYTES = 1 << 16
_EXAMPLES = 5


class RejectGate:
    """Forwards rejects to the caller's sink; with no sink, fails the read at the end.

    A read never drops a record silently: either the sink takes it (the runner
    quarantines it) or :meth:`finish` raises SourceFormatError naming file:line.
    """

    def __init__(self, sink: RejectSink | None, stream: str) -> None:
        self.sink = sink
        self.stream = stream
        self.count = 0
        self.examples: list[Reject] = []

    def add(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        self.count += len(rejects)
        if self.sink is not None:
            self.sink.add(rejects)
        elif len(self.examples) < _EXAMPLES:
            self.examples.extend(rejects[: _EXAMPLES - len(self.examples)])

    def finish(self) -> None:
        if self.sink is not None or not self.count:
            return
        first = self.examples[0]
        where = f"{first.source_file}:{first.source_line}" if first.source_line else None
        more = "".join(f"\n  {r.source_file}:{r.source_line}: {r.error}" for r in self.examples[1:])
        hint = (
            "Pass a rejects sink to read(..., rejects=...) to accept bad records (a "
            "pipeline run quarantines them), or fix the file or the `schema` option."
        )
        if any("INVALID ENCODING" in r.error for r in self.examples):
            hint = "Set options.encoding (utf-8, latin-1, utf-16) to the file's encoding. " + hint
        raise SourceFormatError(
            f"{self.count} record(s) of {self.stream!r} could not be read; first at "
            f"{where or first.source_file}: {first.error} (record: {first.raw_record[:200]!r})"
            + more,
            connector=CONNECTOR,
            location=where,
            column=first.column,
            hint=hint,
            rejected=self.count,
        )


def read_head(storage: Storage, file: FileRef, compression: str, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes (64 KiB) of ``file``, decompressed."""
    import pyarrow as pa

    codec = file.compression if compression == "auto" else compression
    with storage.errors(f"reading {file.rel!r}"), storage.open_input(file.path) as raw:
        if not codec or codec == "none":
            data: bytes = raw.read(size)
            return data
        try:
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)
            return bytes(stream.read(size))
        except (OSError, ValueError, pa.ArrowException):
            raise SourceFormatError(
                f"{file.rel} is not valid {codec} data.",
                connector=CONNECTOR,
                location=file.uri,
                hint="Set options.compression ('none' when the file is not compressed).",
            ) from None


def text_head(
    storage: Storage, file: FileRef, compression: str, encoding: str, size: int = HEAD_BYTES
) -> str:
    """Decoded head of a text file, whole lines only; SourceFormatError if it is binary."""
    raw = read_head(storage, file, compression, size)
    if encoding == "utf-16":
        text = raw[: len(raw) - len(raw) % 2].decode("utf-16", errors="replace")
        binary = "\x00" in text
    else:
        binary = b"\x00" in raw
        text = raw.decode(encoding, errors="replace")
    if binary:
        raise SourceFormatError(
            f"{file.rel} is not a text file: it holds binary data.",
            connector=CONNECTOR,
            location=file.uri,
            hint="If it is compressed, name it .gz/.zst or set options.compression; if it is "
            "Parquet, set format='parquet'; if it is UTF-16 text, set options.encoding.",
        )
    if len(raw) >= size and "\n" in text:  # drop the line cut in half
        text = text[: text.rindex("\n")]
    return text


def select_sql(
    source: str, columns: list[str] | None, predicate: str | None, limit: int | None
) -> str:
    cols = ", ".join(ident(c) for c in columns) if columns else "*"
    sql = f"SELECT {cols} FROM {source}"
    if predicate:
        sql += f" WHERE ({predicate})"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


def bind(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: list[str] | None,
    predicate: str | None,
    limit: int | None,
) -> duckdb.DuckDBPyRelation:
    """Bind ``SELECT columns FROM source WHERE predicate LIMIT limit``.

    Unknown columns raise ConfigError listing the available ones; a predicate that
    does not parse or bind raises QueryError. Other DuckDB errors propagate.
    """
    import duckdb

    try:
        return con.sql(select_sql(source, columns, predicate, limit))
    except (duckdb.BinderException, duckdb.ParserException) as exc:
        available = con.sql(f"SELECT * FROM {source}").columns
        missing = [c for c in columns or [] if c not in available]
        if missing:
            raise ConfigError(
                f"Column {missing[0]!r} is not in the stream.",
                connector=CONNECTOR,
                column=missing[0],
                hint=choices_hint(missing[0], available, "columns"),
            ) from None
        raise QueryError(
            f"The predicate {predicate!r} does not apply to this stream: {first_line(exc)}",
            connector=CONNECTOR,
            hint=f"Columns: {', '.join(available)}.",
        ) from None


def scan(
    rel: duckdb.DuckDBPyRelation, batch_rows: int, files: Sequence[FileRef]
) -> Iterator[pa.RecordBatch]:
    """Stream ``rel`` as Arrow batches, turning DuckDB failures into our errors.

    A scan without rows yields one empty batch, so the consumer still learns the schema.
    """
    import duckdb

    try:
        reader = rel.to_arrow_reader(batch_rows)
        rows = 0
        for batch in reader:
            if batch.num_rows:
                rows += batch.num_rows
                yield batch
        if not rows:
            yield empty_batch(reader.schema)
    except (duckdb.Error, OSError) as exc:
        raise scan_error(exc, files) from None


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A batch of no rows with ``schema``: what a read without rows yields."""
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def is_data_error(exc: BaseException) -> bool:
    """A DuckDB error about the data (not I/O); the Arrow stream re-raises it as OSError."""
    import duckdb

    if isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException):
        return True
    return str(exc).startswith(("Invalid Input Error", "Conversion Error"))


def scan_error(exc: BaseException, files: Sequence[FileRef]) -> ConnectorError:
    named = _named_file(exc, files)
    if is_data_error(exc):
        return SourceFormatError(
            f"Cannot read {named}: {first_line(exc)}", connector=CONNECTOR, location=named
        )
    return ConnectorError(
        f"Reading {named} failed: {first_line(exc)}", connector=CONNECTOR, location=named
    )


def _named_file(exc: BaseException, files: Sequence[FileRef]) -> str:
    text = str(exc)
    for file in files:
        if file.uri in text or file.path in text:
            return file.uri
    return files[0].uri if len(files) == 1 else f"{files[0].uri} (and {len(files) - 1} more)"
