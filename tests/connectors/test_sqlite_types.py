"""sqlite: every Arrow type written through the destination and read back (hypothesis).

Each case says what a value reads back as: the same value, or the documented coercion
(SQLite has no decimal, date, time, JSON or UUID type and stores NaN as NULL; see
docs/connectors/sqlite.md).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import strategies as st

from headwater.connectors.sqlite.client import SqliteClient
from headwater.connectors.sqlite.factory import SqliteConfig
from headwater.errors import ConnectorError, UnsupportedOperationError
from tests.connectors.sql_file_cases import (
    FILE_DATABASE_CASES,
    STAMPS,
    Case,
    check_empty_table,
    check_round_trip,
    decimals,
    write_read,
)


def _nan_is_null(value: float) -> float | None:
    return None if math.isnan(value) else value


CASES: dict[str, Case] = {
    **FILE_DATABASE_CASES,
    "int8": Case(pa.int8(), st.integers(-128, 127), pa.int64()),
    "int16": Case(pa.int16(), st.integers(-(2**15), 2**15 - 1), pa.int64()),
    "int32": Case(pa.int32(), st.integers(-(2**31), 2**31 - 1), pa.int64()),
    "uint8": Case(pa.uint8(), st.integers(0, 255), pa.int64()),
    "uint32": Case(pa.uint32(), st.integers(0, 2**32 - 1), pa.int64()),
    "uint64 (up to 2**63-1)": Case(pa.uint64(), st.integers(0, 2**63 - 1), pa.int64()),
    "float64": Case(
        pa.float64(), st.floats(allow_nan=True, allow_infinity=True), pa.float64(), _nan_is_null
    ),
    "float32": Case(
        pa.float32(),
        st.floats(width=32, allow_nan=False, allow_infinity=True),
        pa.float64(),
    ),
    "decimal256(76,20)": Case(pa.decimal256(76, 20), decimals(76, 20), pa.decimal256(76, 20)),
    "timestamp[s]": Case(
        pa.timestamp("s"), STAMPS.map(lambda v: v.replace(microsecond=0)), pa.timestamp("us")
    ),
    "fixed_size_binary(4)": Case(pa.binary(4), st.binary(min_size=4, max_size=4), pa.binary()),
    "json": Case(
        pa.json_(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ).map(lambda v: json.dumps(v, ensure_ascii=False)),
        pa.string(),
    ),
}


def _client(tmp_path: Path) -> SqliteClient:
    return SqliteClient(SqliteConfig(path=str(tmp_path / "types.sqlite")))


@pytest.mark.parametrize("case_name", list(CASES))
def test_round_trip(tmp_path: Path, case_name: str) -> None:
    check_round_trip(_client(tmp_path), CASES[case_name], max_examples=12, max_size=25)


def test_empty_tables_keep_their_schema(tmp_path: Path) -> None:
    check_empty_table(_client(tmp_path), CASES)


def test_documented_coercions_in_storage(tmp_path: Path) -> None:
    """What the file holds: exact decimal text, UTC text with Z, NaN as NULL, JSON text."""
    client = _client(tmp_path)
    table = pa.table(
        {
            "row": [1],
            "d": pa.array(
                [Decimal("12345678901234567890.123456789012345678")], pa.decimal128(38, 18)
            ),
            "z": pa.array(
                [dt.datetime(2024, 6, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))],
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "f": pa.array([math.nan]),
            "t": pa.array([dt.time(23, 59, 59, 999999)]),
            "j": pa.array(['{"a": [1, 2.50]}'], pa.json_()),
        }
    )
    write_read(client, table, "c")
    import adbc_driver_sqlite.dbapi as adbc

    con = adbc.connect(str(tmp_path / "types.sqlite"))
    cur = con.cursor()
    cur.execute("SELECT typeof(d), d, z, typeof(f), t, j FROM c")
    row = cur.fetchone()
    cur.close()
    con.close()
    assert row == (
        "text",
        "12345678901234567890.123456789012345678",
        "2024-06-01 10:00:00.000000Z",
        "null",
        "23:59:59.999999",
        '{"a": [1, 2.50]}',
    )


def test_unsupported_types_fail_clearly_before_writing(tmp_path: Path) -> None:
    client = _client(tmp_path)
    for column in (
        pa.array([[1, 2]], pa.list_(pa.int64())),
        pa.array([{"a": 1}], pa.struct([("a", pa.int64())])),
        pa.array([dt.timedelta(seconds=1)], pa.duration("us")),
    ):
        table = pa.table({"bad col": column})
        with pytest.raises(UnsupportedOperationError) as info:
            client.write("u", pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
        assert info.value.column == "bad col" and info.value.hint
    assert not (tmp_path / "types.sqlite").exists() or "u" not in {
        s.name for s in client.discover()
    }
    big = pa.table({"n": pa.array([2**63], pa.uint64())})
    with pytest.raises((ConnectorError, pa.ArrowInvalid)):
        client.write("u", pa.RecordBatchReader.from_batches(big.schema, big.to_batches()))
    assert "u" not in {s.name for s in client.discover()}
