"""Schema rules of managed datasets: normalization, lossless widening, evolution plans.

Three steps decide what a write may do, all before a byte is written:

1. :func:`normalize_type` maps any Arrow type to the plain type Delta stores (views and
   large types to their plain counterpart, dictionaries to their values, unsigned integers to
   the next wider signed type, timestamps to microseconds in UTC, ...).
2. :func:`merge_type` decides whether incoming values of one type can be stored in an existing
   column without loss, and returns the column type that holds both (structs may gain fields).
3. :func:`plan_write` applies those rules column by column and returns a :class:`WritePlan`:
   the schema every batch is converted to and the kind of schema change, or raises
   :class:`~headwater.errors.SchemaIncompatibleError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa  # type: ignore[import-untyped]

from headwater.errors import SchemaIncompatibleError

__all__ = [
    "UnsupportedTypeError",
    "WritePlan",
    "compatible",
    "fits",
    "merge_type",
    "normalize_schema",
    "normalize_type",
    "plan_write",
]

_T = pa.types
_UNSIGNED_TO_SIGNED = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}
# decimal digits an integer type needs, to decide int -> decimal widening
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
_MAX_DECIMAL_PRECISION = 38


class UnsupportedTypeError(Exception):
    """An Arrow type Delta cannot store (time of day, durations, intervals, unions)."""

    def __init__(self, type_: pa.DataType) -> None:
        super().__init__(str(type_))
        self.type = type_


class _Refused(Exception):
    def __init__(self, path: str, old: pa.DataType, new: pa.DataType, reason: str) -> None:
        super().__init__(reason)
        self.path, self.old, self.new, self.reason = path, old, new, reason


def normalize_type(type_: pa.DataType) -> pa.DataType:
    """The plain Arrow type Delta stores for ``type_``; raise UnsupportedTypeError otherwise."""
    if isinstance(type_, pa.BaseExtensionType):  # e.g. arrow.uuid: stored as its storage type
        return normalize_type(type_.storage_type)
    if _T.is_dictionary(type_) or _T.is_run_end_encoded(type_):
        return normalize_type(type_.value_type)
    if _T.is_string(type_) or _T.is_large_string(type_) or _T.is_string_view(type_):
        return pa.string()
    if (
        _T.is_binary(type_)
        or _T.is_large_binary(type_)
        or _T.is_binary_view(type_)
        or _T.is_fixed_size_binary(type_)
    ):
        return pa.binary()
    if _T.is_unsigned_integer(type_):
        return _UNSIGNED_TO_SIGNED[type_.bit_width]
    if _T.is_float16(type_):
        return pa.float32()
    if _T.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC" if type_.tz is not None else None)
    if _T.is_date64(type_):
        return pa.date32()
    if _T.is_decimal(type_):
        if type_.precision > _MAX_DECIMAL_PRECISION:
            raise UnsupportedTypeError(type_)
        return pa.decimal128(type_.precision, type_.scale)
    if (
        _T.is_list(type_)
        or _T.is_large_list(type_)
        or _T.is_fixed_size_list(type_)
        or _T.is_list_view(type_)
        or _T.is_large_list_view(type_)
    ):
        item = type_.value_field
        return pa.list_(pa.field("element", normalize_type(item.type), item.nullable))
    if _T.is_map(type_):
        return pa.map_(
            pa.field("key", normalize_type(type_.key_type), False),
            pa.field("value", normalize_type(type_.item_type), type_.item_field.nullable),
        )
    if _T.is_struct(type_):
        return pa.struct(
            [pa.field(f.name, normalize_type(f.type), f.nullable) for f in type_.fields]
        )
    if (
        _T.is_null(type_)
        or _T.is_boolean(type_)
        or _T.is_signed_integer(type_)
        or _T.is_float32(type_)
        or _T.is_float64(type_)
        or _T.is_date32(type_)
    ):
        return type_
    raise UnsupportedTypeError(type_)


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Normalize every field of ``schema`` (names and nullability are kept)."""
    return pa.schema([pa.field(f.name, normalize_type(f.type), f.nullable) for f in schema])


def _widens(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether every value of scalar type ``new`` is exactly representable in ``old``."""
    if _T.is_signed_integer(new):
        if _T.is_signed_integer(old):
            return bool(new.bit_width <= old.bit_width)
        if _T.is_float64(old):
            return bool(new.bit_width <= 32)
        if _T.is_float32(old):
            return bool(new.bit_width <= 16)
        if _T.is_decimal(old):
            return bool(old.precision - old.scale >= _INT_DIGITS[new.bit_width])
        return False
    if _T.is_float32(new):
        return bool(_T.is_float64(old))
    if _T.is_decimal(new) and _T.is_decimal(old):
        return bool(
            old.scale >= new.scale and old.precision - old.scale >= new.precision - new.scale
        )
    if _T.is_timestamp(new) and _T.is_timestamp(old):
        # both are microseconds after normalization; naive and zoned never mix
        return (new.tz is None) == (old.tz is None)
    return False


def _merge(old: pa.DataType, new: pa.DataType, path: str) -> pa.DataType:
    if old == new or _T.is_null(new):
        return old
    if _T.is_struct(old) and _T.is_struct(new):
        return _merge_struct(old, new, path)
    if _T.is_list(old) and _T.is_list(new):
        item = _merge_child(old.value_field, new.value_field, f"{path}[]")
        return pa.list_(item)
    if _T.is_map(old) and _T.is_map(new):
        key = _merge_child(old.key_field, new.key_field, f"{path}.key")
        value = _merge_child(old.item_field, new.item_field, f"{path}.value")
        return pa.map_(key, value)
    if _widens(old, new):
        return old
    raise _Refused(
        path, old, new, "the input type cannot be stored in the dataset type without loss"
    )


def _merge_child(old: pa.Field, new: pa.Field, path: str) -> pa.Field:
    if new.nullable and not old.nullable:
        raise _Refused(
            path, old.type, new.type, "the input may hold nulls, the dataset field may not"
        )
    return pa.field(old.name, _merge(old.type, new.type, path), old.nullable)


def _merge_struct(old: pa.DataType, new: pa.DataType, path: str) -> pa.DataType:
    incoming = {f.name: f for f in new.fields}
    fields = []
    for child in old.fields:
        if child.name in incoming:
            fields.append(_merge_child(child, incoming.pop(child.name), f"{path}.{child.name}"))
        elif child.nullable:
            fields.append(child)
        else:
            raise _Refused(
                f"{path}.{child.name}", child.type, pa.null(), "a non-nullable field is missing"
            )
    for extra in incoming.values():  # new struct fields evolve like new columns
        fields.append(pa.field(extra.name, _new_column_type(extra.type, f"{path}.{extra.name}")))
    return pa.struct(fields)


def _new_column_type(type_: pa.DataType, path: str) -> pa.DataType:
    if _T.is_null(type_):
        raise _Refused(path, type_, type_, "a new field has no type (every value is null)")
    return type_


def merge_type(old: pa.DataType, new: pa.DataType) -> pa.DataType | None:
    """The column type storing existing ``old`` values and incoming ``new`` values losslessly.

    That is ``old`` itself when ``new`` widens into it, a struct with extra fields when ``new``
    adds nullable fields to a struct, and None when the change is lossy or unrelated.
    """
    try:
        return _merge(normalize_type(old), normalize_type(new), "")
    except (_Refused, UnsupportedTypeError):
        return None


def fits(column: pa.DataType, incoming: pa.DataType) -> bool:
    """Whether ``incoming`` values can be cast into ``column`` as is, with no schema change."""
    return bool(merge_type(column, incoming) == normalize_type(column))


def compatible(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether values of type ``new`` may be written into an existing column of type ``old``."""
    return merge_type(old, new) is not None


@dataclass(frozen=True)
class WritePlan:
    """What a write does to the schema, decided before anything is written.

    ``schema`` is the schema every incoming batch is converted to (existing columns first, in
    their order, then new ones); ``change`` is ``created``, ``evolved``, ``replaced`` or None;
    ``filled`` lists nullable columns absent from the input, written as nulls.
    """

    schema: pa.Schema
    change: str | None
    new_columns: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()


def _error(
    dataset: str, column: str, message: str, hint: str, **types: str
) -> SchemaIncompatibleError:
    return SchemaIncompatibleError(
        f"Cannot write dataset `{dataset}`: column `{column}` {message}.",
        dataset=dataset,
        column=column,
        hint=hint,
        **types,
    )


_REPLACE_HINT = (
    "Cast the column to the existing type before writing, or overwrite with a new schema "
    "(pipeline step: `mode: overwrite` + `on_schema_change: replace`; Python: "
    "allow_schema_replace=True)."
)


def _normalize_incoming(dataset: str, incoming: pa.Schema) -> pa.Schema:
    seen: set[str] = set()
    fields = []
    for f in incoming:
        if f.name in seen:
            raise _error(dataset, f.name, "appears twice in the input", "Rename one of them.")
        seen.add(f.name)
        try:
            fields.append(pa.field(f.name, normalize_type(f.type), f.nullable))
        except UnsupportedTypeError as exc:
            raise _error(
                dataset,
                f.name,
                f"has type {exc.type}, which a Delta table cannot store",
                "Cast it first: times of day to string, durations to int64 (e.g. microseconds).",
                new_type=str(f.type),
            ) from exc
    return pa.schema(fields)


def plan_write(
    dataset: str,
    existing: pa.Schema | None,
    incoming: pa.Schema,
    *,
    keys: Sequence[str] = (),
    replace: bool = False,
) -> WritePlan:
    """Check ``incoming`` against the dataset's ``existing`` schema and plan the write.

    Raises SchemaIncompatibleError (with ``dataset``, ``column``, ``old_type``, ``new_type``)
    for a lossy or unrelated type change, a missing non-nullable or key column, an input
    column Delta cannot store, or a new column that has no type.
    """
    normalized = _normalize_incoming(dataset, incoming)
    for key in keys:
        if key not in normalized.names:
            raise _error(
                dataset,
                key,
                "is a key of the dataset but is missing from the input",
                f"Every write must carry the key columns {', '.join(keys)}.",
            )
    if existing is None or replace:
        for f in normalized:
            if _T.is_null(f.type):
                raise _error(
                    dataset,
                    f.name,
                    "has no type (every value is null)",
                    "Cast it to a concrete type, e.g. CAST(NULL AS VARCHAR).",
                    new_type="null",
                )
        if existing is None:
            return WritePlan(normalized, "created", tuple(normalized.names))
        same = normalized.equals(existing, check_metadata=False)
        return WritePlan(normalized, None if same else "replaced")

    by_name = {f.name: f for f in normalized}
    lower_existing = {name.lower(): name for name in existing.names}
    fields: list[pa.Field] = []
    filled: list[str] = []
    evolved = False
    for old in existing:
        new = by_name.pop(old.name, None)
        if new is None:
            if not old.nullable:
                raise _error(
                    dataset,
                    old.name,
                    "is not nullable but is missing from the input",
                    "Add the column to the input.",
                    old_type=str(old.type),
                )
            filled.append(old.name)
            fields.append(old)
            continue
        try:
            merged = _merge(old.type, new.type, old.name)
        except _Refused as exc:
            raise _error(
                dataset,
                exc.path,
                f"cannot take the input: {exc.reason} (dataset type {exc.old}, input type "
                f"{exc.new})",
                _REPLACE_HINT,
                old_type=str(exc.old),
                new_type=str(exc.new),
            ) from exc
        evolved = evolved or merged != old.type
        fields.append(pa.field(old.name, merged, old.nullable))
    for new in by_name.values():
        clash = lower_existing.get(new.name.lower())
        if clash is not None:
            raise _error(
                dataset,
                new.name,
                f"differs only in case from the existing column `{clash}`",
                f"Rename it to `{clash}`: Delta column names are case-insensitive.",
            )
        if _T.is_null(new.type):
            raise _error(
                dataset,
                new.name,
                "is new and has no type (every value is null)",
                "Cast it to a concrete type, e.g. CAST(NULL AS VARCHAR).",
                new_type="null",
            )
        fields.append(pa.field(new.name, new.type, True))  # old rows have no value
    new_columns = tuple(by_name)
    change = "evolved" if evolved or new_columns else None
    return WritePlan(pa.schema(fields), change, new_columns, tuple(filled))
