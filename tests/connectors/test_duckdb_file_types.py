"""duckdb: every Arrow type written through the destination and read back (hypothesis).

Each case says what a value reads back as: the same value, or the documented coercion
(zoned timestamps read as UTC, JSON and UUID as their text; see docs/connectors/duckdb.md).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import strategies as st

from headwater.connectors.duckdb_file.client import DuckdbClient
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.errors import UnsupportedOperationError
from tests.connectors.sql_file_cases import (
    FILE_DATABASE_CASES,
    TEXT,
    Case,
    check_empty_table,
    check_round_trip,
    decimals,
    int64s,
    write_read,
)

CASES: dict[str, Case] = {
    **FILE_DATABASE_CASES,
    "int8": Case(pa.int8(), st.integers(-128, 127), pa.int8()),
    "int16": Case(pa.int16(), st.integers(-(2**15), 2**15 - 1), pa.int16()),
    "int32": Case(pa.int32(), st.integers(-(2**31), 2**31 - 1), pa.int32()),
    "uint8": Case(pa.uint8(), st.integers(0, 255), pa.uint8()),
    "uint64": Case(pa.uint64(), st.integers(0, 2**64 - 1), pa.uint64()),
    "float64": Case(pa.float64(), st.floats(allow_nan=True, allow_infinity=True), pa.float64()),
    "float32": Case(pa.float32(), st.floats(width=32), pa.float32()),
    "decimal(4,4)": Case(pa.decimal128(4, 4), decimals(4, 4), pa.decimal128(4, 4)),
    # JSON reads back as its text (as from postgres): a documented coercion
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
    "list<string>": Case(
        pa.list_(pa.string()), st.lists(st.none() | TEXT, max_size=4), pa.list_(pa.string())
    ),
    "list<int64>": Case(
        pa.list_(pa.int64()), st.lists(st.none() | int64s(), max_size=4), pa.list_(pa.int64())
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


@pytest.mark.parametrize("case_name", list(CASES))
def test_round_trip(tmp_path: Path, case_name: str) -> None:
    check_round_trip(_client(tmp_path), CASES[case_name], max_examples=6, max_size=40)


def test_empty_tables_keep_their_schema(tmp_path: Path) -> None:
    check_empty_table(_client(tmp_path), CASES)


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
    got = write_read(client, table, "units")
    assert got.schema.types[1:] == [pa.timestamp("ns"), pa.timestamp("s")]
    assert got.equals(table)
