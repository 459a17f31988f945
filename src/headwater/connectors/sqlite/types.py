"""SQLite <-> Arrow type mapping (pure functions over pyarrow; no driver imports).

SQLite stores each value with its own storage class; a column's declared type only
gives it an *affinity*. Reading maps the declared type to an Arrow type, and every
value is cast to it with a checked cast: a value that does not fit (``'abc'`` in an
``INTEGER`` column) fails the read with an error naming the table and column.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["arrow_type", "conform", "declared_type", "select_expr", "to_storage"]

_DECIMAL = re.compile(r"^(DECIMAL_TEXT|DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


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
    if "INT" in u:
        return pa.int64()
    if any(k in u for k in ("CHAR", "CLOB", "TEXT")) or u == "":
        return pa.string()
    if "BLOB" in u:
        return pa.binary()
    return pa.float64()  # REAL, FLOAT, DOUBLE and the rest of NUMERIC affinity


def select_expr(quoted: str, target: pa.DataType) -> str:
    """The SELECT expression that hands the driver one storage class per column."""
    if (
        pa.types.is_string(target)
        or pa.types.is_decimal(target)
        or pa.types.is_timestamp(target)
        or pa.types.is_date(target)
    ):
        return f"CAST({quoted} AS TEXT)"
    return quoted


def declared_type(t: pa.DataType) -> str:
    """The declared type a table created from an Arrow column gets."""
    if pa.types.is_dictionary(t):
        return declared_type(t.value_type)
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
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BLOB"
    return "TEXT"


def to_storage(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Convert an Arrow column to what the driver stores without loss.

    Decimals become their exact text; timestamps ISO text in microseconds (time
    zones converted to UTC, written with a ``Z``); dates ISO text.
    """
    t = column.type
    if pa.types.is_dictionary(t):
        return to_storage(pc.cast(column, t.value_type))
    if pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pc.cast(column, pa.string())
    if pa.types.is_timestamp(t):
        us = pa.timestamp("us", tz="UTC" if t.tz else None)
        return pc.cast(pc.cast(column, us, safe=False), pa.string())
    if pa.types.is_large_string(t):
        return pc.cast(column, pa.string())
    if pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pc.cast(column, pa.binary())
    if pa.types.is_null(t):
        return pc.cast(column, pa.string())
    if pa.types.is_unsigned_integer(t) and t.bit_width == 64:
        return pc.cast(column, pa.int64())  # checked: values above 2**63-1 fail
    if pa.types.is_nested(t):
        raise TypeError(f"nested type {t} is not supported by the sqlite connector")
    return column


def conform(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast what the driver returned to the mapped type (checked: raises on a mismatch)."""
    if array.type == target:
        return array
    if pa.types.is_timestamp(target) and target.tz and pa.types.is_string(array.type):
        try:
            return pc.cast(array, target)
        except pa.ArrowInvalid:  # text without an offset: taken as UTC
            naive = pc.cast(array, pa.timestamp("us"))
            return pc.assume_timezone(naive, "UTC")
    return pc.cast(array, target)
