"""The schema rules: normalization, lossless widening, evolution plans (unit + property tests)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.errors import SchemaIncompatibleError
from headwater.lake import compatible, merge_type, normalize_type, plan_write
from headwater.lake.schema import fits
from tests.lake.strategies import SIGNED, TZS, UNSIGNED, arrow_types


@given(arrow_types)
def test_a_type_is_compatible_with_itself(type_: pa.DataType) -> None:
    assert compatible(type_, type_)
    assert fits(type_, type_)


@given(arrow_types)
def test_any_type_fits_its_normalized_column(type_: pa.DataType) -> None:
    normalized = normalize_type(type_)
    assert normalize_type(normalized) == normalized
    assert fits(normalized, type_)


@given(st.sampled_from(SIGNED), st.sampled_from(SIGNED))
def test_integers_widen_and_never_narrow(column: pa.DataType, incoming: pa.DataType) -> None:
    assert compatible(column, incoming) == (incoming.bit_width <= column.bit_width)


@given(arrow_types, arrow_types)
def test_the_merged_type_holds_both_sides(old: pa.DataType, new: pa.DataType) -> None:
    merged = merge_type(old, new)
    if merged is not None:
        assert fits(merged, new)
        assert fits(merged, old)


@given(
    st.sampled_from(SIGNED + UNSIGNED[:3]),
    st.sampled_from([pa.int64(), pa.float64(), pa.decimal128(38, 0)]),
    st.data(),
)
def test_accepted_widening_preserves_every_value(
    incoming: pa.DataType, column: pa.DataType, data: st.DataObject
) -> None:
    if not compatible(column, incoming):
        return
    info = pa.array([0], incoming)  # bounds of the incoming type
    bits = incoming.bit_width
    low, high = (
        (0, 2**bits - 1)
        if pa.types.is_unsigned_integer(incoming)
        else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    values = data.draw(st.lists(st.integers(low, high), min_size=1, max_size=20))
    array = pa.array(values, info.type)
    stored = array.cast(column, safe=True)
    assert stored.cast(incoming, safe=True).to_pylist() == values


@given(st.sampled_from(["s", "ms", "us", "ns"]), st.sampled_from(TZS[1:]))
def test_naive_and_zoned_timestamps_never_mix(unit: str, tz: str) -> None:
    assert not compatible(pa.timestamp("us"), pa.timestamp(unit, tz))
    assert not compatible(pa.timestamp("us", "UTC"), pa.timestamp(unit))
    assert compatible(pa.timestamp("us", "UTC"), pa.timestamp(unit, tz))
    assert compatible(pa.timestamp("us"), pa.timestamp(unit))


ACCEPTED = [
    (pa.int64(), pa.int8()),
    (pa.int64(), pa.int32()),
    (pa.int64(), pa.uint32()),
    (pa.int64(), pa.uint64()),  # Delta has no unsigned types: values are range-checked on write
    (pa.float64(), pa.float32()),
    (pa.float64(), pa.int32()),
    (pa.string(), pa.large_string()),
    (pa.string(), pa.string_view()),
    (pa.string(), pa.dictionary(pa.int8(), pa.string())),
    (pa.binary(), pa.binary_view()),
    (pa.timestamp("us", "UTC"), pa.timestamp("ms", "America/New_York")),
    (pa.date32(), pa.date64()),
    (pa.decimal128(12, 2), pa.decimal128(10, 2)),
    (pa.decimal128(20, 4), pa.decimal128(10, 2)),
    (pa.decimal128(38, 0), pa.int64()),
    (pa.list_(pa.int64()), pa.large_list(pa.int32())),
    (pa.int64(), pa.null()),
]
REFUSED = [
    (pa.int32(), pa.int64()),
    (pa.int64(), pa.string()),
    (pa.int64(), pa.float64()),
    (pa.float32(), pa.float64()),
    (pa.float64(), pa.int64()),
    (pa.date32(), pa.timestamp("us")),
    (pa.timestamp("us"), pa.date32()),
    (pa.string(), pa.int64()),
    (pa.bool_(), pa.int8()),
    (pa.decimal128(10, 2), pa.decimal128(10, 3)),
    (pa.decimal128(10, 2), pa.decimal128(12, 2)),
    (pa.list_(pa.int32()), pa.list_(pa.int64())),
    (pa.int64(), pa.time64("us")),
]


@pytest.mark.parametrize(("column", "incoming"), ACCEPTED, ids=str)
def test_accepted_changes(column: pa.DataType, incoming: pa.DataType) -> None:
    assert fits(column, incoming)


@pytest.mark.parametrize(("column", "incoming"), REFUSED, ids=str)
def test_refused_changes(column: pa.DataType, incoming: pa.DataType) -> None:
    assert not compatible(column, incoming)


def test_struct_fields_evolve_like_columns() -> None:
    old = pa.struct([("a", pa.int64())])
    merged = merge_type(old, pa.struct([("b", pa.string()), ("a", pa.int32())]))
    assert merged == pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert merge_type(old, pa.struct([("a", pa.string())])) is None


# -- plans -----------------------------------------------------------------------------------
EXISTING = pa.schema(
    [pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), ("amount", pa.float64())]
)


def test_plan_for_a_new_dataset_normalizes_the_input() -> None:
    plan = plan_write(
        "raw.t",
        None,
        pa.schema([("a", pa.string_view()), ("b", pa.timestamp("ns", "Europe/Paris"))]),
    )
    assert plan.change == "created"
    assert plan.schema == pa.schema([("a", pa.string()), ("b", pa.timestamp("us", "UTC"))])


def test_plan_with_the_same_schema_changes_nothing() -> None:
    plan = plan_write("raw.t", EXISTING, EXISTING)
    assert plan.change is None
    assert plan.schema.equals(EXISTING)


def test_plan_adds_new_columns_as_nullable_and_fills_missing_ones() -> None:
    incoming = pa.schema([pa.field("id", pa.int32(), False), pa.field("extra", pa.int8(), False)])
    plan = plan_write("raw.t", EXISTING, incoming)
    assert plan.change == "evolved"
    assert plan.new_columns == ("extra",)
    assert plan.filled == ("name", "amount")
    assert plan.schema.names == ["id", "name", "amount", "extra"]
    assert plan.schema.field("id").type == pa.int64()
    assert plan.schema.field("extra").nullable


def _refusal(
    existing: pa.Schema | None, incoming: pa.Schema, **kw: object
) -> SchemaIncompatibleError:
    with pytest.raises(SchemaIncompatibleError) as info:
        plan_write("raw.t", existing, incoming, **kw)  # type: ignore[arg-type]
    assert info.value.dataset == "raw.t"
    return info.value


def test_plan_refuses_a_lossy_change_naming_column_and_types() -> None:
    err = _refusal(EXISTING, pa.schema([("id", pa.int64()), ("amount", pa.string())]))
    assert err.column == "amount"
    assert err.details == {"old_type": "double", "new_type": "string"}
    assert "double" in err.message and "string" in err.message


def test_plan_refuses_a_missing_non_nullable_column() -> None:
    assert _refusal(EXISTING, pa.schema([("name", pa.string())])).column == "id"


def test_plan_refuses_a_missing_key_column() -> None:
    err = _refusal(EXISTING, pa.schema([("id", pa.int64())]), keys=["id", "name"])
    assert err.column == "name"
    assert "key" in err.message


def test_plan_refuses_types_delta_cannot_store() -> None:
    err = _refusal(None, pa.schema([("t", pa.time64("us"))]))
    assert err.column == "t"
    assert "time64" in err.message


def test_plan_refuses_untyped_new_columns() -> None:
    assert _refusal(EXISTING, pa.schema([("id", pa.int64()), ("x", pa.null())])).column == "x"
    assert _refusal(None, pa.schema([("x", pa.null())])).column == "x"


def test_plan_refuses_case_clashes_and_duplicates() -> None:
    assert (
        _refusal(EXISTING, pa.schema([("id", pa.int64()), ("Name", pa.string())])).column == "Name"
    )
    assert _refusal(None, pa.schema([("a", pa.int64()), ("a", pa.int64())])).column == "a"


def test_plan_replace_takes_the_new_schema() -> None:
    incoming = pa.schema([("other", pa.string())])
    plan = plan_write("raw.t", EXISTING, incoming, replace=True)
    assert plan.change == "replaced"
    assert plan.schema == incoming
    assert plan_write("raw.t", EXISTING, EXISTING, replace=True).change is None
