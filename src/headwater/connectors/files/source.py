"""The ``files`` source: CSV, JSON Lines and Parquet streams as Arrow batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from headwater.connectors.base import RejectSink, Stream
from headwater.connectors.files.csv_reader import csv_schema, read_csv
from headwater.connectors.files.duck import connect, first_line, lit, named_args
from headwater.connectors.files.factory import FilesConfig
from headwater.connectors.files.jsonl_reader import jsonl_schema, read_jsonl
from headwater.connectors.files.options import ReadOptions, parse_options
from headwater.connectors.files.reading import RejectGate, bind, scan
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import (
    ConfigError,
    HeadwaterError,
    SourceFormatError,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["FilesSource"]

_CSV_ONLY = ("delimiter", "quote", "escape", "header", "null_values")


class _Reader(Protocol):
    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        storage: Storage,
        files: Sequence[FileRef],
        opts: ReadOptions,
        *,
        columns: list[str] | None,
        predicate: str | None,
        limit: int | None,
        gate: RejectGate,
    ) -> Iterator[pa.RecordBatch]: ...


class FilesSource:
    """Reads ``stream`` (a file, a glob or a directory relative to the base path)."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.storage = Storage(config)

    def check(self) -> None:
        self.storage.check()

    def discover(self) -> list[Stream]:
        """One stream per data file under the base, with its inferred Arrow schema."""
        refs = self.storage.list_all(self.config.format)
        con = connect(self.storage)
        streams = []
        try:
            for ref in refs:
                fmt = ref.format or self.config.format or "csv"
                try:
                    schema = _schema(con, self.storage, [ref], fmt, ReadOptions())
                    streams.append(Stream(ref.rel, schema, description=f"{fmt} file"))
                except HeadwaterError as exc:
                    streams.append(Stream(ref.rel, None, description=f"unreadable: {exc.message}"))
        finally:
            con.close()
        return streams

    def read(
        self,
        stream: str,
        *,
        columns: list[str] | None = None,
        predicate: str | None = None,
        limit: int | None = None,
        state: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        rejects: RejectSink | None = None,
        order_by: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``stream``; projection, predicate and limit run inside DuckDB.

        Options, the files and the format are checked before this returns; the files
        are read lazily. ``state`` is ignored (the connector is not incremental).
        Rejected records go to ``rejects``; with no sink, the read raises
        SourceFormatError after the last batch if any record was rejected.
        """
        opts = parse_options(ReadOptions, options, "read")
        if order_by:
            raise UnsupportedOperationError(
                f"The files connector reads {stream!r} in file order; it cannot sort by "
                f"{', '.join(order_by)}.",
                connector=CONNECTOR,
                hint="Incremental cursors need a database source; for files, extract them "
                "whole (mode: append with new file names, or overwrite).",
            )
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}.", connector=CONNECTOR)
        files = self.storage.resolve(stream, fmt=opts.format, default_fmt=self.config.format)
        fmt = self._format(stream, files, opts)
        _check_applicable(fmt, opts)
        reader: _Reader = {"csv": read_csv, "jsonl": read_jsonl, "parquet": _read_parquet}[fmt]
        gate = RejectGate(rejects, stream)
        return self._read(reader, files, opts, columns, predicate, limit, gate)

    def _read(
        self,
        reader: _Reader,
        files: list[FileRef],
        opts: ReadOptions,
        columns: list[str] | None,
        predicate: str | None,
        limit: int | None,
        gate: RejectGate,
    ) -> Iterator[pa.RecordBatch]:
        con = connect(self.storage)
        try:
            yield from reader(
                con,
                self.storage,
                files,
                opts,
                columns=list(columns) if columns else None,
                predicate=predicate,
                limit=limit,
                gate=gate,
            )
        finally:
            con.close()
        gate.finish()

    def _format(self, stream: str, files: list[FileRef], opts: ReadOptions) -> str:
        """``options.format``, else each file's extension, else the connection's ``format``."""
        if opts.format:
            return opts.format
        unknown = next((f for f in files if not (f.format or self.config.format)), None)
        if unknown is not None:
            raise ConfigError(
                f"Cannot tell the format of {unknown.rel} from its extension.",
                connector=CONNECTOR,
                location=unknown.uri,
                hint="Set options.format (or the connection's `format`) to one of csv, jsonl, "
                "parquet.",
            )
        formats = sorted({f.format or self.config.format or "" for f in files})
        if len(formats) > 1:
            raise ConfigError(
                f"Stream {stream!r} mixes formats: {', '.join(formats)}.",
                connector=CONNECTOR,
                hint="Narrow the glob to one format, or set options.format.",
            )
        return formats[0]


def _check_applicable(fmt: str, opts: ReadOptions) -> None:
    """Refuse options that do not apply to ``fmt`` instead of silently ignoring them."""
    given = opts.model_fields_set
    wrong: list[str] = []
    if fmt != "csv":
        wrong += [k for k in (*_CSV_ONLY, "skip_rows") if k in given]
        if opts.encoding != "utf-8":
            wrong.append("encoding")
    if fmt == "parquet":
        wrong += [k for k in ("sample_size",) if k in given]
        if opts.columns_schema is not None:
            wrong.append("schema")
        if opts.compression != "auto":
            wrong.append("compression")
    if wrong:
        raise ConfigError(
            f"Option {wrong[0]!r} does not apply to {fmt} files.",
            connector=CONNECTOR,
            field=f"options.{wrong[0]}",
            hint="CSV-only: delimiter, quote, escape, header, null_values, skip_rows, "
            "encoding. Parquet files carry their own schema and compression.",
        )


def _schema(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    files: Sequence[FileRef],
    fmt: str,
    opts: ReadOptions,
) -> pa.Schema:
    if fmt == "csv":
        return csv_schema(con, storage, files, opts)
    if fmt == "jsonl":
        return jsonl_schema(con, storage, files, opts)
    rel = _parquet_relation(con, files, opts, lambda src: con.sql(f"SELECT * FROM {src} LIMIT 0"))
    schema: pa.Schema = rel.to_arrow_table().schema
    return schema


def _read_parquet(
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
    rel = _parquet_relation(con, files, opts, lambda src: bind(con, src, columns, predicate, limit))
    yield from scan(rel, opts.batch_rows, files)


def _parquet_relation(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[FileRef],
    opts: ReadOptions,
    make: Callable[[str], duckdb.DuckDBPyRelation],
) -> duckdb.DuckDBPyRelation:
    import duckdb

    args = {"union_by_name": opts.union_by_name or None}
    source = f"read_parquet({lit([f.uri for f in files])}{named_args(args)})"
    try:
        rel: duckdb.DuckDBPyRelation = make(source)
        return rel
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        named = next((f.uri for f in files if f.uri in str(exc)), files[0].uri)
        raise SourceFormatError(
            f"Cannot read {named} as Parquet: {first_line(exc)}",
            connector=CONNECTOR,
            location=named,
            hint="Check the file, or set options.format if it is not Parquet.",
        ) from None
