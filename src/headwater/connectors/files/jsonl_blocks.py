"""The JSON Lines block path: taken after a bad line, it finds every bad line by number.

The files are read again in blocks of about 8 MiB, cut at line ends (decompressed
through pyarrow when needed). Each block is first handed to DuckDB's native
``read_json`` through an in-memory filesystem: a clean block costs little more
than the fast path. Only a block that fails is split into lines (an Arrow string
array with line numbers) and parsed by one DuckDB query that splits every line
once into its keys as raw JSON and casts each key to its column type. Lines that
are not JSON, not objects, or hold a value that does not cast become rejects; the
good rows go out in file order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import Reject
from headwater.connectors.files.duck import first_line, ident, lit, named_args
from headwater.connectors.files.reading import RejectGate, is_data_error, scan_error, select_sql
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import SourceFormatError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["read_blocks"]

BLOCK_BYTES = 8 << 20
_NO = "__hw_line_no"
_LINE = "__hw_line"
_RAW = "__hw_raw"


def read_blocks(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    files: Sequence[FileRef],
    *,
    compression: str,
    batch_rows: int,
    struct: dict[str, str],
    columns: list[str] | None,
    predicate: str | None,
    remaining: int | None,
    skip: int,
    gate: RejectGate,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``files`` after the first ``skip`` the fast path already yielded.

    Without a predicate those rows are exactly the first ``skip`` non-blank lines
    (the fast path stops at the first bad line), so they are passed over without
    parsing; with one, rows are counted off the output instead.
    """
    memory = _memory(con)
    block_path = f"/headwater-{uuid.uuid4().hex}/block.jsonl"
    args = {"format": "newline_delimited", "records": True, "columns": struct}
    native = select_sql(
        f"read_json({lit('memory://' + block_path)}{named_args(args)})",
        columns or list(struct),
        predicate,
        None,
    )
    refine = select_sql("hw_good", columns or list(struct), predicate, None)
    skip_lines, skip_rows = (skip, 0) if predicate is None else (0, skip)
    try:
        for file in files:
            for first, block in _blocks(storage, file, compression):
                table = None
                if skip_lines:
                    lines, undecodable = _decode(_split(block))
                    cut, skip_lines = _pass_over(lines, skip_lines)
                    if cut == len(lines):
                        continue
                    lines, first = lines.slice(cut), first + cut
                    undecodable = [(o - cut, text) for o, text in undecodable if o >= cut]
                else:
                    memory.pipe_file(block_path, block)
                    table = _native(con, native, file)
                    if table is None:
                        lines, undecodable = _decode(_split(block))
                if table is None:
                    gate.add(
                        [
                            Reject(text, "invalid UTF-8", file.uri, first + offset)
                            for offset, text in undecodable
                        ]
                    )
                    table = _parse(con, struct, lines, first, file, gate, refine)
                if skip_rows:
                    cut = min(skip_rows, table.num_rows)
                    table, skip_rows = table.slice(cut), skip_rows - cut
                if remaining is not None:
                    table = table.slice(0, remaining)
                    remaining -= table.num_rows
                for batch in table.to_batches(max_chunksize=batch_rows):
                    if batch.num_rows:
                        yield batch
                if remaining == 0:
                    return
    finally:
        if memory.exists(block_path):
            memory.rm(block_path)


def _native(con: duckdb.DuckDBPyConnection, query: str, file: FileRef) -> pa.Table | None:
    """The block through DuckDB's own reader, or None when a line in it is bad."""
    import duckdb

    try:
        table: pa.Table = con.sql(query).to_arrow_table()
        return table
    except (duckdb.Error, OSError) as exc:
        if is_data_error(exc):
            return None
        raise scan_error(exc, [file]) from None


def _parse(
    con: duckdb.DuckDBPyConnection,
    struct: dict[str, str],
    lines: pa.Array,
    first: int,
    file: FileRef,
    gate: RejectGate,
    refine: str,
) -> pa.Table:
    """Typed good rows of a block with bad lines; the bad ones go to ``gate``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pa.array(range(first, first + len(lines)), pa.int64())
    con.register("hw_lines", pa.table({"line_no": numbers, "line": lines}))
    parsed = con.sql(_parse_sql(struct, "hw_lines")).to_arrow_table()
    con.unregister("hw_lines")
    bad = _bad_mask(parsed, struct)
    if pc.any(bad).as_py():
        found = parsed.filter(bad).select([_NO, _LINE]).rename_columns(["line_no", "line"])
        con.register("hw_bad_lines", found)
        rows = con.execute(_rejects_sql(struct)).fetchall()
        con.unregister("hw_bad_lines")
        gate.add([Reject(line, error, file.uri, int(no), col) for no, line, error, col in rows])
        parsed = parsed.filter(pc.invert(bad))
    con.register("hw_good", parsed.select(list(struct)))
    table: pa.Table = con.sql(refine).to_arrow_table()
    con.unregister("hw_good")
    return table


def _typed(name: str, sql_type: str) -> str:
    raw = f"{_RAW}.{ident(name)}"
    if sql_type.upper() == "VARCHAR":
        return f"({raw} ->> '$')"  # the string itself, or the JSON text of anything else
    if sql_type.upper() == "JSON":
        return raw
    return f"TRY_CAST({raw} AS {sql_type})"


def _parse_sql(struct: dict[str, str], table: str) -> str:
    """Non-blank lines of ``table`` -> raw keys (NULL: not a JSON object) and typed columns."""
    raw_struct = lit(json.dumps(dict.fromkeys(struct, "JSON")))
    typed = ", ".join(f"{_typed(n, t)} AS {ident(n)}" for n, t in struct.items())
    return f"""
SELECT {_NO}, {_LINE}, {_RAW}, {typed}
FROM (
  SELECT line_no AS {_NO}, line AS {_LINE},
    CASE WHEN ltrim(line) LIKE '{{%' THEN try(json_transform(line, {raw_struct})) END AS {_RAW}
  FROM {table} WHERE line IS NOT NULL AND trim(line) <> ''
)"""


def _rejects_sql(struct: dict[str, str]) -> str:
    """Why each bad line failed; run on the few bad lines of a block only."""
    cases = "".join(
        f" WHEN {_RAW}.{ident(n)} IS NOT NULL AND {ident(n)} IS NULL THEN "
        f"{lit(f'column {n}: cannot convert ')} || left({_RAW}.{ident(n)}::VARCHAR, 200) "
        f"|| {lit(f' to {t}')}"
        for n, t in struct.items()
    )
    columns = "".join(
        f" WHEN {_RAW}.{ident(n)} IS NOT NULL AND {ident(n)} IS NULL THEN {lit(n)}" for n in struct
    )
    return f"""
SELECT {_NO}, rtrim({_LINE}, chr(13)),
  CASE WHEN {_RAW} IS NULL THEN
         CASE WHEN json_valid({_LINE})
              THEN 'expected a JSON object, got ' || lower(json_type({_LINE}))
              ELSE 'invalid JSON' END{cases} END,
  CASE WHEN {_RAW} IS NULL THEN NULL{columns} END
FROM ({_parse_sql(struct, "hw_bad_lines")}) ORDER BY {_NO}"""


def _bad_mask(parsed: pa.Table, struct: dict[str, str]) -> pa.Array:
    """True for rows without raw keys or with a present key whose cast gave NULL."""
    import pyarrow.compute as pc

    raw = parsed.column(_RAW).combine_chunks()
    bad = raw.is_null()
    for i, name in enumerate(struct):
        failed = pc.and_(raw.field(i).is_valid(), parsed.column(name).is_null())
        bad = pc.or_(bad, failed)
    return pc.fill_null(bad, True)


def _pass_over(lines: pa.Array, count: int) -> tuple[int, int]:
    """Skip up to ``count`` non-blank lines: ``(lines passed, count still to skip)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    filled = pc.fill_null(pc.utf8_trim_whitespace(lines), "x")  # undecodable: not blank
    nonblank = pc.not_equal(filled, "").cast(pa.int64())
    total = pc.sum(nonblank).as_py() or 0
    if total <= count:
        return len(lines), count - total
    seen = pc.cumulative_sum(nonblank)
    return int(pc.index(pc.greater(seen, count), True).as_py()), 0


def _blocks(storage: Storage, file: FileRef, compression: str) -> Iterator[tuple[int, bytes]]:
    """``(number of its first line, block)``; every block but the last ends with a newline."""
    import pyarrow as pa

    codec = file.compression if compression == "auto" else compression
    with storage.errors(f"reading {file.rel!r}"), storage.open_input(file.path) as raw:
        stream: Any = raw
        if codec and codec != "none":
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)
        first, carry = 1, b""
        while True:
            try:
                chunk = bytes(stream.read(BLOCK_BYTES))
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise SourceFormatError(
                    f"Cannot read {file.uri}: {first_line(exc)}",
                    connector=CONNECTOR,
                    location=file.uri,
                ) from None
            data = carry + chunk
            if not chunk:
                if data:
                    yield first, data
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            block, carry = data[: cut + 1], data[cut + 1 :]
            yield first, block
            first += block.count(b"\n")


def _split(block: bytes) -> list[bytes]:
    return (block[:-1] if block.endswith(b"\n") else block).split(b"\n")


def _decode(lines: list[bytes]) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Lines as an Arrow string array; undecodable ones become NULL and are listed."""
    import pyarrow as pa

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
                bad.append((offset, line.decode("utf-8", errors="replace").rstrip("\r")))
        return pa.array(texts, pa.string()), bad


def infer_from_objects(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    file: FileRef,
    compression: str,
    sample_size: int | None,
) -> dict[str, str]:
    """Column types inferred by ``read_json`` from the JSON-object lines of a sample.

    Used when DuckDB's inference over the raw file fails because the sample holds
    lines that are not objects; those lines are left out (the read rejects them).
    """
    import pyarrow as pa

    limit = sample_size if sample_size and sample_size > 0 else 20_480
    _, block = next(_blocks(storage, file, compression), (1, b""))
    lines, _ = _decode(_split(block)[:limit])
    con.register("hw_sample", pa.table({"line": lines}))
    objects = con.sql(
        "SELECT line FROM hw_sample WHERE ltrim(line) LIKE '{%' AND try(json_type(line)) = 'OBJECT'"
    ).fetchall()
    con.unregister("hw_sample")
    if not objects:
        return {}
    memory = _memory(con)
    path = f"/headwater-{uuid.uuid4().hex}/sample.jsonl"
    memory.pipe_file(path, "".join(f"{line}\n" for (line,) in objects).encode())
    try:
        rel = con.sql(
            f"SELECT * FROM read_json({lit('memory://' + path)}, format='newline_delimited', "
            f"records=true, sample_size=-1)"
        )
        return dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
    finally:
        memory.rm(path)


def _memory(con: duckdb.DuckDBPyConnection) -> Any:
    """fsspec's in-memory filesystem, registered in ``con`` once.

    Its store is process-wide, so callers use unique paths and remove them.
    """
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem(skip_instance_cache=True)
    if "memory" not in con.list_filesystems():
        con.register_filesystem(memory)
    return memory
