"""Schema contracts (evolve, freeze, discard_row), shared by every destination."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from headwater.connectors.base import ListRejectSink
from headwater.connectors.contract import (
    Conformer,
    SchemaContractError,
    check_contract_name,
    compatibility,
    plan_contract,
)
from headwater.errors import ConfigError

EXISTING = pa.schema([("id", pa.int32()), ("amount", pa.decimal128(10, 2)), ("name", pa.string())])


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (pa.int32(), pa.int32(), "same"),
        (pa.int16(), pa.int64(), "safe"),
        (pa.int64(), pa.int32(), "checked"),
        (pa.uint32(), pa.int64(), "safe"),
        (pa.uint64(), pa.int64(), "checked"),
        (pa.int8(), pa.uint8(), "checked"),
        (pa.int64(), pa.float64(), "safe"),
        (pa.int64(), pa.decimal128(20, 2), "checked"),
        (pa.decimal128(10, 2), pa.decimal128(12, 3), "safe"),
        (pa.decimal128(10, 2), pa.decimal128(10, 1), "checked"),
        (pa.float64(), pa.float32(), "checked"),
        (pa.large_string(), pa.string(), "safe"),
        (pa.json_(), pa.string(), "same"),  # JSON is text
        (pa.uuid(), pa.string(), "safe"),
        (pa.string(), pa.int64(), "incompatible"),
        (pa.timestamp("us", "UTC"), pa.timestamp("us"), "incompatible"),
        (pa.timestamp("ms"), pa.timestamp("us"), "safe"),
        (pa.timestamp("ns"), pa.timestamp("us"), "checked"),
        (pa.date32(), pa.timestamp("us"), "safe"),
        (pa.bool_(), pa.int64(), "incompatible"),
        (pa.null(), pa.int64(), "safe"),
        (pa.list_(pa.int32()), pa.list_(pa.int64()), "safe"),
        (pa.dictionary(pa.int8(), pa.string()), pa.string(), "same"),
    ],
)
def test_compatibility(source: pa.DataType, target: pa.DataType, expected: str) -> None:
    assert compatibility(source, target) == expected


def test_a_missing_target_is_created_with_the_input_schema() -> None:
    incoming = pa.schema([("x", pa.int64())])
    plan = plan_contract("t", None, incoming, "freeze")
    assert plan.created and plan.schema == incoming


def test_evolve_adds_columns_and_casts_to_the_target_types() -> None:
    incoming = pa.schema([("id", pa.int64()), ("extra", pa.string()), ("amount", pa.float64())])
    plan = plan_contract("t", EXISTING, incoming, "evolve")
    assert [f.name for f in plan.add_columns] == ["extra"]
    assert plan.missing == ("name",) and set(plan.checked) == {"id", "amount"}
    batch = pa.record_batch([pa.array([1]), pa.array(["x"]), pa.array([2.5])], schema=incoming)
    out = Conformer(plan)(batch)
    assert out.schema.field("id").type == pa.int32()
    assert out.to_pylist() == [{"id": 1, "extra": "x", "amount": Decimal("2.50")}]


def test_evolve_refuses_an_incompatible_type_before_writing() -> None:
    incoming = pa.schema([("id", pa.string())])
    with pytest.raises(SchemaContractError) as info:
        plan_contract("shop.orders", EXISTING, incoming, "evolve")
    err = info.value
    assert err.column == "id" and err.details["old_type"] == "int32"
    assert err.details["new_type"] == "string" and "shop.orders" in err.message


def test_evolve_fails_on_a_value_that_does_not_fit() -> None:
    incoming = pa.schema([("id", pa.int64())])
    plan = plan_contract("t", EXISTING, incoming, "evolve")
    with pytest.raises(SchemaContractError, match="does not fit int32"):
        Conformer(plan)(pa.record_batch([pa.array([2**40])], schema=incoming))


def test_freeze_names_table_column_and_types() -> None:
    incoming = pa.schema([("id", pa.int32()), ("Extra Col", pa.bool_())])
    with pytest.raises(SchemaContractError) as info:
        plan_contract("t", EXISTING, incoming, "freeze")
    assert info.value.column == "Extra Col" and "freeze" in info.value.message
    assert info.value.details["new_type"] == "bool"
    assert "Nothing was written" in info.value.message
    # a compatible narrower input is not a schema change
    assert plan_contract("t", EXISTING, pa.schema([("id", pa.int16())]), "freeze").checked == ()


def test_discard_row_sends_rows_that_do_not_fit_to_rejects() -> None:
    incoming = pa.schema([("id", pa.int64()), ("amount", pa.string()), ("extra", pa.string())])
    plan = plan_contract("t", EXISTING, incoming, "discard_row")
    assert plan.dropped == ("extra",)
    batch = pa.record_batch(
        [
            pa.array([1, 2, 2**40, 4]),
            pa.array(["1.50", "abc", "3", None]),
            pa.array([None, None, None, "set"]),
        ],
        schema=incoming,
    )
    sink = ListRejectSink()
    conformer = Conformer(plan, sink)
    out = conformer(batch)
    assert out.to_pylist() == [{"id": 1, "amount": Decimal("1.50")}]
    assert conformer.rows_rejected == 3
    by_id = {json.loads(r.raw_record)["id"]: r.error for r in sink.items}
    assert "amount" in by_id[2] and "id" in by_id[2**40] and "`extra`" in by_id[4]
    assert all("discard_row" in e for e in by_id.values())


def test_case_insensitive_matching_for_case_folding_databases() -> None:
    incoming = pa.schema([("ID", pa.int32()), ("Name", pa.string())])
    plan = plan_contract("t", EXISTING, incoming, "freeze", case_insensitive=True)
    assert plan.schema.names == ["id", "name"]
    out = Conformer(plan)(
        pa.record_batch([pa.array([1], pa.int32()), pa.array(["a"])], schema=incoming)
    )
    assert out.to_pylist() == [{"id": 1, "name": "a"}]


def test_uuid_and_json_into_text_columns() -> None:
    value = uuid.uuid4()
    incoming = pa.schema([("id", pa.uuid()), ("doc", pa.json_())])
    existing = pa.schema([("id", pa.string()), ("doc", pa.string())])
    plan = plan_contract("t", existing, incoming, "freeze")
    batch = pa.record_batch(
        [pa.array([value.bytes, None], pa.uuid()), pa.array(['{"a": 1}', None], pa.json_())],
        schema=incoming,
    )
    assert Conformer(plan)(batch).to_pylist() == [
        {"id": str(value), "doc": '{"a": 1}'},
        {"id": None, "doc": None},
    ]


def test_unknown_contract_name() -> None:
    with pytest.raises(ConfigError, match="Unknown schema contract 'frozen'") as info:
        check_contract_name("frozen")
    assert "freeze" in (info.value.hint or "")


def test_integers_into_a_narrower_decimal_are_checked_value_by_value() -> None:
    existing = pa.schema([("amount", pa.decimal128(12, 2))])
    incoming = pa.schema([("amount", pa.int64())])
    plan = plan_contract("t", existing, incoming, "discard_row")
    sink = ListRejectSink()
    conformer = Conformer(plan, sink)
    out = conformer(pa.record_batch([pa.array([5, 10**11, None])], schema=incoming))
    assert out.to_pylist() == [{"amount": Decimal("5.00")}, {"amount": None}]
    assert conformer.rows_rejected == 1 and "does not fit" in sink.items[0].error


def test_integers_into_floats_are_never_refused() -> None:
    existing = pa.schema([("x", pa.float32())])
    incoming = pa.schema([("x", pa.int64())])
    plan = plan_contract("t", existing, incoming, "freeze")
    out = Conformer(plan)(pa.record_batch([pa.array([2**24 + 1])], schema=incoming))
    assert out.column(0).type == pa.float32() and out.to_pylist()[0]["x"] == float(2**24)
