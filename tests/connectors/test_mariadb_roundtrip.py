"""Hypothesis round trips through a real MariaDB: Arrow -> write -> read -> Arrow.

Each Arrow type is written (into a table the destination creates, or into a column type
made by hand) and read back equal, or with the documented coercion applied to the
expected values (see docs/connectors/mariadb.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory
from tests.connectors.server_cases import unique

UTC = dt.UTC
SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _admin() -> Any:
    import pymysql  # type: ignore[import-untyped]

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def sql(config: MariadbConfig, statement: str) -> list[tuple[Any, ...]]:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{config.database}`")
            cur.execute(statement)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def config(mariadb_url: str) -> MariadbConfig:
    return MariadbConfig(url=mariadb_url)


_runs = iter(range(1, 10**9))


def round_trip(config: MariadbConfig, table: pa.Table, name: str, mode: str = "append") -> pa.Table:
    """Append ``table`` (tagged with a fresh run number) to ``name``; read that run back.

    Appending (the table is created by the first write) and reading one run by predicate
    keeps every example to one LOAD DATA and one SELECT.
    """
    run = next(_runs)
    indexed = table.append_column("hw_i", pa.array(range(table.num_rows), pa.int64()))
    indexed = indexed.append_column("hw_run", pa.array([run] * table.num_rows, pa.int64()))
    dst = MariadbFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(indexed.schema, indexed.to_batches(max_chunksize=7))
    result = dst.write(name, reader, mode=mode)  # type: ignore[arg-type]
    assert result.rows == table.num_rows
    src = MariadbFactory().source(config)
    batches = list(src.read(name, order_by=["hw_i"], predicate=f'"hw_run" = {run}'))
    got = pa.Table.from_batches(batches, schema=batches[0].schema) if batches else None
    if got is None:  # no batch for an empty table: the schema comes from discover
        stream = {s.name: s for s in src.discover()}[name]
        assert stream.schema is not None
        got = stream.schema.empty_table()
    return got.drop_columns(["hw_i", "hw_run"])


def nullable(values: st.SearchStrategy[Any], max_size: int = 20) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(st.none(), values), max_size=max_size)


def ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    if signed:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        low, high = 0, 2**bits - 1
    return st.one_of(st.sampled_from([low, high, 0]), st.integers(low, high))


def decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Every decimal(precision, scale) value: random digits, and the extremes."""
    whole, frac = precision - scale, scale

    def build(sign: bool, digits: str) -> Decimal:
        text = digits[:whole] or "0"
        if frac:
            text += "." + digits[whole:]
        return Decimal(("-" if sign else "") + text)

    digit_strings = st.text("0123456789", min_size=precision, max_size=precision)
    extremes = st.sampled_from(["9" * precision, "0" * precision, "0" * (precision - 1) + "1"])
    return st.builds(build, st.booleans(), digit_strings | extremes)


def storable_uuids() -> st.SearchStrategy[uuid.UUID]:
    """UUIDs MariaDB's uuid type accepts (byte 6 >= 0x80 with byte 8 in 1..0x80 is refused,
    tested below); every standard version (1-8 with the RFC variant) is among them."""
    return st.uuids().filter(lambda u: not (u.bytes[6] >= 0x80 and 0x01 <= u.bytes[8] <= 0x80))


text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["", "NULL", "\\N", '"', "a,b\nc\r\n", "😀🎉 日本語 é", "\x00", "tail "]
)

Same = Callable[[Any], Any]


def ident(value: Any) -> Any:
    return value


# (Arrow type, value strategy, Arrow type read back, value coercion)
CASES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any], pa.DataType, Same]] = {
    "int8": (pa.int8(), ints(8, True), pa.int8(), ident),
    "int16": (pa.int16(), ints(16, True), pa.int16(), ident),
    "int32": (pa.int32(), ints(32, True), pa.int32(), ident),
    "int64": (pa.int64(), ints(64, True), pa.int64(), ident),
    "uint8": (pa.uint8(), ints(8, False), pa.uint8(), ident),
    "uint16": (pa.uint16(), ints(16, False), pa.uint16(), ident),
    "uint32": (pa.uint32(), ints(32, False), pa.uint32(), ident),
    "uint64": (pa.uint64(), ints(64, False), pa.uint64(), ident),
    "float32": (
        pa.float32(),
        st.floats(width=32, allow_nan=False, allow_infinity=False)
        | st.sampled_from([3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45]),
        pa.float32(),
        ident,
    ),
    "float64": (
        pa.float64(),
        st.floats(allow_nan=False, allow_infinity=False)
        | st.sampled_from([5e-324, 1.7976931348623157e308, -0.0, 0.1]),
        pa.float64(),
        ident,
    ),
    "decimal(10,2)": (pa.decimal128(10, 2), decimals(10, 2), pa.decimal128(10, 2), ident),
    "decimal(28,10)": (pa.decimal128(28, 10), decimals(28, 10), pa.decimal128(28, 10), ident),
    "decimal(38,0)": (pa.decimal128(38, 0), decimals(38, 0), pa.decimal128(38, 0), ident),
    "decimal(38,38)": (pa.decimal128(38, 38), decimals(38, 38), pa.decimal128(38, 38), ident),
    "decimal(65,30)": (pa.decimal256(65, 30), decimals(65, 30), pa.decimal256(65, 30), ident),
    "decimal(65,0)": (pa.decimal256(65, 0), decimals(65, 0), pa.decimal256(65, 0), ident),
    "string": (pa.string(), text, pa.string(), ident),
    "large_string": (pa.large_string(), text, pa.string(), ident),
    "binary": (pa.binary(), st.binary(max_size=40), pa.binary(), ident),
    "large_binary": (pa.large_binary(), st.binary(max_size=40), pa.binary(), ident),
    "bool": (pa.bool_(), st.booleans(), pa.int8(), lambda b: None if b is None else int(b)),
    "date32": (
        pa.date32(),
        st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
        pa.date32(),
        ident,
    ),
    "timestamp[us]": (
        pa.timestamp("us"),
        st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        pa.timestamp("us"),
        ident,
    ),
    "timestamp[ms]": (
        pa.timestamp("ms"),
        st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
        ),
        pa.timestamp("us"),
        ident,
    ),
    "timestamp[us, UTC]": (
        pa.timestamp("us", "UTC"),
        st.datetimes(
            dt.datetime(1970, 1, 1, 0, 0, 1),
            dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
            timezones=st.just(UTC),
        ),
        pa.timestamp("us", "UTC"),
        ident,
    ),
    "timestamp[us, Asia/Tokyo]": (
        pa.timestamp("us", "Asia/Tokyo"),
        st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18), timezones=st.just(UTC)),
        pa.timestamp("us", "UTC"),
        ident,
    ),
    "time64[us]": (
        pa.time64("us"),
        st.times(),
        pa.time64("us"),
        ident,
    ),
    "time32[s]": (
        pa.time32("s"),
        st.times().map(lambda t: t.replace(microsecond=0)),
        pa.time64("us"),
        ident,
    ),
    "uuid": (
        pa.uuid(),
        storable_uuids().map(lambda u: u.bytes),
        pa.string(),
        lambda b: None if b is None else str(uuid.UUID(bytes=b)),
    ),
    "json": (
        pa.json_(),
        st.sampled_from(['{"a": [1, 2.5, null, "é😀"]}', "[]", '"text"', "3", "null", '{"k": {}}']),
        pa.string(),
        ident,
    ),
}


def _arrow_values(t: pa.DataType, values: list[Any]) -> pa.Array:
    if isinstance(t, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(t, pa.array(values, t.storage_type))
    return pa.array(values, t)


@pytest.mark.parametrize("case", sorted(CASES))
def test_type_round_trip(config: MariadbConfig, case: str) -> None:
    arrow, values, read_type, coerce = CASES[case]
    name = unique("rt")

    @SETTINGS
    @given(nullable(values))
    def check(items: list[Any]) -> None:
        table = pa.table({"v": _arrow_values(arrow, items)})
        got = round_trip(config, table, name)
        assert got.schema.field("v").type == read_type
        assert got.column("v").to_pylist() == [coerce(v) for v in items]

    check()


def test_every_type_in_one_table_and_empty_tables(config: MariadbConfig) -> None:
    """All columns at once (one CSV, one LOAD DATA), and the same schema with no rows."""
    name = unique("all")

    @SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        n = data.draw(st.integers(0, 12))
        columns, expected = {}, {}
        for case in sorted(CASES):
            arrow, values, _read, coerce = CASES[case]
            items = data.draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))
            columns[case] = _arrow_values(arrow, items)
            expected[case] = [coerce(v) for v in items]
        table = pa.table(columns)
        got = round_trip(config, table, name)
        assert got.schema == pa.schema([(c, CASES[c][2]) for c in sorted(CASES)])
        assert {c: got.column(c).to_pylist() for c in got.column_names} == expected

    check()


def test_every_type_with_no_rows(config: MariadbConfig) -> None:
    table = pa.table({case: _arrow_values(CASES[case][0], []) for case in sorted(CASES)})
    got = round_trip(config, table, unique("empty"))
    assert got.num_rows == 0
    assert got.schema == pa.schema([(c, CASES[c][2]) for c in sorted(CASES)])


def test_null_only_and_dictionary_columns(config: MariadbConfig) -> None:
    table = pa.table(
        {
            "nothing": pa.array([None, None], pa.null()),
            "dict": pa.array(["x", None]).dictionary_encode(),
        }
    )
    got = round_trip(config, table, unique("nul"))
    assert got.to_pylist() == [{"nothing": None, "dict": "x"}, {"nothing": None, "dict": None}]
    assert got.schema == pa.schema([("nothing", pa.string()), ("dict", pa.string())])


# -- column types made by hand -----------------------------------------------------------------

HAND_MADE = {
    # column type: (strategy of Python values written as Arrow, Arrow type written, read type)
    "tinyint(1)": (st.booleans(), pa.bool_(), pa.int8()),
    "enum('a','b','é😀')": (st.sampled_from(["a", "b", "é😀"]), pa.string(), pa.string()),
    "uuid": (storable_uuids().map(str), pa.string(), pa.string()),
    "json": (st.sampled_from(['{"a": 1}', "[1, 2]", '"x"']), pa.string(), pa.string()),
    "varchar(8)": (st.text(max_size=8), pa.string(), pa.string()),
    "char(3)": (
        st.text(alphabet="xyz😀", min_size=0, max_size=3).map(str.rstrip),
        pa.string(),
        pa.string(),
    ),
    "varbinary(16)": (st.binary(max_size=16), pa.binary(), pa.binary()),
    "binary(4)": (st.binary(min_size=4, max_size=4), pa.binary(), pa.binary()),
    "blob": (st.binary(max_size=100), pa.binary(), pa.binary()),
    "mediumint unsigned": (ints(24, False), pa.uint32(), pa.uint32()),
    "mediumint": (ints(24, True), pa.int32(), pa.int32()),
    "year": (st.integers(1901, 2155), pa.int16(), pa.int16()),
    "datetime": (
        st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 1, 1)).map(
            lambda d: d.replace(microsecond=0)
        ),
        pa.timestamp("us"),
        pa.timestamp("us"),
    ),
    "decimal(65,38)": (decimals(65, 38), pa.decimal256(65, 38), pa.decimal256(65, 38)),
    "double": (st.floats(allow_nan=False, allow_infinity=False), pa.float64(), pa.float64()),
}


@pytest.mark.parametrize("column_type", sorted(HAND_MADE))
def test_existing_column_types_round_trip(config: MariadbConfig, column_type: str) -> None:
    values, arrow, read_type = HAND_MADE[column_type]
    name = unique("hm")
    sql(config, f"CREATE TABLE `{name}` (v {column_type} NULL, hw_i bigint, hw_run bigint)")

    @SETTINGS
    @given(nullable(values, 10))
    def check(items: list[Any]) -> None:
        table = pa.table({"v": pa.array(items, arrow)})
        got = round_trip(config, table, name)
        assert got.schema.field("v").type == read_type
        expected = pa.array(items, arrow).cast(read_type).to_pylist()
        if column_type == "uuid":
            expected = [None if v is None else str(uuid.UUID(v)) for v in items]
        assert got.column("v").to_pylist() == expected

    check()


def test_decimals_wider_than_arrow_decimal128(config: MariadbConfig) -> None:
    """decimal(39..65, s) read as decimal256 (decimal128 holds 38 digits); written from it."""
    name = unique("wide")
    big = Decimal("9" * 35 + "." + "9" * 30)
    small = Decimal("-0.000000000000000000000000000001")
    table = pa.table({"d": pa.array([big, small, Decimal("-" + str(big))], pa.decimal256(65, 30))})
    got = round_trip(config, table, name)
    assert got.schema.field("d").type == pa.decimal256(65, 30)
    assert got.column("d").to_pylist() == table.column("d").to_pylist()
    assert sql(config, f"SELECT data_type, numeric_precision FROM information_schema.COLUMNS "
                       f"WHERE table_schema = DATABASE() AND table_name = '{name}' "
                       "AND column_name = 'd'") == [("decimal", 65)]  # fmt: skip
    from headwater.errors import SchemaIncompatibleError

    with pytest.raises(SchemaIncompatibleError) as info:
        round_trip(config, pa.table({"d": pa.array([1], pa.decimal256(66, 0))}), unique("w"))
    assert "65" in (info.value.hint or "")


def test_uuids_mariadb_refuses(config: MariadbConfig) -> None:
    from headwater.connectors.base import ListRejectSink
    from headwater.errors import SchemaIncompatibleError

    name = unique("uu")
    ok = uuid.UUID("12345678-1234-4234-9234-123456789abc")
    refused = uuid.UUID("12345678-1234-e234-7234-123456789abc")
    table = pa.table(
        {"u": pa.ExtensionArray.from_storage(pa.uuid(), pa.array([ok.bytes], pa.binary(16)))}
    )
    round_trip(config, table, name)
    bad = pa.table(
        {
            "u": pa.ExtensionArray.from_storage(
                pa.uuid(), pa.array([refused.bytes, ok.bytes], pa.binary(16))
            )
        }
    )
    dst = MariadbFactory().destination(config)
    with pytest.raises(SchemaIncompatibleError) as info:
        dst.write(name, bad.to_reader(), mode="append")
    assert info.value.column == "u" and "uuid" in str(info.value)
    sink = ListRejectSink()
    result = dst.write(
        name, bad.to_reader(), mode="append", schema_contract="discard_row", rejects=sink
    )
    assert result.rows == 1 and result.details["rows_rejected"] == 1
    assert str(refused) in sink.items[0].raw_record
    got = sql(config, f"SELECT CAST(u AS CHAR) FROM `{name}`")
    assert got == [(str(ok),), (str(ok),)]
