"""CSV through DuckDB's ``read_csv``, streamed as Arrow; bad lines go to the reject gate.

The fast path is DuckDB's own: ``read_csv([...files], store_rejects=true)`` sniffs the
dialect and types from a sample and is streamed with ``to_arrow_reader``. DuckDB
records every line it cannot parse or cast (with the file, the 1-based line number
and the original text) in a rejects table, which is read once the stream is consumed.

When the sniffer gives up (typically a malformed line inside the sample), the
schema is inferred here instead: the header is split with the given (or default
RFC 4180) dialect, a sample is read as text with ``ignore_errors`` and each
column's type is the first of BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMPTZ,
TIMESTAMP that every non-null sample value casts to, else VARCHAR. The file is
then read with that explicit dialect and schema, still with ``store_rejects``.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import Reject
from headwater.connectors.files.duck import first_line, ident, lit, named_args
from headwater.connectors.files.options import ReadOptions
from headwater.connectors.files.reading import RejectGate, bind, scan, text_head
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage, split_extension
from headwater.errors import ConfigError, SourceFormatError, choices_hint

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["csv_schema", "read_csv"]

REJECTS_TABLE = "hw_rejects"
REJECTS_SCANS = "hw_rejects_scans"
_DELIMITERS = (",", ";", "\t", "|")
_DEFAULT_SAMPLE = 20_480
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
        lambda args: bind(con, _source(files, args, rejects=True), columns, predicate, limit),
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
        lambda args: con.sql(f"SELECT * FROM {_source(files, args, rejects=True)} LIMIT 0"),
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
    make: Callable[[dict[str, Any]], duckdb.DuckDBPyRelation],
) -> duckdb.DuckDBPyRelation | None:
    """Bind with the dialect and schema pinned: sniffed by DuckDB, or inferred here.

    None when the stream is a single empty file (no rows, no columns).
    """
    import duckdb

    head = text_head(storage, files[0], opts.compression, opts.encoding)
    if not head and len(files) == 1:
        return None
    args = _user_args(files, opts)
    if opts.union_by_name:  # every file is sniffed on its own; nothing can be pinned
        pinned = dict(args)
    else:
        sniffed = _sniff(con, files[0], args)
        if sniffed is None or _suspicious(sniffed["columns"], args, head, opts.skip_rows):
            pinned = _fallback_args(con, files[0], opts, args, head)
        else:
            if opts.columns_schema:
                sniffed["columns"] = _merge_schema(
                    sniffed["columns"], opts.columns_schema, files[0]
                )
            pinned = {**args, **sniffed, "auto_detect": False, "sample_size": None}
    try:
        return make(pinned)
    except duckdb.InvalidInputException as exc:
        raise SourceFormatError(
            f"Cannot read {files[0].uri} as CSV: {first_line(exc)}",
            connector=CONNECTOR,
            location=files[0].uri,
            hint="Check options.delimiter, quote, escape, header and encoding.",
        ) from None


_SNIFF_KEYS = frozenset(
    ("delim", "quote", "escape", "header", "encoding", "nullstr", "compression", "skip")
) | {"sample_size", "allow_quoted_nulls"}


def _sniff(
    con: duckdb.DuckDBPyConnection, file: FileRef, args: Mapping[str, Any]
) -> dict[str, Any] | None:
    """DuckDB's strict sniff of the first file, or None when it gives up.

    Strict, because with rejects on the sniffer tolerates errors and may settle on
    a dialect under which most lines are errors. The result is pinned for the scan.
    """
    import duckdb

    sniff_args = {k: v for k, v in args.items() if k in _SNIFF_KEYS}
    query = (
        "SELECT Delimiter, Quote, Escape, HasHeader, Columns, DateFormat, TimestampFormat "
        f"FROM sniff_csv({lit(file.uri)}{named_args(sniff_args)})"
    )
    try:
        rows = con.sql(query).fetchall()
    except duckdb.InvalidInputException:
        return None
    if not rows:
        return None
    delim, quote, escape, header, columns, date_format, timestamp_format = rows[0]
    return {
        "delim": delim,
        "quote": "" if quote == "(empty)" else quote,
        "escape": "" if escape == "(empty)" else escape,
        "header": bool(header),
        "columns": {c["name"]: c["type"] for c in columns},
        "dateformat": date_format,
        "timestampformat": timestamp_format,
    }


def _suspicious(columns: Sequence[str], args: Mapping[str, Any], head: str, skip: int) -> bool:
    """A single sniffed column although the first line holds a usual delimiter.

    DuckDB's sniffer falls back to "one column, no delimiter" when a malformed line
    in its sample breaks every other dialect; that would hide the bad line.
    """
    if len(columns) != 1 or args.get("delim") is not None:
        return False
    first = next((line for line in head.splitlines()[skip:] if line.strip()), "")
    return any(d in first for d in _DELIMITERS)


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
        "union_by_name": opts.union_by_name or None,
        "allow_quoted_nulls": False,
    }


def _source(files: Sequence[FileRef], args: Mapping[str, Any], *, rejects: bool) -> str:
    extra = (
        f", store_rejects=true, rejects_table={lit(REJECTS_TABLE)}, "
        f"rejects_scan={lit(REJECTS_SCANS)}"
        if rejects
        else ""
    )
    return f"read_csv({lit([f.uri for f in files])}{named_args(args)}{extra})"


def _merge_schema(
    sniffed: Mapping[str, str], schema: Mapping[str, str], file: FileRef
) -> dict[str, str]:
    """Apply explicit types by name, or positionally when they name every column."""
    names = list(sniffed)
    if all(name in sniffed for name in schema):
        return {name: schema.get(name, sql_type) for name, sql_type in sniffed.items()}
    if len(schema) == len(names):
        return dict(schema)
    unknown = next(name for name in schema if name not in sniffed)
    raise ConfigError(
        f"options.schema names column {unknown!r}, which {file.rel} does not have.",
        connector=CONNECTOR,
        field="options.schema",
        column=unknown,
        hint=choices_hint(unknown, names, "columns")
        + " A schema that lists every column in order renames them.",
    )


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


# -- schema inference when DuckDB's sniffer gives up -----------------------------------


def _fallback_args(
    con: duckdb.DuckDBPyConnection,
    file: FileRef,
    opts: ReadOptions,
    args: dict[str, Any],
    head: str,
) -> dict[str, Any]:
    lines = [line for line in head.splitlines()[opts.skip_rows :] if line.strip()]
    if not lines:
        raise SourceFormatError(
            f"{file.rel} has no rows to infer a schema from.",
            connector=CONNECTOR,
            location=file.uri,
            hint="Pass options.schema with the column types.",
        )
    delimiter = args["delim"] or _guess_delimiter(lines[0])
    quote = opts.quote if opts.quote is not None else '"'
    escape = opts.escape if opts.escape is not None else quote
    header = opts.header if opts.header is not None else True
    fields = _split(lines[0], delimiter, quote, escape)
    if header:
        names = _dedupe([f.strip() or f"column{i}" for i, f in enumerate(fields)])
    else:
        names = [f"column{i}" for i in range(len(fields))]
    base = {
        **args,
        "auto_detect": False,
        "delim": delimiter,
        "quote": quote,
        "escape": escape,
        "header": header,
        "sample_size": None,
        "union_by_name": None,
    }
    sample_args = {**base, "columns": dict.fromkeys(names, "VARCHAR"), "ignore_errors": True}
    sample_rows = opts.sample_size if opts.sample_size and opts.sample_size > 0 else None
    if opts.sample_size is None:
        sample_rows = _DEFAULT_SAMPLE
    sample = f"SELECT * FROM read_csv({lit(file.uri)}{named_args(sample_args)})"
    if sample_rows:
        sample += f" LIMIT {sample_rows}"
    types = dict(zip(names, _infer_types(con, sample, names), strict=True))
    if opts.columns_schema:
        types = _merge_schema(types, opts.columns_schema, file)
    return {**base, "columns": types}


def _guess_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _split(line: str, delimiter: str, quote: str, escape: str) -> list[str]:
    if len(delimiter) != 1 or len(quote) > 1 or len(escape) > 1:
        return line.split(delimiter)
    reader = csv.reader(
        [line],
        delimiter=delimiter,
        quotechar=quote or None,
        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        escapechar=None if (not escape or escape == quote) else escape,
        doublequote=bool(quote) and escape == quote,
    )
    return next(reader, [])


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


_TZ_SUFFIX = r"(Z|[+-]\d\d(:?\d\d)?)$"


def _not_integer(c: str) -> str:
    # TRY_CAST('1.5' AS BIGINT) rounds to 2, so integers are recognized by their digits
    return f"NOT regexp_full_match(trim({c}), '[+-]?[0-9]+') OR TRY_CAST({c} AS BIGINT) IS NULL"


def _type_case(col: str) -> str:
    c = ident(col)
    fails = f"count({c}) FILTER (WHERE {{}})"
    return f"""CASE
      WHEN count({c}) = 0 THEN 'VARCHAR'
      WHEN {fails.format(_not_integer(c))} = 0 THEN 'BIGINT'
      WHEN {fails.format(f"TRY_CAST({c} AS DOUBLE) IS NULL")} = 0 THEN 'DOUBLE'
      WHEN {fails.format(f"lower(trim({c})) NOT IN ('true', 'false')")} = 0 THEN 'BOOLEAN'
      WHEN {fails.format(f"TRY_CAST({c} AS DATE)::VARCHAR IS DISTINCT FROM trim({c})")} = 0
        THEN 'DATE'
      WHEN {fails.format(f"NOT regexp_matches(trim({c}), '{_TZ_SUFFIX}')")} = 0
        AND {fails.format(f"TRY_CAST({c} AS TIMESTAMPTZ) IS NULL")} = 0 THEN 'TIMESTAMPTZ'
      WHEN {fails.format(f"TRY_CAST({c} AS TIMESTAMP) IS NULL")} = 0 THEN 'TIMESTAMP'
      ELSE 'VARCHAR' END"""


def _infer_types(con: duckdb.DuckDBPyConnection, sample: str, names: list[str]) -> list[str]:
    import duckdb

    if not names:
        return []
    query = f"SELECT {', '.join(_type_case(n) for n in names)} FROM ({sample})"
    try:
        rows = con.sql(query).fetchall()
    except duckdb.Error as exc:
        raise SourceFormatError(
            f"Cannot infer a schema: {first_line(exc)}",
            connector=CONNECTOR,
            hint="Pass options.schema and the dialect options (delimiter, quote, header).",
        ) from None
    return [str(t) for t in rows[0]] if rows else ["VARCHAR"] * len(names)
