"""CSV through DuckDB's ``read_csv``, streamed as Arrow; bad lines go to the reject gate.

The scan is DuckDB's own: ``read_csv([...files], <pinned dialect and columns>,
store_rejects=true)`` streamed with ``to_arrow_reader`` (how the dialect is pinned:
:mod:`headwater.connectors.files.csv_dialect`). DuckDB records every line it cannot
parse or cast, with the file, the 1-based line number and the original text, in a
rejects table; it is read once the stream is consumed and handed to the gate, one
reject per bad line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import Reject
from headwater.connectors.files.csv_dialect import check_headers, pin_dialect
from headwater.connectors.files.duck import first_line, lit, named_args
from headwater.connectors.files.options import ReadOptions
from headwater.connectors.files.reading import RejectGate, bind, read_head, scan, text_head
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage, split_extension
from headwater.errors import SourceFormatError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["csv_schema", "read_csv"]

REJECTS_TABLE = "hw_rejects"
REJECTS_SCANS = "hw_rejects_scans"
# one reject per bad line: a line can fail in several ways (two casts, a quote and a count)
_REJECTS_SQL = f"""
SELECT s.file_path, e.line,
       min(e.column_name),
       string_agg(DISTINCT CAST(e.error_type AS VARCHAR) || ': ' || e.error_message, '; '),
       arg_max(e.csv_line, length(e.csv_line))
FROM {REJECTS_TABLE} e JOIN {REJECTS_SCANS} s ON e.scan_id = s.scan_id AND e.file_id = s.file_id
GROUP BY s.file_path, e.line
ORDER BY s.file_path, e.line
"""


def read_csv(
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
    """Yield the batches of ``files``; hand rejected lines to ``gate`` at the end."""
    rel = _relation(
        con,
        storage,
        files,
        opts,
        lambda source: bind(con, source, columns, predicate, limit),
    )
    if rel is None:
        return
    try:
        yield from scan(rel, opts.batch_rows, files)
    except BaseException:  # an error, or the consumer stopped early: keep what was found
        with contextlib.suppress(Exception):
            _collect_rejects(con, gate)
        raise
    _collect_rejects(con, gate)


def csv_schema(
    con: duckdb.DuckDBPyConnection, storage: Storage, files: Sequence[FileRef], opts: ReadOptions
) -> pa.Schema:
    """The Arrow schema a read of ``files`` yields (for discover)."""
    rel = _relation(
        con,
        storage,
        files,
        opts,
        lambda source: con.sql(f"SELECT * FROM {source} LIMIT 0"),
    )
    if rel is None:
        import pyarrow as pa

        return pa.schema([])
    schema: pa.Schema = rel.to_arrow_table().schema
    return schema


def _relation(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    files: Sequence[FileRef],
    opts: ReadOptions,
    make: Callable[[str], duckdb.DuckDBPyRelation],
) -> duckdb.DuckDBPyRelation | None:
    """Bind ``make(source)`` with every file's dialect and columns pinned.

    None when the stream's files are all empty (no rows, no columns); empty files
    are left out of the scan, so the dialect comes from the first file with text. With
    ``union_by_name`` each file is pinned on its own and the scans are combined with
    ``UNION ALL BY NAME``; otherwise the first file's dialect applies to all, and
    every file must start with the same header.
    """
    import duckdb

    files, head = _skip_empty(storage, files, opts)
    if not files:
        return None
    args = _user_args(files, opts)
    if opts.union_by_name and len(files) > 1:
        scans = []
        for file in files:
            text = (
                head
                if file is files[0]
                else text_head(storage, file, opts.compression, opts.encoding)
            )
            if text:
                pinned = pin_dialect(con, file, opts, args, text, by_name=True)
                scans.append(f"SELECT * FROM {_source([file], pinned)}")
        if not scans:  # every file is empty
            return None
        source = "(" + " UNION ALL BY NAME ".join(scans) + ")"
    else:
        pinned = pin_dialect(con, files[0], opts, args, head)
        if len(files) > 1 and pinned.get("header"):
            check_headers(storage, files, opts, pinned, head)
        source = _source(files, pinned)
    try:
        return make(source)
    except duckdb.InvalidInputException as exc:
        raise SourceFormatError(
            f"Cannot read {files[0].uri} as CSV: {first_line(exc)}",
            connector=CONNECTOR,
            location=files[0].uri,
            hint="Check options.delimiter, quote, escape, header and encoding.",
        ) from None


def _skip_empty(
    storage: Storage, files: Sequence[FileRef], opts: ReadOptions
) -> tuple[list[FileRef], str]:
    """The files that hold any text (after decompression), and the head of the first.

    An empty file has no header and no rows; pinning the dialect from it would make
    every line of the other files a reject.
    """
    rest = list(files)
    while rest:
        head = text_head(storage, rest[0], opts.compression, opts.encoding)
        if head:
            kept = [rest[0]]
            kept += [f for f in rest[1:] if read_head(storage, f, opts.compression, 1)]
            return kept, head
        rest.pop(0)
    return [], ""


def _user_args(files: Sequence[FileRef], opts: ReadOptions) -> dict[str, Any]:
    delimiter = opts.delimiter
    if delimiter is None and split_extension(files[0].rel)[2] == ".tsv":
        delimiter = "\t"
    return {
        "delim": delimiter,
        "quote": opts.quote,
        "escape": opts.escape,
        "header": opts.header,
        "encoding": None if opts.encoding == "utf-8" else opts.encoding,
        # an empty unquoted field is NULL; a quoted empty string ("") stays an empty string
        "nullstr": ["", *opts.null_values] if opts.null_values else None,
        "compression": None if opts.compression == "auto" else opts.compression,
        "skip": opts.skip_rows or None,
        "sample_size": opts.sample_size,
        "allow_quoted_nulls": False,
    }


def _source(files: Sequence[FileRef], args: Mapping[str, Any]) -> str:
    rejects = {"store_rejects": True, "rejects_table": REJECTS_TABLE, "rejects_scan": REJECTS_SCANS}
    return f"read_csv({lit([f.uri for f in files])}{named_args({**args, **rejects})})"


def _collect_rejects(con: duckdb.DuckDBPyConnection, gate: RejectGate) -> None:
    import duckdb

    try:
        cursor = con.execute(_REJECTS_SQL)
        while rows := cursor.fetchmany(10_000):
            gate.add(
                [
                    Reject(
                        raw_record=(csv_line or "").rstrip("\r\n"),
                        error=error,
                        source_file=path,
                        source_line=int(line) if line is not None else None,
                        column=column,
                    )
                    for path, line, column, error, csv_line in rows
                ]
            )
    except duckdb.CatalogException:  # no scan ran, so no rejects table
        return
