"""Schema evolution: additive changes evolve, lossless widening is cast, the rest is refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from headwater.errors import DatasetError, SchemaIncompatibleError
from headwater.lake import Lake

BASE = pa.schema(
    [
        ("id", pa.int64()),
        ("qty", pa.int32()),
        ("price", pa.float64()),
        ("name", pa.string()),
        ("day", pa.date32()),
        ("at", pa.timestamp("us", "UTC")),
        ("amount", pa.decimal128(10, 2)),
    ]
)


def base_rows(ids: list[int]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": ids,
            "qty": [1] * n,
            "price": [1.5] * n,
            "name": ["x"] * n,
            "day": [dt.date(2024, 1, 1)] * n,
            "at": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * n,
            "amount": [Decimal("1.25")] * n,
        },
        schema=BASE,
    )


def with_column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


def test_a_new_nullable_column_evolves_into_schema_version_2(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1, 2]), run_id="r1")
    extended = base_rows([3]).append_column("note", pa.array(["hello"]))
    commit = lake.write("raw.items", extended, run_id="r2")
    assert (commit.schema_change, commit.schema_version) == ("evolved", 2)
    versions = lake.schema_history("raw.items")
    assert [(v.version, v.change, v.table_version, v.run_id) for v in versions] == [
        (1, "created", 0, "r1"),
        (2, "evolved", 1, "r2"),
    ]
    assert versions[1].schema.names == [*BASE.names, "note"]
    assert versions[1].fields[-1] == {"name": "note", "type": "string", "nullable": True}
    assert versions[1].created_at is not None and versions[1].created_at.tzinfo is not None
    notes = {r["id"]: r["note"] for r in lake.read("raw.items").to_pylist()}
    assert notes == {1: None, 2: None, 3: "hello"}
    assert [h.schema_version for h in lake.history("raw.items")] == [2, 1]
    assert lake.store.get_dataset("raw.items").schema_version == 2  # type: ignore[union-attr]
    # the old version still reads with its old schema
    assert lake.schema("raw.items", version=0) == BASE
    # files written before the column existed have no statistics for it: filters still see them
    missing = lake.read("raw.items", filter=pa.compute.field("note").is_null())
    assert sorted(missing.column("id").to_pylist()) == [1, 2]
    assert lake.read("raw.items", filter=pa.compute.field("note") == "hello").num_rows == 1


def test_merge_evolves_the_schema_too(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1, 2]), mode="merge", keys=["id"])
    extended = base_rows([2, 3]).append_column("note", pa.array(["b", "c"]))
    commit = lake.write("raw.items", extended, mode="merge")
    assert commit.schema_change == "evolved"
    notes = {r["id"]: r["note"] for r in lake.read("raw.items").to_pylist()}
    assert notes == {1: None, 2: "b", 3: "c"}


@pytest.mark.parametrize(
    ("column", "array"),
    [
        ("id", pa.array([9], pa.int8())),
        ("qty", pa.array([9], pa.int16())),
        ("price", pa.array([9.5], pa.float32())),
        ("name", pa.array(["v"], pa.string_view())),
        ("name", pa.array(["v"], pa.large_string())),
        ("at", pa.array([dt.datetime(2024, 5, 1, 12)], pa.timestamp("ns", "Europe/Paris"))),
        ("amount", pa.array([Decimal("9.5")], pa.decimal128(5, 1))),
    ],
    ids=lambda v: str(getattr(v, "type", v)),
)
def test_lossless_widening_is_cast_to_the_column_type(
    lake: Lake, column: str, array: pa.Array
) -> None:
    lake.write("raw.items", base_rows([1]))
    commit = lake.write("raw.items", with_column(base_rows([2]), column, array))
    assert commit.schema_change is None
    assert lake.schema("raw.items") == BASE
    written = lake.read("raw.items").sort_by("id").to_pylist()[-1]  # the second write's row
    assert [written[column]] == array.cast(BASE.field(column).type).to_pylist()


INCOMPATIBLE = [
    ("qty", pa.array([1], pa.int64()), "int32", "int64"),
    ("id", pa.array(["1"], pa.string()), "int64", "string"),
    ("qty", pa.array([1.5], pa.float64()), "int32", "double"),
    ("price", pa.array(["1.5"], pa.string()), "double", "string"),
    (
        "day",
        pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
        "date32[day]",
        "timestamp[us]",
    ),
    (
        "at",
        pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
        "timestamp[us, tz=UTC]",
        "timestamp[us]",
    ),
    (
        "amount",
        pa.array([Decimal("1.125")], pa.decimal128(10, 3)),
        "decimal128(10, 2)",
        "decimal128(10, 3)",
    ),
    ("name", pa.array([1], pa.int64()), "string", "int64"),
]


@pytest.mark.parametrize(("column", "array", "old", "new"), INCOMPATIBLE, ids=lambda v: str(v))
def test_an_incompatible_change_raises_and_writes_nothing(
    lake: Lake, column: str, array: pa.Array, old: str, new: str
) -> None:
    lake.write("raw.items", base_rows([1]))
    for mode in ("append", "overwrite", "merge"):
        with pytest.raises(SchemaIncompatibleError) as info:
            lake.write(
                "raw.items", with_column(base_rows([2]), column, array), mode=mode, keys=["id"]
            )
        err = info.value
        assert (err.dataset, err.column) == ("raw.items", column)
        assert err.details == {"old_type": old, "new_type": new}
        assert old in err.message and new in err.message
    assert [h.version for h in lake.history("raw.items")] == [0]
    assert lake.read("raw.items").num_rows == 1
    assert [v.version for v in lake.schema_history("raw.items")] == [1]


def test_missing_nullable_columns_are_filled_with_nulls(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1]))
    commit = lake.write("raw.items", base_rows([2]).select(["id", "name"]))
    assert commit.schema_change is None
    row = lake.read("raw.items", filter=pa.compute.field("id") == 2).to_pylist()[0]
    assert row["name"] == "x" and row["qty"] is None and row["amount"] is None


def test_a_missing_key_column_is_refused(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1]), mode="merge", keys=["id"])
    for mode in ("append", "overwrite", "merge"):
        with pytest.raises(SchemaIncompatibleError) as info:
            lake.write("raw.items", base_rows([2]).select(["name"]), mode=mode)
        assert info.value.column == "id"
    assert [h.version for h in lake.history("raw.items")] == [0]


def test_a_missing_non_nullable_column_is_refused(lake: Lake) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.string())])
    lake.write("raw.strict", pa.table({"id": [1], "v": ["a"]}, schema=schema))
    with pytest.raises(SchemaIncompatibleError) as info:
        lake.write("raw.strict", pa.table({"v": ["b"]}))
    assert info.value.column == "id"


def test_overwrite_may_replace_the_schema_when_allowed(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1, 2]), mode="merge", keys=["id"])
    other = pa.table({"code": ["a", "b", "c"], "qty": pa.array([1, 2, 3], pa.int64())})
    with pytest.raises(SchemaIncompatibleError):
        lake.write("raw.items", other, mode="overwrite")
    commit = lake.write(
        "raw.items", other, mode="overwrite", allow_schema_replace=True, keys=["code"]
    )
    assert (commit.schema_change, commit.schema_version) == ("replaced", 2)
    assert lake.schema("raw.items") == other.schema
    assert lake.read("raw.items").num_rows == 3
    assert [v.change for v in lake.schema_history("raw.items")] == ["created", "replaced"]
    assert lake.store.get_dataset("raw.items").keys == ["code"]  # type: ignore[union-attr]
    with pytest.raises(DatasetError, match="allow_schema_replace"):
        lake.write("raw.items", other, allow_schema_replace=True)


def test_struct_fields_evolve(lake: Lake) -> None:
    lake.write("raw.nested", pa.table({"id": [1], "s": pa.array([{"a": 1}])}))
    commit = lake.write("raw.nested", pa.table({"id": [2], "s": pa.array([{"a": 2, "b": "x"}])}))
    assert commit.schema_change == "evolved"
    rows = {r["id"]: r["s"] for r in lake.read("raw.nested").to_pylist()}
    assert rows == {1: {"a": 1, "b": None}, 2: {"a": 2, "b": "x"}}


def test_a_schema_changed_outside_headwater_is_recorded_on_the_next_write(lake: Lake) -> None:
    lake.write("raw.items", base_rows([1]))
    outside = base_rows([2]).append_column("extra", pa.array([1]))
    write_deltalake(lake.location("raw.items"), outside, mode="append", schema_mode="merge")
    commit = lake.write("raw.items", base_rows([3]))
    assert (commit.schema_change, commit.schema_version) == (None, 2)
    versions = lake.schema_history("raw.items")
    assert [(v.change, v.table_version) for v in versions] == [("created", 0), ("evolved", 1)]
    assert DeltaTable(lake.location("raw.items")).version() == 2
