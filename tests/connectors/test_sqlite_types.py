"""sqlite: every Arrow type written through the destination and read back (hypothesis).

Each case says what a value reads back as: the same value, or the documented coercion
(SQLite has no decimal, date, time, JSON or UUID type and stores NaN as NULL; see
docs/connectors/sqlite.md).
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

from headwater.connectors.sqlite.client import SqliteClient
from headwater.connectors.sqlite.factory import SqliteConfig
from headwater.errors import ConnectorError, UnsupportedOperationError

UTC = dt.UTC
SETTINGS = settings(
    max_examples=12,
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


def _nan_is_null(value: float) -> float | None:
    return None if math.isnan(value) else value


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
    "int8": Case(pa.int8(), st.integers(-128, 127), pa.int64()),
    "int16": Case(pa.int16(), st.integers(-(2**15), 2**15 - 1), pa.int64()),
    "int32": Case(pa.int32(), st.integers(-(2**31), 2**31 - 1), pa.int64()),
    "int64": Case(pa.int64(), _int64s(), pa.int64()),
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
    "decimal(38,9)": Case(pa.decimal128(38, 9), _decimals(38, 9), pa.decimal128(38, 9)),
    "decimal(38,0)": Case(pa.decimal128(38, 0), _decimals(38, 0), pa.decimal128(38, 0)),
    "decimal(10,2)": Case(pa.decimal128(10, 2), _decimals(10, 2), pa.decimal128(10, 2)),
    "decimal256(76,20)": Case(pa.decimal256(76, 20), _decimals(76, 20), pa.decimal256(76, 20)),
    "string": Case(pa.string(), TEXT, pa.string()),
    "large_string": Case(pa.large_string(), TEXT, pa.string()),
    "bool": Case(pa.bool_(), st.booleans(), pa.bool_()),
    "date32": Case(pa.date32(), st.dates(), pa.date32()),
    "timestamp[us]": Case(pa.timestamp("us"), STAMPS, pa.timestamp("us")),
    "timestamp[s]": Case(
        pa.timestamp("s"), STAMPS.map(lambda v: v.replace(microsecond=0)), pa.timestamp("us")
    ),
    "timestamp[us, tz]": Case(
        pa.timestamp("us", tz="UTC"), ZONED, pa.timestamp("us", tz="UTC"), _to_utc
    ),
    "timestamp[us, Europe/Paris]": Case(
        pa.timestamp("us", tz="Europe/Paris"), ZONED, pa.timestamp("us", tz="UTC"), _to_utc
    ),
    "time64[us]": Case(pa.time64("us"), st.times(), pa.time64("us")),
    "binary": Case(pa.binary(), st.binary(max_size=40), pa.binary()),
    "large_binary": Case(pa.large_binary(), st.binary(max_size=40), pa.binary()),
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
    # JSON and UUID read back as their text (as from postgres): a documented coercion
    "uuid": Case(pa.uuid(), st.uuids().map(lambda u: u.bytes), pa.string(), str),
}


def _client(tmp_path: Path) -> SqliteClient:
    return SqliteClient(SqliteConfig(path=str(tmp_path / "types.sqlite")))


def _write_read(client: SqliteClient, table: pa.Table, name: str) -> pa.Table:
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
    @given(st.lists(st.none() | case.values, max_size=25))
    def check(values: list[Any]) -> None:
        table = pa.table(
            {
                "row": pa.array(range(len(values)), pa.int64()),
                "value": pa.array(values, case.type),
            }
        )
        got = _write_read(client, table, f"t{next(counter)}")
        assert got.schema.field("value").type == case.read_type
        expected = [
            None if v is None else case.expect(v) for v in table.column("value").to_pylist()
        ]
        assert got.column("value").to_pylist() == expected
        # discover reports the type the read returns
        assert got.num_rows == len(values)

    check()
    streams = {s.name: s for s in client.discover()}
    schema = streams["t0"].schema
    assert schema is not None and schema.field("value").type == case.read_type


def test_empty_tables_keep_their_schema(tmp_path: Path) -> None:
    client = _client(tmp_path)
    schema = pa.schema([pa.field(n.replace(" ", "_"), c.type) for n, c in CASES.items()])
    got = _write_read(
        client,
        pa.table(
            {"row": pa.array([], pa.int64()), **{f.name: pa.array([], f.type) for f in schema}}
        ),
        "empty",
    )
    assert got.num_rows == 0
    assert got.schema.types == [pa.int64(), *(c.read_type for c in CASES.values())]


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
    _write_read(client, table, "c")
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
