"""Schema contracts: what a write does when its input's schema differs from the target's.

Shared by every destination (SQL tables and managed datasets), pure Arrow:

* :func:`plan_contract` compares the target's schema (``None`` when the target does not
  exist yet) with the input's and decides, **before any row is written**, which columns
  to add, which input columns to drop, and the schema batches are conformed to. Under
  ``freeze`` any new column or incompatible type raises :class:`SchemaContractError`
  naming the table, the column, the old and the new type; under ``evolve`` only an
  incompatible type does.
* :class:`Conformer` then casts each batch to that schema. Under ``discard_row`` a row
  with a value in a dropped column, or a value that does not cast to the target type,
  goes to the reject sink (as JSON, with the reason) and the rest of the batch is kept.

Type compatibility (input -> target) is decided by :func:`compatibility`: ``same``,
``safe`` (lossless: a wider integer, int -> float, text into text, date -> timestamp),
``checked`` (value by value: a narrower integer, int -> decimal, decimal -> decimal,
float -> decimal), or ``incompatible`` (text -> number, tz-aware <-> naive timestamps,
bool <-> number, ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from headwater.connectors.base import SCHEMA_CONTRACTS, Reject, RejectSink, SchemaContract
from headwater.errors import ConfigError, SchemaIncompatibleError, choices_hint

__all__ = [
    "Compatibility",
    "Conformer",
    "ContractPlan",
    "SchemaContractError",
    "check_contract_name",
    "compatibility",
    "plan_contract",
]

Compatibility = Literal["same", "safe", "checked", "incompatible"]


class SchemaContractError(SchemaIncompatibleError):
    """The input's schema breaks the target's schema contract; nothing was written."""


def check_contract_name(value: str, *, field_name: str = "schema_contract") -> SchemaContract:
    """``value`` as a :data:`SchemaContract`, or a ConfigError listing the choices."""
    if value not in SCHEMA_CONTRACTS:
        raise ConfigError(
            f"Unknown schema contract {value!r}.",
            field=field_name,
            hint=choices_hint(value, SCHEMA_CONTRACTS, "contracts"),
        )
    return value  # type: ignore[return-value]


def _base(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return t.value_type
    if isinstance(t, pa.BaseExtensionType) and not _is_uuid(t):
        return t.storage_type  # arrow.json is text, and so on
    return t


def _is_uuid(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def _uuid_text(column: pa.Array) -> pa.Array:
    """A uuid column as canonical text (Arrow has no uuid -> string cast)."""
    import uuid

    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    return pa.array(
        [None if b is None else str(uuid.UUID(bytes=b)) for b in storage.to_pylist()],
        pa.string(),
    )


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t)) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t)) or pa.types.is_large_list(t) or pa.types.is_list_view(t)


def _int_fits(source: pa.DataType, target: pa.DataType) -> bool:
    s_signed, t_signed = pa.types.is_signed_integer(source), pa.types.is_signed_integer(target)
    if s_signed and not t_signed:
        return False
    if t_signed and not s_signed:  # unsigned into signed needs one more bit
        return bool(target.bit_width > source.bit_width)
    return bool(target.bit_width >= source.bit_width)


def compatibility(source: pa.DataType, target: pa.DataType) -> Compatibility:
    """How values of Arrow type ``source`` go into a column of type ``target``."""
    if _is_uuid(source) and _is_text(_base(target)):
        return "safe"
    source, target = _base(source), _base(target)
    if source.equals(target):
        return "same"
    if pa.types.is_null(source):
        return "safe"
    if _is_text(source) and _is_text(target):
        return "safe"
    if _is_binary(source) and _is_binary(target):
        return "checked" if pa.types.is_fixed_size_binary(target) else "safe"
    if pa.types.is_integer(source):
        if pa.types.is_integer(target):
            return "safe" if _int_fits(source, target) else "checked"
        if pa.types.is_floating(target):
            return "safe"
        if pa.types.is_decimal(target):
            return "checked"
    if pa.types.is_floating(source):
        if pa.types.is_floating(target):
            return "safe" if target.bit_width >= source.bit_width else "checked"
        if pa.types.is_decimal(target):
            return "checked"
    if pa.types.is_decimal(source):
        if pa.types.is_decimal(target):
            s_int, t_int = source.precision - source.scale, target.precision - target.scale
            return "safe" if target.scale >= source.scale and t_int >= s_int else "checked"
        if pa.types.is_floating(target):
            return "checked"
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        if (source.tz is None) != (target.tz is None):
            return "incompatible"
        return "safe" if _unit_rank(target.unit) >= _unit_rank(source.unit) else "checked"
    if pa.types.is_date(source):
        if pa.types.is_date(target):
            return "safe"
        if pa.types.is_timestamp(target) and target.tz is None:
            return "safe"
    if pa.types.is_time(source) and pa.types.is_time(target):
        return "safe" if _unit_rank(target.unit) >= _unit_rank(source.unit) else "checked"
    if pa.types.is_duration(source) and pa.types.is_duration(target):
        return "safe" if _unit_rank(target.unit) >= _unit_rank(source.unit) else "checked"
    if _is_list(source) and _is_list(target):
        inner = compatibility(source.value_type, target.value_type)
        return "safe" if inner == "same" else inner
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        return _struct_compatibility(source, target)
    return "incompatible"


def _struct_compatibility(source: pa.StructType, target: pa.StructType) -> Compatibility:
    names = {target.field(i).name: target.field(i).type for i in range(target.num_fields)}
    worst: Compatibility = "safe"
    for i in range(source.num_fields):
        f = source.field(i)
        if f.name not in names:
            return "incompatible"
        c = compatibility(f.type, names[f.name])
        if c == "incompatible":
            return c
        if c == "checked":
            worst = "checked"
    return worst


def _unit_rank(unit: str) -> int:
    return {"s": 0, "ms": 1, "us": 2, "ns": 3}.get(unit, 0)


@dataclass(frozen=True)
class ContractPlan:
    """What a write will do to the target's schema, decided before any row is written.

    ``schema`` is what every batch is conformed to (the input's columns, in input order,
    with the target's types for columns it has, minus ``dropped``); ``add_columns`` are
    new columns to create on the target (``evolve``); ``dropped`` the input columns not
    written (``discard_row``: a row with a value there is rejected); ``missing`` the
    target's columns the input lacks (written as NULL or their default).
    """

    table: str
    contract: SchemaContract
    schema: pa.Schema
    add_columns: tuple[pa.Field, ...] = ()
    dropped: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()
    """Columns whose values are cast one by one (a failing value fails or discards the row)."""
    created: bool = False
    """The target does not exist: it will be created with ``schema``."""


def plan_contract(
    table: str,
    existing: pa.Schema | None,
    incoming: pa.Schema,
    contract: SchemaContract = "evolve",
    *,
    case_insensitive: bool = False,
    what: str = "table",
) -> ContractPlan:
    """Decide how ``incoming`` is written into ``existing`` under ``contract`` (or raise)."""
    contract = check_contract_name(contract)
    if existing is None:
        return ContractPlan(table, contract, incoming, created=True)

    def key(name: str) -> str:
        return name.casefold() if case_insensitive else name

    targets = {key(f.name): f for f in existing}
    fields: list[pa.Field] = []
    added: list[pa.Field] = []
    dropped: list[str] = []
    checked: list[str] = []
    for f in incoming:
        target = targets.get(key(f.name))
        if target is None:
            if contract == "freeze":
                raise _error(table, what, f.name, None, f.type, contract, existing)
            if contract == "discard_row":
                dropped.append(f.name)
                continue
            new = pa.field(f.name, f.type, nullable=True, metadata=f.metadata)
            added.append(new)
            fields.append(new)
            continue
        level = compatibility(f.type, target.type)
        if level == "incompatible" and contract != "discard_row":
            raise _error(table, what, target.name, target.type, f.type, contract, existing)
        if level in ("checked", "incompatible"):
            checked.append(target.name)
        fields.append(pa.field(target.name, target.type, nullable=True, metadata=target.metadata))
    seen = {key(f.name) for f in incoming}
    missing = tuple(f.name for f in existing if key(f.name) not in seen)
    return ContractPlan(
        table,
        contract,
        pa.schema(fields),
        add_columns=tuple(added),
        dropped=tuple(dropped),
        missing=missing,
        checked=tuple(checked),
    )


def _error(
    table: str,
    what: str,
    column: str,
    old: pa.DataType | None,
    new: pa.DataType,
    contract: str,
    existing: pa.Schema,
) -> SchemaContractError:
    if old is None:
        message = (
            f"{what.capitalize()} `{table}` has no column `{column}` (new type {new}); "
            f"schema contract `{contract}` refuses new columns. Nothing was written."
        )
        hint = (
            "Use `schema_contract: evolve` to add it, `discard_row` to quarantine rows "
            "that carry it, or drop the column in a transform. Columns: "
            + ", ".join(existing.names)
        )
    else:
        message = (
            f"Column `{column}` of {what} `{table}` is {old}; the input has {new}, which "
            f"does not convert to it (schema contract `{contract}`). Nothing was written."
        )
        hint = (
            "Cast the column to the existing type in a transform, or use "
            "`schema_contract: discard_row` to quarantine rows whose values do not fit."
        )
    return SchemaContractError(
        message,
        column=column,
        hint=hint,
        table=table,
        old_type=str(old) if old is not None else None,
        new_type=str(new),
    )


@dataclass
class Conformer:
    """Casts batches to a :class:`ContractPlan`'s schema; counts and hands over rejects."""

    plan: ContractPlan
    rejects: RejectSink | None = None
    rows_rejected: int = 0

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        plan = self.plan
        if plan.created:
            return batch
        reasons: dict[int, str] = {}
        for name in plan.dropped:
            for i in _true_indexes(pc.is_valid(batch.column(_find(batch.schema, name)))):
                reasons.setdefault(i, f"column `{name}` is not in `{plan.table}`")
        columns: list[pa.Array] = []
        for target in plan.schema:
            column = batch.column(_find(batch.schema, target.name))
            if column.type.equals(target.type):
                columns.append(column)
                continue
            if _is_uuid(column.type) and _is_text(_base(target.type)):
                column = _uuid_text(column)
            elif isinstance(column.type, pa.BaseExtensionType) and not _is_uuid(column.type):
                column = column.storage
            try:
                columns.append(_cast(column, target.type))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                if plan.contract != "discard_row":
                    raise _value_error(plan, target, column, exc) from None
            values, failed = _cast_each(column, target.type)
            for i in failed:
                reasons.setdefault(i, f"value does not fit {target.type} of column `{target.name}`")
            columns.append(values)
        out = pa.RecordBatch.from_arrays(columns, schema=plan.schema)
        if not reasons:
            return out
        self._reject(batch, reasons)
        return out.filter(_mask_without(batch.num_rows, reasons))

    def _reject(self, batch: pa.RecordBatch, reasons: dict[int, str]) -> None:
        self.rows_rejected += len(reasons)
        if self.rejects is None:
            return
        rows = batch.take(pa.array(sorted(reasons), pa.int64())).to_pylist()
        self.rejects.add(
            Reject(
                raw_record=json.dumps(row, default=str, ensure_ascii=False),
                error=f"{reasons[i]} (schema contract discard_row)",
                column=None,
            )
            for i, row in zip(sorted(reasons), rows, strict=True)
        )


def _cast(column: pa.Array, target: pa.DataType) -> pa.Array:
    """A value-checked cast; integers reach a decimal through a wide decimal (Arrow refuses
    int64 -> decimal128(12, 2) outright, even when every value fits)."""
    if pa.types.is_integer(column.type) and pa.types.is_decimal(target):
        scale = max(int(target.scale), 0)
        wide = (
            pa.decimal128(min(38, 20 + scale), scale) if scale <= 18 else pa.decimal256(76, scale)
        )
        column = column.cast(wide, safe=True)
    elif pa.types.is_integer(column.type) and pa.types.is_floating(target):
        return column.cast(target, safe=False)  # int -> float is lossy by nature, never refused
    return column.cast(target, safe=True)


def _find(schema: pa.Schema, name: str) -> int:
    index = schema.get_field_index(name)
    if index >= 0:
        return int(index)
    folded = name.casefold()
    for i, f in enumerate(schema):
        if f.name.casefold() == folded:
            return int(i)
    raise KeyError(name)


def _true_indexes(mask: pa.Array) -> list[int]:
    filled = pc.fill_null(mask, False)
    return [int(i) for i in pc.indices_nonzero(filled).to_pylist()]


def _mask_without(rows: int, reasons: dict[int, str]) -> pa.Array:
    flags = [True] * rows
    for i in reasons:
        flags[i] = False
    return pa.array(flags, pa.bool_())


def _cast_each(column: pa.Array, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast value by value; a failing value becomes NULL and its row index is reported."""
    values: list[object] = []
    failed: list[int] = []
    for i in range(len(column)):
        item = column.slice(i, 1)
        if item.null_count:
            values.append(None)
            continue
        try:
            values.append(_cast(item, target)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            failed.append(i)
            values.append(None)
    return pa.array(values, target), failed


def _value_error(
    plan: ContractPlan, target: pa.Field, column: pa.Array, exc: Exception
) -> SchemaContractError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SchemaContractError(
        f"A value of column `{target.name}` ({column.type}) does not fit {target.type} in "
        f"`{plan.table}`: {text}. Nothing was committed.",
        column=target.name,
        table=plan.table,
        old_type=str(target.type),
        new_type=str(column.type),
        hint="Use `schema_contract: discard_row` to quarantine such rows, or fix the values "
        "in a transform.",
    )


def conformed_names(plan: ContractPlan) -> Sequence[str]:
    """The column names written, in order (for INSERT/COPY column lists)."""
    return list(plan.schema.names)
