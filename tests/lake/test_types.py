"""Arrow types produced by DuckDB and pyarrow round-trip through a dataset."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from headwater.errors import SchemaIncompatibleError
from headwater.lake import Lake

QUERY = """
select
    1::TINYINT as tiny, 2::UTINYINT as utiny, 3::BIGINT as big, 4::HUGEINT as huge,
    1.25::DECIMAL(10, 2) as amount, 0.5::FLOAT as ratio, 'text' as name, true as flag,
    TIMESTAMPTZ '2024-01-01 10:00:00+02' as at_tz, TIMESTAMP '2024-01-01 10:00:00' as at,
    TIMESTAMP_NS '2024-01-01 00:00:00.000001' as at_ns, DATE '2024-02-29' as day,
    [1, 2] as ints, ['a', NULL] as strs, {'x': 1, 'y': 'z'} as obj, MAP {'k': 1} as kv,
    'ab'::BLOB as bytes, '3e2c6e1a-6f1e-4b8e-9b7a-1d2c3b4a5f60'::UUID as id
"""
UUID = "3e2c6e1a-6f1e-4b8e-9b7a-1d2c3b4a5f60"

EXPECTED_TYPES = {
    "tiny": pa.int8(),
    "utiny": pa.int16(),
    "big": pa.int64(),
    "huge": pa.decimal128(38, 0),
    "amount": pa.decimal128(10, 2),
    "ratio": pa.float32(),
    "name": pa.string(),
    "flag": pa.bool_(),
    "at_tz": pa.timestamp("us", "UTC"),
    "at": pa.timestamp("us"),
    "at_ns": pa.timestamp("us"),
    "day": pa.date32(),
    "ints": pa.list_(pa.field("element", pa.int32())),
    "strs": pa.list_(pa.field("element", pa.string())),
    "obj": pa.struct([("x", pa.int32()), ("y", pa.string())]),
    "kv": pa.map_(pa.string(), pa.int32()),
    "bytes": pa.binary(),
}

EXPECTED_ROW = {
    "tiny": 1,
    "utiny": 2,
    "big": 3,
    "huge": Decimal(4),
    "amount": Decimal("1.25"),
    "ratio": 0.5,
    "name": "text",
    "flag": True,
    "at_tz": dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC),
    "at": dt.datetime(2024, 1, 1, 10),
    "at_ns": dt.datetime(2024, 1, 1, 0, 0, 0, 0),  # microsecond of 1ns timestamp = 0
    "day": dt.date(2024, 2, 29),
    "ints": [1, 2],
    "strs": ["a", None],
    "obj": {"x": 1, "y": "z"},
    "kv": [("k", 1)],
    "bytes": b"ab",
}


@pytest.mark.parametrize("string_view", [False, True], ids=["plain", "string_view"])
def test_duckdb_types_round_trip(sqlite_lake: Lake, string_view: bool) -> None:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    if string_view:  # DuckDB's newest Arrow output: string, binary and list views
        con.execute("SET arrow_output_version = '1.5'")
        con.execute("SET produce_arrow_string_view = true")
        con.execute("SET arrow_output_list_view = true")
    query = QUERY.replace("TIMESTAMP_NS '2024-01-01 00:00:00.000001'", "TIMESTAMP_NS '2024-01-01'")
    reader = con.sql(query).to_arrow_reader(1024)
    if string_view:
        assert pa.types.is_string_view(reader.schema.field("name").type)
        assert pa.types.is_list_view(reader.schema.field("ints").type)
    commit = sqlite_lake.write("raw.types", reader)
    assert commit.rows == 1
    schema = sqlite_lake.schema("raw.types")
    assert {f.name: f.type for f in schema} == {**EXPECTED_TYPES, "id": pa.string()}
    table = sqlite_lake.read("raw.types")
    assert table.schema == schema
    assert table.to_pylist() == [{**EXPECTED_ROW, "id": UUID}]
    # a second write of the same DuckDB output is compatible with what the first one created
    assert sqlite_lake.write("raw.types", con.sql(query)).schema_change is None


def test_extension_types_are_stored_as_their_storage_type(sqlite_lake: Lake) -> None:
    value = uuid.UUID(UUID)
    table = pa.table({"id": pa.array([value.bytes], pa.uuid())})
    sqlite_lake.write("raw.uuids", table)
    assert sqlite_lake.schema("raw.uuids").field("id").type == pa.binary()
    assert sqlite_lake.read("raw.uuids").column("id").to_pylist() == [value.bytes]


def test_sub_microsecond_timestamps_are_refused_not_truncated(sqlite_lake: Lake) -> None:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    sqlite_lake.write("raw.ns", con.sql("select TIMESTAMP_NS '2024-01-01' as at"))
    with pytest.raises(SchemaIncompatibleError) as info:
        sqlite_lake.write(
            "raw.ns", con.sql("select TIMESTAMP_NS '2024-01-01 00:00:00.000000001' as at")
        )
    assert info.value.column == "at"
    assert sqlite_lake.history("raw.ns")[0].version == 0


def test_types_delta_cannot_store_are_refused_with_a_hint(sqlite_lake: Lake) -> None:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    with pytest.raises(SchemaIncompatibleError) as info:
        sqlite_lake.write("raw.bad", con.sql("select 1 as id, TIME '10:00' as t"))
    assert info.value.column == "t"
    assert "string" in (info.value.hint or "")
    assert not sqlite_lake.exists("raw.bad")
