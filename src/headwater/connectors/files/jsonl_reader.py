"""JSON Lines through DuckDB; lines that are not JSON or do not fit go to the reject gate.

DuckDB's ``read_json`` has no rejects table and its ``ignore_errors`` turns a bad
line into a row of NULLs (and a value that does not cast into a silent NULL), so it
is not used to skip errors. Instead:

1. Fast path: ``read_json(..., format='newline_delimited', columns=<schema>)`` in
   strict mode, streamed with ``to_arrow_reader``. Files without bad lines never
   leave it.
2. On the first error, the reader switches to the line path for the rest of the
   stream: the files are read as raw lines in blocks of a few MiB (Arrow arrays,
   line numbers attached per block) and each block is parsed by one DuckDB query
   (``json_valid`` / ``json_transform`` / a per-column cast check). Invalid lines,
   non-object lines and values that do not cast become rejects with file and line;
   the good rows go out in file order. Rows the fast path already yielded are
   skipped, so nothing is doubled (DuckDB preserves insertion order).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import Reject
from headwater.connectors.files.duck import first_line, ident, lit, named_args
from headwater.connectors.files.options import ReadOptions
from headwater.connectors.files.reading import (
    RejectGate,
    bind,
    is_data_error,
    scan_error,
    select_sql,
    text_head,
)
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import SourceFormatError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["jsonl_schema", "read_jsonl"]

_BLOCK_BYTES = 8 << 20


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
    yielded = 0
    try:
        rel = bind(con, _source(files, opts, struct), columns, predicate, limit)
        for batch in rel.to_arrow_reader(opts.batch_rows):
            if batch.num_rows:
                yielded += batch.num_rows
                yield batch
        return
    except (duckdb.Error, OSError) as exc:
        if not is_data_error(exc):
            raise scan_error(exc, files) from None
        # a bad line: continue on the line path below
    remaining = None if limit is None else limit - yielded
    if remaining == 0:
        return
    yield from _line_path(
        con, storage, files, opts, struct, columns, predicate, remaining, yielded, gate
    )


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
    except duckdb.Error as exc:
        raise SourceFormatError(
            f"Cannot infer the columns of {files[0].uri}: {first_line(exc)}",
            connector=CONNECTOR,
            location=files[0].uri,
            hint="Check that every line is a JSON object, or pass options.schema.",
        ) from None
    if not struct or list(struct) == ["json"]:
        raise SourceFormatError(
            f"{files[0].uri} holds no JSON objects to infer columns from.",
            connector=CONNECTOR,
            location=files[0].uri,
            hint="JSON Lines files hold one JSON object per line; or pass options.schema.",
        )
    return struct


def _parse_sql(struct: dict[str, str]) -> str:
    names = list(struct)
    pointers = [lit("/" + n.replace("~", "~0").replace("/", "~1")) for n in names]
    checks = [
        (
            name,
            f"hw_raw[{i}] IS NOT NULL AND json_type(hw_raw[{i}]) <> 'NULL' "
            f"AND struct_extract(hw_s, {lit(name)}) IS NULL",
            f"{lit(f'column {name}: cannot convert ')} || left(hw_raw[{i}]::VARCHAR, 200) "
            f"|| {lit(f' to {struct[name]}')}",
        )
        for i, name in enumerate(names, start=1)
    ]
    error_case = "".join(f" WHEN {cond} THEN {msg}" for _, cond, msg in checks)
    column_case = "".join(f" WHEN {cond} THEN {lit(name)}" for name, cond, _ in checks)
    return f"""
CREATE OR REPLACE TEMP TABLE hw_parsed AS
WITH p AS (
  SELECT line_no, line, CASE WHEN json_valid(line) THEN json_type(line) END AS jt
  FROM hw_lines WHERE line IS NOT NULL AND trim(line) <> ''
), t AS (
  SELECT line_no, line, jt,
    CASE WHEN jt = 'OBJECT' THEN json_transform(line, {lit(json.dumps(struct))}) END AS hw_s,
    CASE WHEN jt = 'OBJECT' THEN json_extract(line, [{", ".join(pointers)}]) END AS hw_raw
  FROM p
)
SELECT line_no, line, hw_s,
  CASE WHEN jt IS NULL THEN 'invalid JSON'
       WHEN jt <> 'OBJECT' THEN 'expected a JSON object, got ' || lower(jt){error_case}
  END AS hw_error,
  CASE WHEN jt IS NULL OR jt <> 'OBJECT' THEN NULL{column_case} END AS hw_column
FROM t"""


def _line_path(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    files: Sequence[FileRef],
    opts: ReadOptions,
    struct: dict[str, str],
    columns: list[str] | None,
    predicate: str | None,
    remaining: int | None,
    skip: int,
    gate: RejectGate,
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    parse = _parse_sql(struct)
    fields = ", ".join(f"struct_extract(hw_s, {lit(n)}) AS {ident(n)}" for n in struct)
    rows = f"(SELECT line_no, {fields} FROM hw_parsed WHERE hw_error IS NULL)"
    good = select_sql(rows, columns or list(struct), predicate, None) + " ORDER BY line_no"
    bad = "SELECT line_no, line, hw_error, hw_column FROM hw_parsed WHERE hw_error IS NOT NULL"
    for file in files:
        for first, lines, undecodable in _blocks(storage, file, opts.compression):
            gate.add(
                [
                    Reject(raw, "invalid UTF-8", file.uri, first + offset)
                    for offset, raw in undecodable
                ]
            )
            numbers = pa.array(range(first, first + len(lines)), pa.int64())
            con.register("hw_lines", pa.table({"line_no": numbers, "line": lines}))
            con.execute(parse)
            gate.add(
                [
                    Reject(line, error, file.uri, int(no), column)
                    for no, line, error, column in con.execute(bad + " ORDER BY line_no").fetchall()
                ]
            )
            table = con.sql(good).to_arrow_table()
            con.unregister("hw_lines")
            if skip:
                cut = min(skip, table.num_rows)
                table, skip = table.slice(cut), skip - cut
            if remaining is not None:
                table = table.slice(0, remaining)
                remaining -= table.num_rows
            yield from scan_table(table, opts.batch_rows)
            if remaining == 0:
                return


def scan_table(table: pa.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for batch in table.to_batches(max_chunksize=batch_rows):
        if batch.num_rows:
            yield batch


def _blocks(
    storage: Storage, file: FileRef, compression: str
) -> Iterator[tuple[int, pa.Array, list[tuple[int, str]]]]:
    """``(first line number, lines as strings, [(offset, text) of undecodable lines])``."""
    import pyarrow as pa

    codec = file.compression if compression == "auto" else compression
    with storage.errors(f"reading {file.rel!r}"), storage.open_input(file.path) as raw:
        stream: Any = raw
        if codec and codec != "none":
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)
        first, carry = 1, b""
        while True:
            try:
                chunk = stream.read(_BLOCK_BYTES)
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise SourceFormatError(
                    f"Cannot read {file.uri}: {first_line(exc)}",
                    connector=CONNECTOR,
                    location=file.uri,
                ) from None
            data = carry + bytes(chunk)
            if not chunk:
                if data:
                    yield first, *_decode([data])
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            lines, carry = data[:cut].split(b"\n"), data[cut + 1 :]
            yield first, *_decode(lines)
            first += len(lines)


def _decode(lines: list[bytes]) -> tuple[pa.Array, list[tuple[int, str]]]:
    import pyarrow as pa

    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    try:
        return pa.array(lines, pa.binary()).cast(pa.string()), []
    except pa.ArrowInvalid:
        texts: list[str | None] = []
        bad: list[tuple[int, str]] = []
        for offset, line in enumerate(lines):
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
                bad.append((offset, line.decode("utf-8", errors="replace")))
        return pa.array(texts, pa.string()), bad
