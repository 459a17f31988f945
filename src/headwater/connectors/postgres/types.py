"""PostgreSQL <-> Arrow type mapping (one table, used by discover, read and write).

===========================  ====================================================
PostgreSQL                   Arrow
===========================  ====================================================
int2 / int4 / int8           int16 / int32 / int64
numeric(p, s), p <= 38       decimal128(p, s)
numeric(p, s), p > 38        decimal256(p, s)
numeric (no precision)       string: the exact decimal text (lossless; cast it
                             in a transform if you want a number)
float4 / float8              float32 / float64
bool                         bool
text / varchar / char(n)     string (char(n) keeps PostgreSQL's blank padding)
date                         date32
timestamp                    timestamp[us]
timestamptz                  timestamp[us, tz=UTC] (the instant, shown in UTC)
time                         time64[us]
interval                     month_day_nano_interval
json / jsonb                 string (the JSON text; jsonb is PostgreSQL-normalized)
uuid                         string (canonical 8-4-4-4-12 lower-case form)
bytea                        binary
<type>[]                     list<mapped element type> (one dimension)
enum types                   string (the label)
domains                      the base type's mapping
oid                          int64 (read as bigint: oid is unsigned)
anything else                string (PostgreSQL's text output; reads cast to text,
                             see :func:`read_cast`)
===========================  ====================================================

Writes map the other way; Arrow types PostgreSQL has no equivalent for are widened:
int8 -> int2, uint8 -> int2, uint16 -> int4, uint32 -> int8, uint64 -> numeric(20, 0),
float16 -> float4, large/view strings -> text, large/fixed binary -> bytea,
duration -> interval, time32/time64 -> time, null -> text; Arrow's uuid extension
type -> uuid, Arrow's JSON extension type -> jsonb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.connectors.server.arrow_types import is_binary_like, is_text_like
from headwater.errors import UnsupportedOperationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "arrow_type",
    "numeric_typmod",
    "pg_type",
    "qualified",
    "quote_ident",
    "read_cast",
]

_SIMPLE: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
    "interval": pa.month_day_nano_interval(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "uuid": pa.string(),
    "bytea": pa.binary(),
    "oid": pa.int64(),
}


# types ADBC's reader decodes into the mapped Arrow type by itself (enums too: their label)
_ADBC_NATIVE = frozenset(
    ["int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "bpchar", "name",
     "date", "timestamp", "timestamptz", "time", "interval", "json", "jsonb", "bytea", "numeric"]
)  # fmt: skip


def read_cast(
    typname: str,
    element: str | None = None,
    *,
    is_enum: bool = False,
    element_is_enum: bool = False,
    typmod: int = -1,
) -> str:
    """The SQL cast a read applies to a column so ADBC returns its mapped Arrow type.

    ``''`` for the types ADBC decodes itself; ``::int8`` for ``oid`` (unsigned 32 bits);
    ``::text`` (``::text[]`` for arrays) for the rest (uuid, inet, money, xml, ranges, ...),
    which ADBC would otherwise hand over as their binary wire form.

    ``numeric(p, s)`` is read as ``::text`` too, then cast to its Arrow decimal in Arrow:
    ADBC's own decoding of binary ``numeric`` (base-10000 digits to decimal text) took
    twice the client CPU of the rest of a row (2M rows: 1.2 s against 0.65 s), while the
    server's text output costs about as much as its binary one.
    """
    if element is not None:
        return "" if element in _ADBC_NATIVE or element_is_enum else "::text[]"
    if typname == "numeric" and pa.types.is_decimal(arrow_type(typname, typmod)):
        return "::text"
    if typname in _ADBC_NATIVE or is_enum:
        return ""
    if typname == "oid":
        return "::int8"
    return "::text"


def numeric_typmod(typmod: int) -> tuple[int, int] | None:
    """(precision, scale) of a ``numeric`` type modifier, or None when unconstrained."""
    if typmod < 4:
        return None
    value = typmod - 4
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def arrow_type(typname: str, typmod: int = -1, element: str | None = None) -> pa.DataType:
    """The Arrow type of a PostgreSQL column (``typname`` as in ``pg_type``).

    ``element`` is the element type name of an array type (``typname`` ``_int4``);
    enum and unknown types map to string.
    """
    if element is not None:
        return pa.list_(arrow_type(element, typmod))
    if typname == "numeric":
        ps = numeric_typmod(typmod)
        if ps is None:
            return pa.string()
        precision, scale = ps
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    return _SIMPLE.get(typname, pa.string())


def pg_type(dtype: pa.DataType, *, column: str = "") -> str:
    """The PostgreSQL column type a new table gets for an Arrow type."""
    if pa.types.is_dictionary(dtype):
        return pg_type(dtype.value_type, column=column)
    if isinstance(dtype, pa.BaseExtensionType):
        if dtype.extension_name == "arrow.uuid":
            return "uuid"
        if dtype.extension_name == "arrow.json":
            return "jsonb"
        return pg_type(dtype.storage_type, column=column)
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return "smallint"
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return "integer"
    if pa.types.is_int64(dtype) or pa.types.is_uint32(dtype):
        return "bigint"
    if pa.types.is_uint64(dtype):
        return "numeric(20,0)"
    if pa.types.is_float16(dtype) or pa.types.is_float32(dtype):
        return "real"
    if pa.types.is_float64(dtype):
        return "double precision"
    if pa.types.is_decimal(dtype):
        return f"numeric({dtype.precision},{dtype.scale})"
    if is_text_like(dtype):
        return "text"
    if is_binary_like(dtype):
        return "bytea"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype):
        return "timestamp with time zone" if dtype.tz else "timestamp without time zone"
    if pa.types.is_time(dtype):
        return "time without time zone"
    if pa.types.is_duration(dtype) or pa.types.is_interval(dtype):
        return "interval"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = dtype.value_type
        if not (pa.types.is_list(inner) or pa.types.is_large_list(inner)):
            return pg_type(inner, column=column) + "[]"
    raise UnsupportedOperationError(
        f"Column {column!r} has Arrow type {dtype}, which has no PostgreSQL column type here.",
        connector="postgres",
        column=column or None,
        hint="Cast it in a transform first (structs and maps: to_json(...) as a string).",
    )


def wire_type(dtype: pa.DataType) -> pa.DataType:
    """The Arrow type ADBC's binary COPY sends for a column created by :func:`pg_type`."""
    if pa.types.is_dictionary(dtype):
        return wire_type(dtype.value_type)
    if isinstance(dtype, pa.BaseExtensionType):
        if dtype.extension_name == "arrow.uuid":
            return dtype  # ADBC's COPY writes it as a PostgreSQL uuid
        return wire_type(dtype.storage_type)
    if pa.types.is_int8(dtype) or pa.types.is_uint8(dtype):
        return pa.int16()
    if pa.types.is_uint16(dtype):
        return pa.int32()
    if pa.types.is_uint32(dtype):
        return pa.int64()
    if pa.types.is_uint64(dtype):
        return pa.decimal128(20, 0)
    if pa.types.is_float16(dtype):
        return pa.float32()
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype) or pa.types.is_null(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_fixed_size_binary(dtype):
        return pa.binary()
    if pa.types.is_date64(dtype):
        return pa.date32()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", tz="UTC" if dtype.tz else None)
    if pa.types.is_time(dtype):
        return pa.time64("us")
    if pa.types.is_duration(dtype):
        return pa.month_day_nano_interval()
    if pa.types.is_decimal256(dtype) and dtype.precision <= 38:
        return pa.decimal128(dtype.precision, dtype.scale)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return pa.list_(wire_type(dtype.value_type))
    return dtype


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, always double-quoted (embedded quotes doubled)."""
    if "\x00" in name:
        raise UnsupportedOperationError(
            f"The identifier {name!r} contains a NUL character.", connector="postgres"
        )
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def schema_from_columns(columns: Mapping[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(columns.items()))
