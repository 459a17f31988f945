"""Arrow schemas <-> the JSON field lists kept in metadata (``schema_versions.fields``).

Each field is ``{"name", "type", "nullable"}`` where ``type`` is Arrow's own type string
(``int64``, ``timestamp[us, tz=UTC]``, ``decimal128(10, 2)``, ``struct<a: int64>``). Nested
types also carry ``children`` (struct fields, the list element, or the map key and value), so
reading a schema back never has to parse a nested type string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from headwater.errors import DatasetError

__all__ = ["field_from_dict", "field_to_dict", "fields_to_schema", "schema_to_fields"]

_SIMPLE: dict[str, Callable[[], pa.DataType]] = {
    "null": pa.null,
    "bool": pa.bool_,
    "int8": pa.int8,
    "int16": pa.int16,
    "int32": pa.int32,
    "int64": pa.int64,
    "uint8": pa.uint8,
    "uint16": pa.uint16,
    "uint32": pa.uint32,
    "uint64": pa.uint64,
    "halffloat": pa.float16,
    "float": pa.float32,
    "double": pa.float64,
    "string": pa.string,
    "large_string": pa.large_string,
    "string_view": pa.string_view,
    "binary": pa.binary,
    "large_binary": pa.large_binary,
    "binary_view": pa.binary_view,
    "date32[day]": pa.date32,
    "date64[ms]": pa.date64,
}
_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"^decimal(32|64|128|256)\((\d+), (-?\d+)\)$")
_FIXED_BINARY = re.compile(r"^fixed_size_binary\[(\d+)\]$")
_DECIMALS: dict[str, Callable[[int, int], pa.DataType]] = {
    "32": pa.decimal32,
    "64": pa.decimal64,
    "128": pa.decimal128,
    "256": pa.decimal256,
}


def field_to_dict(field: pa.Field) -> dict[str, Any]:
    """One Arrow field as a JSON-able dict."""
    out: dict[str, Any] = {"name": field.name, "type": str(field.type), "nullable": field.nullable}
    type_ = field.type
    children: list[pa.Field] | None = None
    if pa.types.is_struct(type_):
        children = list(type_.fields)
    elif pa.types.is_list(type_) or pa.types.is_large_list(type_):
        children = [type_.value_field]
    elif pa.types.is_map(type_):
        children = [type_.key_field, type_.item_field]
    if children is not None:
        out["children"] = [field_to_dict(child) for child in children]
    return out


def schema_to_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    """An Arrow schema as the field list stored in metadata."""
    return [field_to_dict(f) for f in schema]


def _scalar_type(text: str) -> pa.DataType:
    if text in _SIMPLE:
        return _SIMPLE[text]()
    if match := _TIMESTAMP.match(text):
        return pa.timestamp(match.group(1), tz=match.group(2))
    if match := _DECIMAL.match(text):
        return _DECIMALS[match.group(1)](int(match.group(2)), int(match.group(3)))
    if match := _FIXED_BINARY.match(text):
        return pa.binary(int(match.group(1)))
    raise DatasetError(
        f"Unknown type {text!r} in a recorded schema.",
        hint="The metadata was written by a newer Headwater; upgrade to read it.",
    )


def field_from_dict(data: dict[str, Any]) -> pa.Field:
    """The Arrow field a :func:`field_to_dict` dict describes."""
    text: str = data["type"]
    children = [field_from_dict(c) for c in data.get("children", [])]
    if text.startswith("struct<"):
        type_: pa.DataType = pa.struct(children)
    elif text.startswith("large_list<"):
        type_ = pa.large_list(children[0])
    elif text.startswith("list<"):
        type_ = pa.list_(children[0])
    elif text.startswith("map<"):
        type_ = pa.map_(children[0], children[1], keys_sorted=text.endswith(", keys_sorted>"))
    else:
        type_ = _scalar_type(text)
    return pa.field(data["name"], type_, bool(data.get("nullable", True)))


def fields_to_schema(fields: list[dict[str, Any]]) -> pa.Schema:
    """The Arrow schema a metadata field list describes."""
    return pa.schema([field_from_dict(f) for f in fields])
