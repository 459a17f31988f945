"""postgres source pushdowns for incremental and partitioned reads, against a real PostgreSQL.

Predicates are the shapes the pipeline engine builds (DuckDB SQL); each one is checked
against DuckDB evaluating the very same predicate over the same rows (session time zone
UTC on both sides), so "pushed down" means "same rows as the engine would keep".
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import PartitionedSource
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.connectors.postgres.source import to_postgres_predicate
from headwater.errors import ConfigError, UnsupportedOperationError


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    # the session starts in New York time, as on a server whose default is not UTC:
    # reads must still compare timestamps as UTC instants
    return PostgresConfig(url=postgres_url + "?options=-c%20TimeZone%3DAmerica/New_York")


def read(config: PostgresConfig, stream: str, **kwargs: Any) -> pa.Table:
    batches = list(PostgresFactory().source(config).read(stream, **kwargs))
    return pa.Table.from_batches(batches) if batches else pa.table({})


@pytest.fixture
def events(postgres_url: str) -> str:
    name = unique("events")
    sql(
        postgres_url,
        f"""CREATE TABLE {name} (id int4, ts timestamp, tstz timestamptz, d date,
            amt numeric(10, 2), k text, f float8, u uuid)""",
    )
    sql(
        postgres_url,
        f"""INSERT INTO {name} VALUES
        (1, '2024-01-01 09:59:59.999999', '2024-01-01 09:59:59.999999+00', '2023-12-31',
            12.49, 'ab', 1.5, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
        (2, '2024-01-01 10:00:00', '2024-01-01 12:00:00+02', '2024-01-01', 12.50, 'abc', -2,
            '00000000-0000-0000-0000-000000000001'),
        (3, '2024-01-01 10:00:00.000001', '2024-01-01 10:00:00.000001+00', '2024-01-02',
            12.51, 'abd', 'NaN', NULL),
        (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (5, '2024-06-30 23:00:00', '2024-06-30 23:00:00-05', '2024-07-01', -99999999.99,
            'it''s', 'Infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
        (6, '1999-12-31 23:59:59', '1999-12-31 23:59:59+00', '1999-12-31', 0, 'Abc', 0,
            NULL)""",
    )
    return name


PREDICATES = [
    "\"ts\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"ts\" > CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"ts\" > CAST('2024-01-01 10:00:00.000000' AS TIMESTAMP_NS)",
    "(\"tstz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ))",
    "\"tstz\" > CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ)",
    "\"tstz\" >= CAST('2024-01-01 12:00:00+02:00' AS TIMESTAMPTZ)",
    "\"tstz\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",  # naive literal: UTC
    "\"ts\" >= CAST('2024-01-01 12:00:00+02:00' AS TIMESTAMPTZ)",  # naive column: UTC
    "\"tstz\" >= TIMESTAMPTZ '2024-07-01 04:00:00+00'",
    '"id" >= 2 AND "id" < 4',
    "\"k\" > 'abc'",
    "\"k\" > 'it''s' OR \"k\" = 'it''s'",
    "\"amt\" >= CAST('12.50' AS DECIMAL(10,2))",
    "\"amt\" < CAST('12.50' AS DECIMAL(10,2)) AND \"amt\" > CAST('-1' AS DECIMAL(10,2))",
    "\"d\" >= CAST('2024-01-01' AS DATE)",
    '"d" < CAST(\'2024-01-01\' AS DATE) OR "d" IS NULL',
    '"f" > 1',
    '"id" > 3 AND "ts" IS NOT NULL',
]


@pytest.mark.parametrize("predicate", PREDICATES)
def test_predicates_keep_the_rows_the_engine_keeps(
    config: PostgresConfig, events: str, predicate: str
) -> None:
    import duckdb

    everything = read(config, events)
    assert everything.num_rows == 6
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", everything)
    expected = sorted(r[0] for r in con.sql(f"SELECT id FROM events WHERE {predicate}").fetchall())
    got = read(config, events, columns=["id"], predicate=predicate)
    assert sorted(got.column("id").to_pylist()) == expected
    assert expected, "every predicate here keeps at least one row"


def test_predicate_renders_one_postgres_expression() -> None:
    rendered = to_postgres_predicate("\"t\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP_NS)")
    assert rendered == "(\"t\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP))"
    assert to_postgres_predicate("\"k\" > 'a''b'") == "(\"k\" > 'a''b')"
    assert "DECIMAL(10, 2)" in to_postgres_predicate("x = CAST('12.50' AS DECIMAL(10,2))")
    for bad in ("", "  ", "1; DROP TABLE t", "SELECT 1", "x >"):
        with pytest.raises(ConfigError):
            to_postgres_predicate(bad)


def test_timestamps_keep_microseconds_at_the_boundary(config: PostgresConfig, events: str) -> None:
    got = read(
        config,
        events,
        columns=["id", "ts"],
        predicate="\"ts\" > CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
        order_by=["ts"],
    )
    assert got.column("id").to_pylist() == [3, 5]
    assert got.column("ts")[0].as_py() == dt.datetime(2024, 1, 1, 10, 0, 0, 1)


# -- order_by ----------------------------------------------------------------------------------


def test_order_by_sorts_ascending_with_nulls_last(config: PostgresConfig, events: str) -> None:
    got = read(config, events, columns=["id"], order_by=["ts"])
    assert got.column("id").to_pylist() == [6, 1, 2, 3, 5, 4]
    got = read(config, events, columns=["id", "k"], order_by=["amt", "id"])
    assert got.column("id").to_pylist() == [5, 6, 1, 2, 3, 4]


def test_order_limit_and_predicate_combine(config: PostgresConfig, events: str) -> None:
    # a keyset page: the predicate first, then the order, then the limit
    page = read(
        config,
        events,
        columns=["id"],
        predicate="\"tstz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ)",
        order_by=["tstz", "id"],
        limit=2,
    )
    assert page.column("id").to_pylist() == [2, 3]
    assert read(config, events, order_by=["id"], limit=0).num_rows == 0
    # the order column need not be among the columns read
    got = read(config, events, columns=["k"], order_by=["d"], limit=3)
    assert got.column_names == ["k"] and got.column("k").to_pylist() == ["Abc", "ab", "abc"]


def test_order_by_a_uuid_column_read_as_text(config: PostgresConfig, events: str) -> None:
    got = read(config, events, columns=["u", "id"], order_by=["u", "id"])
    assert got.schema.field("u").type == pa.string()
    assert got.column("u").to_pylist()[:3] == [
        "00000000-0000-0000-0000-000000000001",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ]
    assert got.column("id").to_pylist()[3:] == [3, 4, 6]


def test_order_by_over_a_query(config: PostgresConfig, events: str) -> None:
    query = f"SELECT id, k, u FROM {events} WHERE id <> 1"
    got = read(config, "q", options={"query": query}, order_by=["k"], predicate="id < 6")
    assert got.column("id").to_pylist() == [2, 3, 5, 4]
    assert got.schema.field("u").type == pa.string()


def test_order_by_survives_small_batches(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("many")
    sql(
        postgres_url,
        f"CREATE TABLE {name} AS SELECT g AS id, (g * 7919) % 1000 AS v "
        "FROM generate_series(1, 3000) AS g",
    )
    src = PostgresFactory().source(config.model_copy(update={"batch_rows": 250}))
    batches = list(src.read(name, order_by=["v", "id"], predicate="id > 10", limit=2500))
    assert max(b.num_rows for b in batches) <= 250
    values = pa.Table.from_batches(batches).to_pylist()
    assert len(values) == 2500
    assert values == sorted(values, key=lambda r: (r["v"], r["id"]))


def test_order_by_unknown_column_is_named(config: PostgresConfig, events: str) -> None:
    with pytest.raises(ConfigError, match="no column 'nope'") as info:
        read(config, events, order_by=["nope"])
    assert info.value.field == "order_by"
    with pytest.raises(ConfigError, match="list of column names"):
        read(config, events, order_by="id")  # type: ignore[arg-type]


def test_order_by_weird_identifiers(config: PostgresConfig, postgres_url: str) -> None:
    name = unique('we"ird t')
    col = 'x"; DROP TABLE t; --'
    quoted = '"' + col.replace('"', '""') + '"'
    sql(postgres_url, f'CREATE TABLE "{name.replace(chr(34), chr(34) * 2)}" ({quoted} int4)')
    sql(postgres_url, f'INSERT INTO "{name.replace(chr(34), chr(34) * 2)}" VALUES (3), (1), (2)')
    got = read(config, name, order_by=[col], predicate=f"{quoted} > 1")
    assert got.column(col).to_pylist() == [2, 3]


# -- column_bounds --------------------------------------------------------------------------


def test_capabilities_and_protocol(config: PostgresConfig) -> None:
    caps = PostgresFactory.capabilities
    assert caps.incremental and caps.partitioned and caps.pushdown
    assert isinstance(PostgresFactory().source(config), PartitionedSource)


def test_column_bounds_as_python_scalars(config: PostgresConfig, events: str) -> None:
    src = PostgresFactory().source(config)
    assert isinstance(src, PartitionedSource)
    assert src.column_bounds(events, "id") == (1, 6)
    assert src.column_bounds(events, "amt") == (Decimal("-99999999.99"), Decimal("12.51"))
    lo, hi = src.column_bounds(events, "tstz")
    assert lo == dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert hi == dt.datetime(2024, 7, 1, 4, 0, tzinfo=dt.UTC)
    assert lo.utcoffset() == dt.timedelta(0)
    assert src.column_bounds(events, "ts") == (
        dt.datetime(1999, 12, 31, 23, 59, 59),
        dt.datetime(2024, 6, 30, 23, 0),
    )
    assert src.column_bounds(events, "d") == (dt.date(1999, 12, 31), dt.date(2024, 7, 1))
    assert src.column_bounds(events, "k") == ("Abc", "it's")
    lo, hi = src.column_bounds(events, "f")
    assert lo == -2.0 and math.isnan(hi)  # PostgreSQL (like DuckDB) orders NaN above inf


def test_column_bounds_with_predicate_and_empty_range(config: PostgresConfig, events: str) -> None:
    src = PostgresFactory().source(config)
    pred = "\"tstz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ)"
    assert src.column_bounds(events, "id", predicate=pred) == (2, 5)
    assert src.column_bounds(events, "id", predicate="id > 100") == (None, None)
    assert src.column_bounds(events, "amt", predicate="id = 4") == (None, None)


def test_column_bounds_over_a_query(config: PostgresConfig, events: str) -> None:
    src = PostgresFactory().source(config)
    query = f"SELECT id * 10 AS big, amt FROM {events}"
    assert src.column_bounds("q", "big", options={"query": query}) == (10, 60)
    got = src.column_bounds("q", "amt", options={"query": query}, predicate="big < 30")
    assert got == (Decimal("12.49"), Decimal("12.50"))


def test_column_bounds_errors(config: PostgresConfig, events: str) -> None:
    src = PostgresFactory().source(config)
    with pytest.raises(ConfigError, match="no column 'nope'"):
        src.column_bounds(events, "nope")
    with pytest.raises(UnsupportedOperationError, match="'u'"):
        src.column_bounds(events, "u")
    with pytest.raises(ConfigError):
        src.column_bounds(events, "id", options={"nope": 1})
