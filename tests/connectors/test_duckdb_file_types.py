"""duckdb: every Arrow type written through the destination and read back (hypothesis).

Each case says what a value reads back as: the same value, or the documented coercion
(zoned timestamps read as UTC, JSON and UUID as their text; see docs/connectors/duckdb.md).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.connectors.duckdb_file.client import DuckdbClient
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.errors import UnsupportedOperationError

UTC = dt.UTC
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Case:
    type: pa.DataType
    values: st.SearchStrategy[Any]
    read_type: pa.DataType
    expect: Callable[[Any], Any] = _same


def _decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Decimals of exactly this precision and scale, the extremes included (built from
    integers: Decimal arithmetic would round at its default 28 digits)."""
    top = 10**precision - 1
    ints = st.one_of(st.sampled_from([top, -top, 0, 1, -1]), st.integers(-top, top))
    return ints.map(lambda i: Decimal(f"{i}E-{scale}"))


def _to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(UTC)


def _int64s() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([-(2**63), 2**63 - 1, 0, -1]), st.integers(-(2**63), 2**63 - 1)
    )


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["😀👍🏽", "日本語", "é\u0301", "", " ", "'; DROP TABLE t; --", "a\x00b"]
)
STAMPS = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
ZONED = st.datetimes(
    dt.datetime(2, 1, 1),
    dt.datetime(9998, 12, 31),
    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata")]),
)

CASES: dict[str, Case] = {
    "int8": Case(pa.int8(), st.integers(-128, 127), pa.int8()),
    "int16": Case(pa.int16(), st.integers(-(2**15), 2**15 - 1), pa.int16()),
    "int32": Case(pa.int32(), st.integers(-(2**31), 2**31 - 1), pa.int32()),
    "int64": Case(pa.int64(), _int64s(), pa.int64()),
    "uint8": Case(pa.uint8(), st.integers(0, 255), pa.uint8()),
    "uint64": Case(pa.uint64(), st.integers(0, 2**64 - 1), pa.uint64()),
    "float64": Case(pa.float64(), st.floats(allow_nan=True, allow_infinity=True), pa.float64()),
    "float32": Case(pa.float32(), st.floats(width=32), pa.float32()),
    "decimal(38,9)": Case(pa.decimal128(38, 9), _decimals(38, 9), pa.decimal128(38, 9)),
    "decimal(38,0)": Case(pa.decimal128(38, 0), _decimals(38, 0), pa.decimal128(38, 0)),
    "decimal(10,2)": Case(pa.decimal128(10, 2), _decimals(10, 2), pa.decimal128(10, 2)),
    "decimal(4,4)": Case(pa.decimal128(4, 4), _decimals(4, 4), pa.decimal128(4, 4)),
    "string": Case(pa.string(), TEXT, pa.string()),
    "large_string": Case(pa.large_string(), TEXT, pa.string()),
    "bool": Case(pa.bool_(), st.booleans(), pa.bool_()),
    "date32": Case(pa.date32(), st.dates(), pa.date32()),
    "timestamp[us]": Case(pa.timestamp("us"), STAMPS, pa.timestamp("us")),
    "timestamp[us, tz]": Case(
        pa.timestamp("us", tz="UTC"), ZONED, pa.timestamp("us", tz="UTC"), _to_utc
    ),
    "timestamp[us, Europe/Paris]": Case(
        pa.timestamp("us", tz="Europe/Paris"), ZONED, pa.timestamp("us", tz="UTC"), _to_utc
    ),
    "time64[us]": Case(pa.time64("us"), st.times(), pa.time64("us")),
    "binary": Case(pa.binary(), st.binary(max_size=40), pa.binary()),
    "large_binary": Case(pa.large_binary(), st.binary(max_size=40), pa.binary()),
    # JSON and UUID read back as their text (as from postgres): a documented coercion
    "json": Case(
        pa.json_(),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ).map(lambda v: json.dumps(v, ensure_ascii=False)),
        pa.string(),
    ),
    "uuid": Case(pa.uuid(), st.uuids().map(lambda u: u.bytes), pa.string(), str),
    "list<string>": Case(
        pa.list_(pa.string()), st.lists(st.none() | TEXT, max_size=4), pa.list_(pa.string())
    ),
    "list<int64>": Case(
        pa.list_(pa.int64()), st.lists(st.none() | _int64s(), max_size=4), pa.list_(pa.int64())
    ),
    "struct": Case(
        pa.struct([("a", pa.int32()), ("b", pa.string()), ("c", pa.list_(pa.float64()))]),
        st.fixed_dictionaries(
            {
                "a": st.none() | st.integers(-(2**31), 2**31 - 1),
                "b": st.none() | TEXT,
                "c": st.none() | st.lists(st.floats(allow_nan=False), max_size=3),
            }
        ),
        pa.struct([("a", pa.int32()), ("b", pa.string()), ("c", pa.list_(pa.float64()))]),
    ),
}


def _client(tmp_path: Path) -> DuckdbClient:
    return DuckdbClient(DuckdbConfig(path=str(tmp_path / "types.duckdb")))


def _write_read(client: DuckdbClient, table: pa.Table, name: str) -> pa.Table:
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))
    result = client.write(name, reader, mode="overwrite")
    assert result.rows == table.num_rows
    return pa.Table.from_batches(list(client.read(name, order_by=["row"])))


@pytest.mark.parametrize("case_name", list(CASES))
def test_round_trip(tmp_path: Path, case_name: str) -> None:
    case = CASES[case_name]
    client = _client(tmp_path)
    counter = iter(range(10**6))

    @SETTINGS
    @given(st.lists(st.none() | case.values, max_size=40))
    def check(values: list[Any]) -> None:
        table = pa.table(
            {
                "row": pa.array(range(len(values)), pa.int64()),
                "value": pa.array(values, case.type),
            }
        )
        got = _write_read(client, table, f"t{next(counter)}")
        assert _same_type(got.schema.field("value").type, case.read_type)
        expected = [
            None if v is None else case.expect(v) for v in table.column("value").to_pylist()
        ]
        assert _nan_safe(got.column("value").to_pylist()) == _nan_safe(expected)
        # discover reports the type the read returns
        assert got.num_rows == len(values)

    check()
    streams = {s.name: s for s in client.discover()}
    schema = streams["t0"].schema
    assert schema is not None and _same_type(schema.field("value").type, case.read_type)


def _same_type(got: pa.DataType, expected: pa.DataType) -> bool:
    """Equal types; a list's child field may be named differently (DuckDB: after the column)."""
    if pa.types.is_list(got) and pa.types.is_list(expected):
        return _same_type(got.value_type, expected.value_type)
    if pa.types.is_struct(got) and pa.types.is_struct(expected):
        return got.num_fields == expected.num_fields and all(
            got.field(i).name == expected.field(i).name
            and _same_type(got.field(i).type, expected.field(i).type)
            for i in range(got.num_fields)
        )
    return bool(got == expected)


def _nan_safe(values: list[Any]) -> list[Any]:
    return ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in values]


def test_empty_tables_keep_their_schema(tmp_path: Path) -> None:
    client = _client(tmp_path)
    columns = {n.replace(" ", "_"): pa.array([], c.type) for n, c in CASES.items()}
    got = _write_read(client, pa.table({"row": pa.array([], pa.int64()), **columns}), "empty")
    assert got.num_rows == 0
    for field, case in zip(list(got.schema)[1:], CASES.values(), strict=True):
        assert _same_type(field.type, case.read_type), field


def test_unsupported_types_fail_clearly_before_writing(tmp_path: Path) -> None:
    client = _client(tmp_path)
    table = pa.table({"big dec": pa.array([Decimal(1)], pa.decimal256(50, 2))})
    with pytest.raises(UnsupportedOperationError) as info:
        client.write("u", pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    assert info.value.column == "big dec" and info.value.hint and "38" in info.value.message
    assert not (tmp_path / "types.duckdb").exists()


def test_nanosecond_and_second_timestamps_keep_their_unit(tmp_path: Path) -> None:
    client = _client(tmp_path)
    table = pa.table(
        {
            "row": [0],
            "ns": pa.array([1_700_000_000_123_456_789], pa.timestamp("ns")),
            "s": pa.array([1_700_000_000], pa.timestamp("s")),
        }
    )
    got = _write_read(client, table, "units")
    assert got.schema.types[1:] == [pa.timestamp("ns"), pa.timestamp("s")]
    assert got.equals(table)
