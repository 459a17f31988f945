"""The CSV dialect and schema of a file, pinned before it is scanned.

DuckDB's sniffer (``sniff_csv``, strict) reads a sample of the first file and
returns delimiter, quote, escape, header, date formats and column types. They are
pinned (``auto_detect=false``) for the scan, so every file of a glob is read the
same way and the scan with ``store_rejects`` cannot settle on another dialect.

When the sniffer gives up, or settles on "one column" although the first line holds
a usual delimiter (a malformed line in the sample breaks every other dialect), the
schema is inferred here: the header is split with the given dialect (default RFC
4180: quote and escape ``"``; delimiter guessed from the header), a sample is read
as text with ``ignore_errors`` and each column's type is the first of BIGINT,
DOUBLE, BOOLEAN, DATE, TIMESTAMPTZ, TIMESTAMP that every non-null sample value
casts to, else VARCHAR.
"""

from __future__ import annotations

import csv
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.files.duck import first_line, ident, lit, named_args
from headwater.connectors.files.options import ReadOptions
from headwater.connectors.files.reading import text_head
from headwater.connectors.files.storage import CONNECTOR, FileRef, Storage
from headwater.errors import ConfigError, SourceFormatError, choices_hint

if TYPE_CHECKING:
    import duckdb

__all__ = ["check_headers", "pin_dialect"]

_DELIMITERS = (",", ";", "\t", "|")
_DEFAULT_SAMPLE = 20_480


def pin_dialect(
    con: duckdb.DuckDBPyConnection,
    file: FileRef,
    opts: ReadOptions,
    args: Mapping[str, Any],
    head: str,
    *,
    by_name: bool = False,
) -> dict[str, Any]:
    """``read_csv`` arguments with dialect and columns explicit, for ``file``.

    ``by_name``: apply ``options.schema`` only to the columns this file has (files
    matched by name); otherwise every name must exist, or the schema must list
    every column in order (which renames them).
    """
    sniffed = _sniff(con, file, args)
    if sniffed and args.get("escape") is None and sniffed["escape"] not in ("", sniffed["quote"]):
        # an unusual escape character (the sniffer can mistake data for one): the RFC 4180
        # escape (the quote, doubled) wins if it parses the sample with fewer errors
        rfc = _sniff(con, file, {**args, "escape": sniffed["quote"]})
        if rfc and _sample_rejects(con, file, {**args, **rfc}) < _sample_rejects(
            con, file, {**args, **sniffed}
        ):
            sniffed = rfc
    if sniffed is None or _suspicious(sniffed["columns"], args, head, opts.skip_rows):
        return _fallback_args(con, file, opts, dict(args), head, by_name)
    if opts.columns_schema:
        sniffed["columns"] = _merge_schema(sniffed["columns"], opts.columns_schema, file, by_name)
    return {**args, **sniffed, "auto_detect": False, "sample_size": None}


def check_headers(
    storage: Storage,
    files: Sequence[FileRef],
    opts: ReadOptions,
    pinned: Mapping[str, Any],
    head: str,
) -> None:
    """Every file of a glob must start with the first file's header.

    The dialect and columns are pinned from the first file and read by position, so
    a file with its columns in another order would be loaded into the wrong ones.
    """

    def header(text: str) -> list[str]:
        text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark is not part of a name
        first = next((line for line in text.splitlines()[opts.skip_rows :] if line.strip()), "")
        return [
            f.strip() for f in _split(first, pinned["delim"], pinned["quote"], pinned["escape"])
        ]

    expected = header(head)
    for file in files[1:]:
        found = header(text_head(storage, file, opts.compression, opts.encoding, 16 << 10))
        if found and found != expected:  # an empty file has no header and no rows
            raise SourceFormatError(
                f"{file.rel} has the header {found} but {files[0].rel} has {expected}.",
                connector=CONNECTOR,
                location=file.uri,
                hint="Set options.union_by_name=true to match columns by name, or read the "
                "files as separate streams.",
            )


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


def _sample_rejects(con: duckdb.DuckDBPyConnection, file: FileRef, args: Mapping[str, Any]) -> int:
    """How many lines of the sample ``args`` cannot parse (structure only, not casts)."""
    import duckdb

    tag = uuid.uuid4().hex[:12]
    probe = {
        **args,
        "auto_detect": False,
        "sample_size": None,
        "store_rejects": True,
        "rejects_table": f"hw_probe_{tag}",
        "rejects_scan": f"hw_probe_scans_{tag}",
    }
    rows = args.get("sample_size") or _DEFAULT_SAMPLE
    try:
        con.sql(
            f"SELECT count(*) FROM (SELECT * FROM read_csv({lit(file.uri)}{named_args(probe)}) "
            f"LIMIT {rows if rows > 0 else _DEFAULT_SAMPLE})"
        ).fetchall()
        found = con.sql(f"SELECT count(*) FROM hw_probe_{tag}").fetchall()
        return int(found[0][0])
    except duckdb.Error:
        return sys.maxsize
    finally:
        for table in (f"hw_probe_{tag}", f"hw_probe_scans_{tag}"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _suspicious(columns: Sequence[str], args: Mapping[str, Any], head: str, skip: int) -> bool:
    """A single sniffed column although the first line holds a usual delimiter.

    DuckDB's sniffer falls back to "one column, no delimiter" when a malformed line
    in its sample breaks every other dialect; that would hide the bad line.
    """
    if len(columns) != 1 or args.get("delim") is not None:
        return False
    first = next((line for line in head.splitlines()[skip:] if line.strip()), "")
    return any(d in first for d in _DELIMITERS)


def _merge_schema(
    sniffed: Mapping[str, str], schema: Mapping[str, str], file: FileRef, by_name: bool = False
) -> dict[str, str]:
    """Apply explicit types by name, or positionally when they name every column."""
    names = list(sniffed)
    if by_name or all(name in sniffed for name in schema):
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


def _fallback_args(
    con: duckdb.DuckDBPyConnection,
    file: FileRef,
    opts: ReadOptions,
    args: dict[str, Any],
    head: str,
    by_name: bool,
) -> dict[str, Any]:
    head = head.removeprefix("\ufeff")
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
        types = _merge_schema(types, opts.columns_schema, file, by_name)
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
