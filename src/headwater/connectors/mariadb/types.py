"""The MySQL/MariaDB <-> Arrow type mapping, and identifier quoting.

Reading (``information_schema.COLUMNS.DATA_TYPE`` -> Arrow):

==========================================  ==========================================
tinyint / smallint / mediumint, int / bigint  int8 / int16 / int32 / int32 / int64
                                              (``unsigned``: uint8 ... uint64)
tinyint(1), bool, boolean                     int8 (not bool: tinyint(1) may hold 2..127)
bit(n)                                        whatever the driver yields (not cast)
float / double                                float32 / float64
decimal(p, s)                                 decimal128(p, s); decimal256(p, s) when p > 38
date / time / year                            date32 / time64[us] / int16
datetime(n)                                   timestamp[us] (no time zone)
timestamp(n)                                  timestamp[us, UTC] (the session is UTC)
char, varchar, *text, enum, set, json, uuid,  string
inet4, inet6
binary, varbinary, *blob                      binary
==========================================  ==========================================

Writing (Arrow -> column type of a created table): bool -> ``tinyint(1)`` (reads back
as int8 0/1), intN/uintN -> the matching (``unsigned``) integer, float32 -> ``float``,
float64 -> ``double``, decimal(p, s) -> ``decimal(p, s)`` (p <= 65), string ->
``longtext``, binary -> ``longblob``, date32 -> ``date``, timestamp without zone ->
``datetime(6)``, timestamp with zone -> ``timestamp(6) NULL`` (stored in UTC; MariaDB's
``timestamp`` range is 1970-01-01 .. 2038-01-19), time -> ``time(6)``. Nested types are
refused. Values finer than microseconds are refused, not truncated.
"""

from __future__ import annotations

import pyarrow as pa

from headwater.connectors.server.arrow_types import is_binary_like, is_text_like
from headwater.errors import SchemaIncompatibleError

__all__ = ["arrow_type", "check_identifier", "mysql_type", "qualified", "quote_ident"]

_INTS = {
    "tinyint": (pa.int8(), pa.uint8()),
    "smallint": (pa.int16(), pa.uint16()),
    "mediumint": (pa.int32(), pa.uint32()),
    "int": (pa.int32(), pa.uint32()),
    "integer": (pa.int32(), pa.uint32()),
    "bigint": (pa.int64(), pa.uint64()),
}
_STRINGS = {
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json",
    "uuid", "inet4", "inet6",
}  # fmt: skip
_BINARIES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}


def check_identifier(name: str, what: str = "name") -> str:
    """``name`` if MariaDB can hold it as a table/column name, else a clear error.

    MariaDB identifiers are utf8mb3 (no character above U+FFFF, such as emoji), at most
    64 characters, without NUL and without trailing spaces. Anything else (quotes,
    backticks, semicolons, dots, spaces, accents, CJK) is fine once quoted.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif "\x00" in name:
        problem = "holds a NUL character"
    elif any(ord(ch) > 0xFFFF for ch in name):
        problem = "holds a character above U+FFFF (such as an emoji), which MariaDB names cannot"
    elif len(name) > 64:
        problem = f"is {len(name)} characters long; MariaDB names hold at most 64"
    elif name.endswith(" "):
        problem = "ends with a space, which MariaDB names cannot"
    if problem is None:
        return name
    column = name if what == "column" else None
    raise SchemaIncompatibleError(
        f"The {what} name {name!r} {problem}.",
        connector="mariadb",
        column=column,
        hint=f"Rename the {what} (a transform or `rename` for columns, the target for tables).",
    )


def quote_ident(name: str) -> str:
    """A MySQL identifier in backticks (inner backticks doubled)."""
    check_identifier(name)
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


def arrow_type(
    data_type: str, column_type: str, precision: int | None, scale: int | None
) -> pa.DataType | None:
    """The Arrow type reads yield for a column, or None when it is left as the driver gives."""
    data_type = data_type.lower()
    if data_type in _INTS:
        signed, unsigned = _INTS[data_type]
        return unsigned if "unsigned" in column_type.lower() else signed
    if data_type == "float":
        return pa.float32()
    if data_type in ("double", "real", "double precision"):
        return pa.float64()
    if data_type in ("decimal", "numeric"):
        p, s = int(precision or 10), int(scale or 0)
        return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    if data_type == "date":
        return pa.date32()
    if data_type == "time":
        return pa.time64("us")
    if data_type == "year":
        return pa.int16()
    if data_type == "datetime":
        return pa.timestamp("us")
    if data_type == "timestamp":
        return pa.timestamp("us", "UTC")
    if data_type in _STRINGS:
        return pa.string()
    if data_type in _BINARIES:
        return pa.binary()
    return None


def mysql_type(t: pa.DataType, *, column: str | None = None, uuid_type: str = "uuid") -> str:
    """The column type a created table gets for Arrow type ``t``.

    ``uuid_type`` is the column type for ``arrow.uuid`` values: ``uuid`` on MariaDB 10.7+,
    ``char(36)`` elsewhere (the destination asks the server).
    """
    if isinstance(t, pa.BaseExtensionType):
        name = t.extension_name
        if name == "arrow.uuid":
            return uuid_type
        if name == "arrow.json":
            return "json"
        return mysql_type(t.storage_type, column=column, uuid_type=uuid_type)
    if pa.types.is_dictionary(t):
        return mysql_type(t.value_type, column=column, uuid_type=uuid_type)
    if pa.types.is_boolean(t):
        return "tinyint(1)"
    if pa.types.is_integer(t):
        base = {8: "tinyint", 16: "smallint", 32: "int", 64: "bigint"}[t.bit_width]
        return base if pa.types.is_signed_integer(t) else f"{base} unsigned"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_decimal(t) and t.precision <= 65 and 0 <= t.scale <= 38:
        return f"decimal({t.precision},{t.scale})"
    if is_text_like(t):
        return "longtext"
    if is_binary_like(t):
        return "longblob"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp(6) NULL" if t.tz else "datetime(6)"
    if pa.types.is_time(t):
        return "time(6)"
    hint = "Cast it in a transform (e.g. to_json(...) for nested values) before loading."
    if pa.types.is_decimal(t):
        hint = (
            "MariaDB decimals hold at most 65 digits with a scale of 0..38: round or cast "
            "the column (e.g. to double or text) in a transform."
        )
    elif pa.types.is_duration(t) or pa.types.is_interval(t):
        hint = "Cast it to an integer count of a unit (e.g. epoch_us(...)) in a transform."
    raise SchemaIncompatibleError(
        f"Column {column!r} has the Arrow type {t}, which has no MariaDB column type.",
        connector="mariadb",
        column=column,
        hint=hint,
    )
