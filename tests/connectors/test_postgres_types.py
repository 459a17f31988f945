"""Property tests: every Arrow type the postgres connector maps goes in and comes back.

Each example writes a hypothesis-generated Arrow column (nulls, unicode and emoji,
extremes) through the destination into a new table and reads it back through the
source. It must come back equal, or as the documented coercion (docs/connectors/
postgres.md, "Type mapping"): unsigned and 8-bit integers widen, time zones become UTC,
nanosecond units become microseconds, durations become intervals, uuids become their
text, JSON becomes its (jsonb-normalized) text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.connectors.base import ListRejectSink
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.errors import SchemaIncompatibleError, SourceFormatError

EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    return PostgresConfig(url=postgres_url)


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def unique(prefix: str = "ty") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def round_trip(config: PostgresConfig, table: pa.Table, name: str | None = None) -> pa.Table:
    name = name or unique()
    dst = PostgresFactory().destination(config)
    result = dst.write(name, table.to_reader(max_chunksize=7), mode="append")
    assert result.rows == table.num_rows
    batches = list(PostgresFactory().source(config).read(name))
    return pa.Table.from_batches(batches, schema=batches[0].schema if batches else None)


def nan_safe(values: list[Any]) -> list[Any]:
    """NaN compares unequal to itself: stand it in by a marker for list equality."""

    def one(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return [one(v) for v in values]


# -- value strategies ----------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
emoji_text = st.one_of(
    text, st.sampled_from(["🦆", "日本語", "é", "👩‍👩‍👧", "'; DROP TABLE x; --", ""])
)


def ints(bits: int, signed: bool = True) -> st.SearchStrategy[int]:
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0]))


def decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Exact decimals of up to ``precision`` digits, ``scale`` of them after the point."""
    top = 10**precision - 1
    digits = st.one_of(st.integers(-top, top), st.sampled_from([top, -top, 0, 1, -1]))
    return digits.map(lambda i: Decimal(f"{i}e-{scale}"))


naive = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
aware = st.datetimes(
    dt.datetime(1, 1, 2),
    dt.datetime(9999, 12, 30),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]),
)
floats64 = st.floats(allow_nan=True, allow_infinity=True)
floats32 = st.floats(allow_nan=True, allow_infinity=True, width=32)
jsons = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


@dataclass(frozen=True)
class Case:
    """One Arrow type: how to draw its values, what comes back (type, values)."""

    id: str
    arrow: pa.DataType
    values: st.SearchStrategy[Any]
    back: pa.DataType | None = None  # None: the same type
    expect: Callable[[list[Any]], list[Any]] = lambda v: v


def _ns(values: list[Any]) -> list[Any]:
    return [None if v is None else v * 1000 for v in values]


CASES = [
    Case("int16", pa.int16(), ints(16)),
    Case("int32", pa.int32(), ints(32)),
    Case("int64", pa.int64(), ints(64)),
    Case("int8 -> int16", pa.int8(), ints(8), pa.int16()),
    Case("uint8 -> int16", pa.uint8(), ints(8, False), pa.int16()),
    Case("uint16 -> int32", pa.uint16(), ints(16, False), pa.int32()),
    Case("uint32 -> int64", pa.uint32(), ints(32, False), pa.int64()),
    Case(
        "uint64 -> decimal(20,0)",
        pa.uint64(),
        ints(64, False),
        pa.decimal128(20, 0),
        lambda v: [None if x is None else Decimal(x) for x in v],
    ),
    Case("float32", pa.float32(), floats32),
    Case("float64", pa.float64(), floats64),
    Case("float16 -> float32", pa.float16(), st.sampled_from([0.5, -2.0, 65504.0]), pa.float32()),
    Case("decimal(38,0)", pa.decimal128(38, 0), decimals(38, 0)),
    Case("decimal(38,10)", pa.decimal128(38, 10), decimals(38, 10)),
    Case("decimal(38,38)", pa.decimal128(38, 38), decimals(38, 38)),
    Case("decimal(12,2)", pa.decimal128(12, 2), decimals(12, 2)),
    Case("decimal256(60,5)", pa.decimal256(60, 5), decimals(60, 5)),
    Case("string", pa.string(), emoji_text),
    Case("large_string -> string", pa.large_string(), emoji_text, pa.string()),
    Case("bool", pa.bool_(), st.booleans()),
    Case("date32", pa.date32(), st.dates()),
    Case("timestamp[us]", pa.timestamp("us"), naive),
    Case("timestamp[us, UTC]", pa.timestamp("us", "UTC"), aware),
    Case(
        "timestamp[ms, Paris] -> UTC",
        pa.timestamp("ms", "Europe/Paris"),
        st.integers(-(2**40), 2**40),
        pa.timestamp("us", "UTC"),
        lambda v: [None if x is None else x * 1000 for x in v],
    ),
    Case("time64[us]", pa.time64("us"), st.times()),
    Case(
        "time32[ms] -> time64[us]",
        pa.time32("ms"),
        st.integers(0, 86_399_999),
        pa.time64("us"),
        lambda v: [None if x is None else x * 1000 for x in v],
    ),
    Case(
        "interval",
        pa.month_day_nano_interval(),
        st.tuples(
            st.integers(-1000, 1000),
            st.integers(-1000, 1000),
            st.integers(-(10**12), 10**12).map(lambda us: us * 1000),
        ),
    ),
    Case(
        "duration -> interval",
        pa.duration("us"),
        st.integers(-(10**14), 10**14),
        pa.month_day_nano_interval(),
        lambda v: [None if x is None else (0, 0, x * 1000) for x in v],
    ),
    Case("binary", pa.binary(), st.binary(max_size=20)),
    Case("large_binary -> binary", pa.large_binary(), st.binary(max_size=20), pa.binary()),
    Case(
        "fixed_size_binary -> binary", pa.binary(3), st.binary(min_size=3, max_size=3), pa.binary()
    ),
    Case(
        "uuid -> string",
        pa.uuid(),
        st.uuids().map(lambda u: u.bytes),
        pa.string(),
        lambda v: [None if x is None else str(uuid.UUID(bytes=x)) for x in v],
    ),
    Case("list<int64>", pa.list_(pa.int64()), st.lists(st.none() | ints(64), max_size=4)),
    Case("list<string>", pa.list_(pa.string()), st.lists(st.none() | emoji_text, max_size=4)),
    Case("list<float64>", pa.list_(pa.float64()), st.lists(st.none() | floats64, max_size=4)),
    Case("list<bool>", pa.list_(pa.bool_()), st.lists(st.none() | st.booleans(), max_size=4)),
    Case("list<date32>", pa.list_(pa.date32()), st.lists(st.none() | st.dates(), max_size=3)),
    Case("list<timestamp>", pa.list_(pa.timestamp("us")), st.lists(st.none() | naive, max_size=3)),
    Case(
        "list<decimal(10,3)>",
        pa.list_(pa.decimal128(10, 3)),
        st.lists(st.none() | decimals(10, 3), max_size=3),
    ),
    Case(
        "list<binary>",
        pa.list_(pa.binary()),
        st.lists(st.none() | st.binary(max_size=5), max_size=3),
    ),
    Case(
        "large_list<int32> -> list",
        pa.large_list(pa.int32()),
        st.lists(st.none() | ints(32), max_size=3),
        pa.list_(pa.int32()),
    ),
]


def _column(case: Case, values: list[Any]) -> pa.Array:
    if case.id.startswith("timestamp[ms"):
        return pa.array(values, pa.int64()).cast(case.arrow)
    if case.id.startswith("time32"):
        return pa.array(values, pa.int32()).cast(case.arrow)
    if case.id.startswith("duration"):
        return pa.array(values, pa.int64()).cast(case.arrow)
    return pa.array(values, case.arrow)


def _compare(case: Case, back: pa.Table, values: list[Any]) -> None:
    column = back.column("v")
    assert column.type == (case.back or case.arrow), case.id
    got = column.to_pylist()
    if case.id.startswith(("timestamp[ms", "time32")):
        got = column.cast(pa.int64()).to_pylist()
    if pa.types.is_interval(column.type):
        got = [None if x is None else (x.months, x.days, x.nanoseconds) for x in got]
    assert nan_safe(got) == nan_safe(case.expect(values)), case.id


ALL_TYPES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@ALL_TYPES
@given(st.integers(1, 12), st.data())
def test_every_type_round_trips(config: PostgresConfig, rows: int, data: st.DataObject) -> None:
    """One table with a column of every mapped type per example (one write, one read)."""
    columns = {"id": pa.array(range(rows), pa.int32())}
    drawn = {}
    for case in CASES:
        values = data.draw(st.lists(st.none() | case.values, min_size=rows, max_size=rows))
        drawn[case.id] = values
        columns[case.id] = _column(case, values)
    back = round_trip(config, pa.table(columns)).sort_by("id")
    assert back.num_rows == rows
    for case in CASES:
        _compare(case, back.select([case.id]).rename_columns(["v"]), drawn[case.id])


@EXAMPLES
@given(
    st.lists(st.sampled_from(CASES), min_size=1, max_size=3, unique_by=lambda c: c.id),
    st.lists(st.none() | ints(64), min_size=1, max_size=30),
    st.data(),
)
def test_appends_into_the_created_table_read_back_in_order(
    config: PostgresConfig, cases: list[Case], ids: list[int | None], data: st.DataObject
) -> None:
    """Two appends of the same types into one table, read back ordered by a nullable key."""
    name = unique("two")
    tables = []
    for part in (ids[: len(ids) // 2], ids[len(ids) // 2 :]):
        columns = {"k": pa.array(part, pa.int64())}
        for case in cases:
            values = data.draw(
                st.lists(st.none() | case.values, min_size=len(part), max_size=len(part))
            )
            columns[case.id] = _column(case, values)
        tables.append(pa.table(columns))
        dst = PostgresFactory().destination(config)
        dst.write(name, tables[-1].to_reader(max_chunksize=5), mode="append")
    src = PostgresFactory().source(config)
    back = pa.Table.from_batches(list(src.read(name, order_by=["k"], columns=["k"])))
    expected = sorted(k for k in ids if k is not None) + [None] * ids.count(None)
    assert back.column("k").to_pylist() == expected


def test_empty_tables_keep_their_types(config: PostgresConfig) -> None:
    name = unique("empty")
    empty = pa.table({case.id: pa.array([], case.arrow) for case in CASES})
    assert PostgresFactory().destination(config).write(name, empty.to_reader()).rows == 0
    src = PostgresFactory().source(config)
    batches = list(src.read(name))
    assert sum(b.num_rows for b in batches) == 0
    stream = next(s for s in src.discover() if s.name == f"public.{name}")
    assert stream.schema is not None
    assert [(f.name, f.type) for f in stream.schema] == [
        (case.id, case.back or case.arrow) for case in CASES
    ]
    if batches:
        assert batches[0].schema.types == stream.schema.types


# -- columns of types Arrow has no twin for: written as text, read as text ------------------


@EXAMPLES
@given(st.lists(st.none() | jsons, min_size=1, max_size=8))
def test_json_and_jsonb_columns(config: PostgresConfig, postgres_url: str, docs: list[Any]) -> None:
    name = unique("json")
    sql(postgres_url, f"CREATE TABLE {name} (id int4, j json, b jsonb)")
    texts = [None if d is None else json.dumps(d, ensure_ascii=False) for d in docs]
    table = pa.table({"id": pa.array(range(len(docs)), pa.int32()), "j": texts, "b": texts})
    back = round_trip(config, table, name).sort_by("id")
    assert back.schema.field("j").type == pa.string() == back.schema.field("b").type
    assert back.column("j").to_pylist() == texts  # json keeps the text as written
    parsed = [None if t is None else json.loads(t) for t in back.column("b").to_pylist()]
    assert parsed == docs  # jsonb keeps the value, in its own normalized text
    # Arrow's JSON extension type creates a jsonb column
    ext = pa.table({"d": pa.array(texts, pa.json_())})
    back = round_trip(config, ext)
    assert [None if t is None else json.loads(t) for t in back.column("d").to_pylist()] == docs


@EXAMPLES
@given(st.lists(st.none() | st.uuids(), min_size=1, max_size=8))
def test_uuid_columns_take_text_and_bytes(
    config: PostgresConfig, postgres_url: str, ids: list[uuid.UUID | None]
) -> None:
    name = unique("uuid")
    sql(postgres_url, f"CREATE TABLE {name} (n int4, u uuid, us uuid[])")
    upper = [None if u is None else str(u).upper() for u in ids]
    table = pa.table(
        {
            "n": pa.array(range(len(ids)), pa.int32()),
            "u": upper,
            "us": [None if u is None else [u, None] for u in upper],
        },
    )
    back = round_trip(config, table, name).sort_by("n")
    canonical = [None if u is None else str(u) for u in ids]
    assert back.column("u").to_pylist() == canonical
    assert back.column("us").to_pylist() == [None if u is None else [u, None] for u in canonical]
    raw = pa.table({"u": pa.array([None if u is None else u.bytes for u in ids], pa.uuid())})
    PostgresFactory().destination(config).write(name, raw.to_reader(), mode="append")
    assert sql(postgres_url, f"SELECT count(*) FROM {name} WHERE n IS NULL") == [(len(ids),)]


@EXAMPLES
@given(
    st.lists(st.none() | st.sampled_from(["sad", "ok", "happy 🙂", "it's"]), min_size=1, max_size=8)
)
def test_enum_columns_read_as_their_labels(
    config: PostgresConfig, postgres_url: str, labels: list[str | None]
) -> None:
    name, mood = unique("enum"), unique("mood")
    sql(postgres_url, f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy 🙂', 'it''s')")
    sql(postgres_url, f"CREATE TABLE {name} (id int4, m {mood}, ms {mood}[])")
    for i, label in enumerate(labels):
        sql(
            postgres_url,
            f"INSERT INTO {name} VALUES (%s, %s, %s)",
            (i, label, None if label is None else [label, label]),
        )
    stream = next(
        s for s in PostgresFactory().source(config).discover() if s.name == f"public.{name}"
    )
    assert stream.schema is not None
    assert stream.schema.field("m").type == pa.string()
    assert stream.schema.field("ms").type == pa.list_(pa.string())
    batches = list(PostgresFactory().source(config).read(name))
    back = pa.Table.from_batches(batches).sort_by("id")
    assert back.column("m").to_pylist() == labels
    assert back.column("ms").to_pylist() == [None if x is None else [x, x] for x in labels]
    # labels written as text go into the enum column
    write = pa.table({"id": pa.array([100], pa.int32()), "m": ["ok"]})
    PostgresFactory().destination(config).write(name, write.to_reader(), mode="append")
    assert sql(postgres_url, f"SELECT m::text FROM {name} WHERE id = 100") == [("ok",)]


@EXAMPLES
@given(st.lists(st.none() | decimals(38, 12) | decimals(26, 0), min_size=1, max_size=8))
def test_unconstrained_numeric_reads_as_exact_text(
    config: PostgresConfig, postgres_url: str, values: list[Decimal | None]
) -> None:
    """``numeric`` without a precision has no Arrow decimal twin: it reads as its text."""
    name = unique("numeric")
    sql(postgres_url, f"CREATE TABLE {name} (id int4, n numeric)")
    table = pa.table(
        {
            "id": pa.array(range(len(values)), pa.int32()),
            "n": pa.array(values, pa.decimal128(38, 12)),
        },
    )
    back = round_trip(config, table, name).sort_by("id")
    assert back.schema.field("n").type == pa.string()
    assert [None if v is None else Decimal(v) for v in back.column("n").to_pylist()] == values


def test_other_postgres_types_read_as_their_text(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("other")
    sql(
        postgres_url,
        f"""CREATE DOMAIN {name}_pos AS int4 CHECK (VALUE > 0);
        CREATE TABLE {name} (i inet, m money, x xml, p point, r int4range, b bit(3),
            tz timetz, ips inet[], o oid, d {name}_pos, c char(3), h tsvector)""",
    )
    sql(
        postgres_url,
        f"""INSERT INTO {name} VALUES ('10.0.0.1/8', 12.5, '<a>é</a>', '(1,2)', '[1,5)', '101',
            '10:00:00+02', '{{1.2.3.4, NULL}}', 4294967295, 7, 'ab', 'b a')""",
    )
    src = PostgresFactory().source(config)
    back = pa.Table.from_batches(list(src.read(name)))
    assert back.to_pylist() == [
        {
            "i": "10.0.0.1/8",
            "m": "$12.50",
            "x": "<a>é</a>",
            "p": "(1,2)",
            "r": "[1,5)",
            "b": "101",
            "tz": "10:00:00+02",
            "ips": ["1.2.3.4/32", None],
            "o": 4294967295,
            "d": 7,
            "c": "ab ",
            "h": "'a' 'b'",
        },
    ]
    stream = next(s for s in src.discover() if s.name == f"public.{name}")
    assert stream.schema is not None
    assert [(f.name, f.type) for f in back.schema] == [(f.name, f.type) for f in stream.schema]
    query = pa.Table.from_batches(list(src.read("q", options={"query": f"SELECT * FROM {name}"})))
    assert query.to_pylist() == back.to_pylist()


# -- what does not fit -------------------------------------------------------------------------


def test_nul_characters_are_refused_clearly(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("nul")
    dst = PostgresFactory().destination(config)
    dst.write(name, pa.table({"s": ["ok"]}).to_reader(), mode="append")
    with pytest.raises(SchemaIncompatibleError, match="NUL") as info:
        dst.write(name, pa.table({"s": ["a\x00b"]}).to_reader(), mode="append")
    assert name in info.value.message
    assert sql(postgres_url, f"SELECT s FROM {name}") == [("ok",)]


def test_values_finer_than_microseconds_are_refused(config: PostgresConfig) -> None:
    dst = PostgresFactory().destination(config)
    finer = (
        pa.array([1_001], pa.timestamp("ns")),
        pa.array([1_001], pa.time64("ns")),
        pa.array([1_500, None], pa.duration("ns")),
        pa.array([None, pa.MonthDayNano([0, 0, 1_500])], pa.month_day_nano_interval()).slice(1),
    )
    for column in finer:
        with pytest.raises(SchemaIncompatibleError, match="lose data"):  # not truncated
            dst.write(unique("ns"), pa.table({"t": column}).to_reader(), mode="append")


def test_nested_lists_and_structs_are_refused_before_writing(config: PostgresConfig) -> None:
    from headwater.errors import UnsupportedOperationError

    dst = PostgresFactory().destination(config)
    for column in (pa.array([[[1]]]), pa.array([{"a": 1}])):
        with pytest.raises(UnsupportedOperationError, match="no PostgreSQL column type"):
            dst.write(unique("nested"), pa.table({"c": column}).to_reader(), mode="append")


def test_numeric_nan_in_a_decimal_column_is_rejected_on_read(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique("nan")
    sql(postgres_url, f"CREATE TABLE {name} (id int4, amount numeric(10, 2))")
    sql(postgres_url, f"INSERT INTO {name} VALUES (1, 1.5), (2, 'NaN'), (3, NULL)")
    src = PostgresFactory().source(config)
    with pytest.raises(SourceFormatError, match="nan of column `amount`"):
        list(src.read(name))
    sink = ListRejectSink()
    back = pa.Table.from_batches(list(src.read(name, rejects=sink)))
    assert back.sort_by("id").to_pylist() == [
        {"id": 1, "amount": Decimal("1.50")},
        {"id": 3, "amount": None},
    ]
    assert [json.loads(r.raw_record) for r in sink.items] == [{"id": 2, "amount": "nan"}]
    assert "no decimal form" in sink.items[0].error
