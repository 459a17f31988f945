"""SQLite <-> Arrow type mapping (pure functions over pyarrow; no driver imports).

SQLite stores each value with its own storage class; a column's declared type only
gives it an *affinity*. Reading maps the declared type to an Arrow type, and every
value is cast to it with a checked cast: a value that does not fit (``'abc'`` in an
``INTEGER`` column) fails the read with an error naming the table and column.

Writing stores every Arrow value in a canonical form (see :func:`to_storage`), chosen
so that text comparisons and ``ORDER BY`` on it follow the values' order: timestamps
as fixed-width ISO text in microseconds (UTC with a ``Z`` for zoned ones), dates as
``YYYY-MM-DD``, times as ``HH:MM:SS.ffffff``. :func:`canonical_literal` renders a
predicate's literal in the same form, so cursor comparisons are exact.
"""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "arrow_type",
    "canonical_literal",
    "conform",
    "declared_type",
    "is_text_decimal",
    "literal_kind",
    "select_expr",
    "sort_expr",
    "storage_type",
    "to_storage",
]

_DECIMAL = re.compile(r"^(DECIMAL_TEXT|DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_JSON = pa.json_()
_UUID = pa.uuid()


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type a column declared as ``declared`` reads as."""
    u = " ".join(declared.upper().split())
    m = _DECIMAL.match(u)
    if m:
        precision, scale = int(m.group(2)), int(m.group(3) or 0)
        if 1 <= precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
        if precision <= 76 and scale <= precision:
            return pa.decimal256(precision, scale)
        return pa.string()
    if u in ("BOOLEAN", "BOOL"):
        return pa.bool_()
    if u.startswith("TIMESTAMPTZ") or "WITH TIME ZONE" in u:
        return pa.timestamp("us", tz="UTC")
    if u.startswith(("DATETIME", "TIMESTAMP")):
        return pa.timestamp("us")
    if u == "DATE":
        return pa.date32()
    if u == "TIME" or u.startswith(("TIME(", "TIME ")):
        return pa.time64("us")
    if u.startswith(("JSON", "UUID")):
        return pa.string()  # as the postgres connector reads them: the JSON / UUID text
    if "INT" in u:
        return pa.int64()
    if any(k in u for k in ("CHAR", "CLOB", "TEXT")) or u == "":
        return pa.string()
    if "BLOB" in u:
        return pa.binary()
    return pa.float64()  # REAL, FLOAT, DOUBLE and the rest of NUMERIC affinity


def _textual(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_decimal(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or t == _JSON
    )


def select_expr(quoted: str, target: pa.DataType, declared: str = "") -> str:
    """The SELECT expression that hands the driver one storage class per column."""
    if declared.upper().startswith("UUID"):  # text, or 16 raw bytes written by another tool
        h = f"lower(hex({quoted}))"
        parts = "||'-'||".join(
            f"substr({h}, {a}, {b})" for a, b in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        return (
            f"CASE WHEN typeof({quoted}) = 'blob' AND length({quoted}) = 16 THEN {parts} "
            f"ELSE CAST({quoted} AS TEXT) END"
        )
    if _textual(target):
        return f"CAST({quoted} AS TEXT)"
    return quoted


def is_text_decimal(t: pa.DataType) -> bool:
    """Decimals are kept as text: they compare and sort through their REAL value."""
    return bool(pa.types.is_decimal(t))


def sort_expr(quoted: str, target: pa.DataType | None) -> str:
    """The expression ``ORDER BY`` uses for a column of type ``target`` (None: unknown).

    Decimal text sorts by its numeric value (double precision, as comparisons do);
    every other canonical form sorts as stored.
    """
    if target is not None and is_text_decimal(target):
        return f"CAST({quoted} AS REAL)"
    return quoted


def declared_type(t: pa.DataType) -> str:
    """The declared type a table created from an Arrow column gets."""
    if pa.types.is_dictionary(t):
        return declared_type(t.value_type)
    if t == _JSON:
        return "JSON_TEXT"
    if t == _UUID:
        return "UUID_TEXT"
    if isinstance(t, pa.ExtensionType):
        return declared_type(t.storage_type)
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_decimal(t):
        return f"DECIMAL_TEXT({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BLOB"
    if pa.types.is_binary_view(t):
        return "BLOB"
    return "TEXT"


def storage_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type :func:`to_storage` turns a column of type ``t`` into."""
    return to_storage(pa.nulls(0, t)).type


def to_storage(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Convert an Arrow column to what the driver stores without loss.

    Decimals become their exact text; timestamps ISO text in microseconds (time
    zones converted to UTC, written with a ``Z``); dates and times ISO text; JSON its
    text; UUIDs their hyphenated lower-case text.
    """
    t = column.type
    if pa.types.is_dictionary(t):
        return to_storage(pc.cast(column, t.value_type))
    if t == _UUID:
        return _uuid_text(column)
    if t == _JSON:
        return pc.cast(column, pa.string())
    if isinstance(t, pa.ExtensionType):
        storage = (
            column.storage
            if isinstance(column, pa.ExtensionArray)
            else pa.chunked_array([c.storage for c in column.chunks], t.storage_type)
        )
        return to_storage(storage)
    if pa.types.is_decimal(t) or pa.types.is_date(t):
        return pc.cast(column, pa.string())
    if pa.types.is_time(t):
        return pc.cast(pc.cast(column, pa.time64("us"), safe=False), pa.string())
    if pa.types.is_timestamp(t):
        us = pa.timestamp("us", tz="UTC" if t.tz else None)
        return pc.cast(pc.cast(column, us, safe=False), pa.string())
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(column, pa.string())
    if (
        pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return pc.cast(column, pa.binary())
    if pa.types.is_null(t):
        return pc.cast(column, pa.string())
    if pa.types.is_unsigned_integer(t) and t.bit_width == 64:
        return pc.cast(column, pa.int64())  # checked: values above 2**63-1 fail
    if pa.types.is_nested(t) or pa.types.is_duration(t) or pa.types.is_interval(t):
        raise TypeError(f"type {t} is not supported by the sqlite connector")
    return column


def _uuid_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    values = [None if v is None else str(v) for v in column.to_pylist()]
    out = pa.array(values, pa.string())
    return pa.chunked_array([out]) if isinstance(column, pa.ChunkedArray) else out


def conform(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast what the driver returned to the mapped type (checked: raises on a mismatch)."""
    if array.type == target:
        return array
    if pa.types.is_time(target) and pa.types.is_string(array.type):
        stamps = pc.cast(pc.binary_join_element_wise("1970-01-01 ", array, ""), pa.timestamp("us"))
        return pc.cast(pc.cast(stamps, pa.int64()), target)
    if pa.types.is_timestamp(target) and target.tz and pa.types.is_string(array.type):
        try:
            return pc.cast(array, target)
        except pa.ArrowInvalid:  # text without an offset: taken as UTC
            naive = pc.cast(array, pa.timestamp("us"))
            return pc.assume_timezone(naive, "UTC")
    return pc.cast(array, target)


# -- predicate literals --------------------------------------------------------------------


def _fmt_time(t: dt.time | dt.datetime) -> str:
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}"


def _fmt_date(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def _parse_stamp(text: str) -> dt.datetime:
    value = text.strip()
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time())


def canonical_literal(text: str, kind: str) -> str:
    """``text`` (a date, time or timestamp literal) in the form the destination stores.

    ``kind`` is ``timestamp`` (naive; an offset is converted to UTC and dropped),
    ``timestamptz`` (converted to UTC, written with ``Z``; naive text is taken as UTC),
    ``date`` (a timestamp at midnight becomes its date; another timestamp keeps its
    time, which still compares correctly against dates as text) or ``time``.
    Raises ``ValueError`` when ``text`` is not such a literal.
    """
    if kind == "time":
        parsed = dt.time.fromisoformat(text.strip())
        return _fmt_time(parsed)
    stamp = _parse_stamp(text)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    if kind == "date":
        if stamp.time() == dt.time():
            return _fmt_date(stamp)
        return f"{_fmt_date(stamp)} {_fmt_time(stamp)}"
    out = f"{_fmt_date(stamp)} {_fmt_time(stamp)}"
    return out + "Z" if kind == "timestamptz" else out


def literal_kind(t: pa.DataType) -> str | None:
    """The :func:`canonical_literal` kind for a column of Arrow type ``t`` (None: not temporal)."""
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    return None
