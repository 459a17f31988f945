"""Turn ADBC's Arrow output into the documented Arrow types, batch by batch (vectorized).

ADBC returns ``numeric`` as an opaque extension over its decimal text, json/jsonb
as ``arrow.json`` and uuid as ``arrow.uuid`` (16 bytes). These become decimal128/256
(or string for unconstrained numeric), string, and the canonical uuid text (reads
already cast uuid and other binary-only types to text in SQL, see
:func:`~headwater.connectors.postgres.types.read_cast`).

When the target Arrow types are known (table reads: the catalog mapping, the same one
discover reports) they win over ADBC's metadata, which loses the precision and scale
of numeric array elements. A batch whose columns need no conversion is passed on
as is: no copy, only the schema's metadata dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from headwater.connectors.postgres.types import arrow_type

__all__ = ["NUMERIC_SPECIALS", "NUMERIC_TEXT_SPECIALS", "batch_converter", "is_numeric"]

Convert = Callable[[pa.Array], pa.Array]

NUMERIC_SPECIALS = ("nan", "inf", "-inf")
"""numeric values with no Arrow decimal form, as ADBC prints them (NaN, Infinity, -Infinity)."""
NUMERIC_TEXT_SPECIALS = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}
"""The same values as PostgreSQL's text output spells them (reads cast ``numeric(p, s)`` to
text), with ADBC's spelling, which errors and rejected rows use."""


def is_numeric(dtype: pa.DataType) -> bool:
    """ADBC's opaque extension type for ``numeric`` (its storage is the decimal text)."""
    return isinstance(dtype, pa.BaseExtensionType) and getattr(dtype, "type_name", "") == "numeric"


def _uuid_text(array: pa.Array) -> pa.Array:
    """16-byte uuids as text. Reads cast uuid columns to text in SQL, so this is a fallback."""
    import uuid

    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    return pa.array(
        [None if b is None else str(uuid.UUID(bytes=b)) for b in storage.to_pylist()],
        pa.string(),
    )


def _field_converter(
    field: pa.Field, target: pa.DataType | None = None
) -> tuple[pa.DataType, Convert | None]:
    dtype = field.type
    meta = field.metadata or {}
    typname = meta.get(b"POSTGRESQL:type", b"").decode()
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner_target = (
            target.value_type if target is not None and pa.types.is_list(target) else None
        )
        inner_type, inner = _field_converter(dtype.value_field, inner_target)
        if inner is None:
            return dtype, None
        fn = inner

        def convert_list(array: pa.Array) -> pa.Array:
            values = fn(array.values)
            return type(array).from_arrays(array.offsets, values, mask=array.is_null())

        return pa.list_(inner_type), convert_list
    if target is not None and pa.types.is_decimal(target) and pa.types.is_string(dtype):
        decimal_of_text = target  # numeric(p, s) read as text (see read_cast)
        return decimal_of_text, lambda a: a.cast(decimal_of_text)
    if not isinstance(dtype, pa.BaseExtensionType):
        return dtype, None
    if typname == "uuid" or dtype.extension_name == "arrow.uuid":
        return pa.string(), _uuid_text
    if typname == "numeric" or is_numeric(dtype):
        if target is None or not (pa.types.is_decimal(target) or pa.types.is_string(target)):
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1") or -1)
            target = arrow_type("numeric", typmod)
        if pa.types.is_string(target):
            return target, lambda a: a.storage
        decimal = target
        return decimal, lambda a: a.storage.cast(decimal)
    storage = dtype.storage_type
    if pa.types.is_binary(storage):
        return pa.string(), lambda a: a.storage.cast(pa.string())
    return storage, lambda a: a.storage


def batch_converter(
    schema: pa.Schema, targets: Sequence[pa.DataType | None] | None = None
) -> tuple[pa.Schema, Callable[[pa.RecordBatch], pa.RecordBatch]]:
    """The output schema and a function converting each ADBC batch to it.

    ``targets`` are the Arrow types the columns must have (``None``: decide from ADBC's
    metadata), in the schema's order.
    """
    wanted = list(targets) if targets is not None else [None] * len(schema)
    plan = [_field_converter(f, t) for f, t in zip(schema, wanted, strict=True)]
    out = pa.schema(
        [pa.field(f.name, t, f.nullable) for f, (t, _) in zip(schema, plan, strict=True)]
    )
    if all(fn is None for _, fn in plan):  # only the field metadata goes: no data is copied
        return out, lambda b: pa.RecordBatch.from_arrays(b.columns, schema=out)

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [
            col if fn is None else fn(col) for col, (_, fn) in zip(batch.columns, plan, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=out)

    return out, convert
