"""mariadb source pushdowns for incremental and partitioned reads, against a real server.

Every predicate is checked against DuckDB evaluating the same DuckDB expression on the
same rows (read back through the connector): the pushdown must select exactly those.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headwater.connectors.base import PartitionedSource
from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory
from headwater.connectors.mariadb.source import to_mysql_predicate
from headwater.errors import ConfigError
from tests.connectors.server_cases import unique

UTC = dt.UTC


@pytest.fixture
def config(mariadb_url: str) -> MariadbConfig:
    return MariadbConfig(url=mariadb_url)


def read(config: MariadbConfig, stream: str, **kwargs: Any) -> pa.Table:
    source = MariadbFactory().source(config)
    batches = list(source.read(stream, **kwargs))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


def _rows() -> pa.Table:
    base = dt.datetime(2024, 1, 1, 10, 0, 0)
    edges = [
        base - dt.timedelta(microseconds=1),
        base,
        base + dt.timedelta(microseconds=1),
        base + dt.timedelta(microseconds=500_000),
        base - dt.timedelta(hours=2),  # 08:00 UTC == 10:00+02:00
        base - dt.timedelta(hours=2, microseconds=1),
        dt.datetime(2023, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2024, 1, 1),
        None,
        dt.datetime(2030, 6, 1, 12, 30),
    ]
    n = len(edges)
    return pa.table(
        {
            "id": pa.array([100, 150, 199, 200, 250, 99, 1, 2, None, 300], pa.int64()),
            "k": pa.array(["abc", "abd", "ab", "abc\u00e9", "b", "ABC", None, "", "a'b", "z😀"]),
            "amount": pa.array(
                [
                    Decimal(v) if v is not None else None
                    for v in [
                        "12.50",
                        "12.49",
                        "12.51",
                        "-1.00",
                        None,
                        "99999999.99",
                        "0.00",
                        "12.50",
                        "1",
                        "2",
                    ]
                ],
                pa.decimal128(10, 2),
            ),
            "day": pa.array([e.date() if e else None for e in edges], pa.date32()),
            "ts": pa.array(edges, pa.timestamp("us")),
            "tsz": pa.array(
                [e.replace(tzinfo=UTC) if e else None for e in edges], pa.timestamp("us", "UTC")
            ),
            "grp": pa.array([i % 3 if i % 4 else None for i in range(n)], pa.int32()),
        }
    )


@pytest.fixture(scope="module")
def events(mariadb_url: str) -> str:
    name = unique("events")
    cfg = MariadbConfig(url=mariadb_url)
    table = _rows()
    dst = MariadbFactory().destination(cfg)
    dst.write(name, table.to_reader(), mode="overwrite")
    return name


def _duck(table: pa.Table, predicate: str, order: str = "", limit: int | None = None) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("t", table)
        sql = f"SELECT * FROM t WHERE {predicate}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {limit}"
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


PREDICATES = [
    "\"ts\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"ts\" > CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"ts\" >= CAST('2024-01-01 10:00:00.000001' AS TIMESTAMP)",
    "\"ts\" < CAST('2024-01-01 10:00:00.5' AS TIMESTAMP)",
    "\"ts\" >= TIMESTAMP '2024-01-01 08:00:00'",
    "(\"tsz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ))",
    "(\"tsz\" >= CAST('2024-01-01 10:00:00+02:00' AS TIMESTAMPTZ))",
    "(\"tsz\" > CAST('2024-01-01 11:59:59.999999+02:00' AS TIMESTAMPTZ))",
    "\"tsz\" < CAST('2024-01-01 05:00:00-05:00' AS TIMESTAMPTZ)",
    "\"tsz\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP WITH TIME ZONE)",
    "\"tsz\" >= CAST('2024-01-01 09:59:59.999999' AS TIMESTAMP)",
    '"id" >= 100 AND "id" < 200',
    '"id" >= 200 OR "id" IS NULL',
    "\"k\" > 'abc'",
    "\"k\" = 'abc'",
    "\"k\" = 'a''b'",
    "\"k\" >= 'z'",
    "\"amount\" = CAST('12.50' AS DECIMAL(10,2))",
    "\"amount\" > CAST('12.50' AS DECIMAL(10,2))",
    "\"day\" >= CAST('2024-01-01' AS DATE)",
    "\"day\" < CAST('2024-01-01' AS DATE)",
    "\"ts\" >= CAST('2024-01-01' AS DATE)",
    '"grp" IN (1, 2) AND NOT ("id" = 250)',
]


@pytest.mark.parametrize("predicate", PREDICATES)
def test_predicates_filter_exactly_like_duckdb(
    config: MariadbConfig, events: str, predicate: str
) -> None:
    everything = read(config, events)
    expected = _duck(everything, predicate)
    got = read(config, events, predicate=predicate)
    key = lambda r: (r["id"] is None, r["id"] or 0)  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(expected.to_pylist(), key=key), (
        to_mysql_predicate(predicate)
    )


def test_zoned_literals_become_utc_wall_time() -> None:
    rendered = to_mysql_predicate("\"tsz\" >= CAST('2024-01-01 10:00:00.25+02:00' AS TIMESTAMPTZ)")
    assert rendered == "(`tsz` >= CAST('2024-01-01 08:00:00.250000' AS DATETIME(6)))"
    naive = to_mysql_predicate("\"ts\" >= CAST('2024-01-01 10:00:00.25' AS TIMESTAMP)")
    assert naive == "(`ts` >= CAST('2024-01-01 10:00:00.25' AS DATETIME(6)))"
    with pytest.raises(ConfigError):
        to_mysql_predicate("\"tsz\" >= CAST('yesterday-ish' AS TIMESTAMPTZ)")


def test_predicate_refuses_subqueries_and_statements() -> None:
    for bad in ("id IN (SELECT id FROM x)", "1 = 1; DROP TABLE x", "(SELECT 1)"):
        with pytest.raises(ConfigError):
            to_mysql_predicate(bad)


def test_order_by_sorts_nulls_last_with_predicate_and_limit(
    config: MariadbConfig, events: str
) -> None:
    everything = read(config, events)
    for order, predicate, limit in [
        (["grp", "id"], None, None),
        (["grp", "id"], '"id" >= 100', 3),
        (["ts"], "\"ts\" >= CAST('2024-01-01 09:59:59.999999' AS TIMESTAMP)", 2),
        (["id"], None, 4),
        (["k"], '"k" IS NOT NULL OR "id" > 0', None),
    ]:
        got = read(config, events, order_by=order, predicate=predicate, limit=limit)
        duck_order = ", ".join(f'"{c}" ASC NULLS LAST' for c in order)
        expected = _duck(everything, predicate or "TRUE", duck_order, limit)
        assert got.select(order).to_pylist() == expected.select(order).to_pylist(), order


def test_order_by_on_a_wide_decimal_sorts_numerically(config: MariadbConfig) -> None:
    # decimals wider than 28 digits are projected as text: ORDER BY must still use the number
    name = unique("wide")
    values = [Decimal("9.5"), Decimal("10.25"), None, Decimal("-3"), Decimal("100")]
    table = pa.table({"d": pa.array(values, pa.decimal128(38, 10))})
    MariadbFactory().destination(config).write(name, table.to_reader(), mode="overwrite")
    got = read(config, name, order_by=["d"]).column("d").to_pylist()
    assert got == [Decimal("-3"), Decimal("9.5"), Decimal("10.25"), Decimal("100"), None]


def test_order_by_with_a_query_and_unknown_columns(config: MariadbConfig, events: str) -> None:
    got = read(
        config,
        "q",
        options={"query": f"SELECT id, grp FROM `{events}`"},
        order_by=["id"],
        limit=3,
    )
    assert got.column("id").to_pylist() == [1, 2, 99]
    with pytest.raises(ConfigError) as info:
        read(config, events, order_by=["nope"])
    assert info.value.column == "nope"


def test_column_bounds(config: MariadbConfig, events: str) -> None:
    src = MariadbFactory().source(config)
    assert isinstance(src, PartitionedSource)
    assert src.column_bounds(events, "id") == (1, 300)
    assert src.column_bounds(events, "id", predicate='"id" >= 100 AND "id" < 200') == (100, 199)
    low, high = src.column_bounds(events, "amount")
    assert (low, high) == (Decimal("-1.00"), Decimal("99999999.99"))
    assert isinstance(low, Decimal)
    assert src.column_bounds(events, "day") == (dt.date(2023, 12, 31), dt.date(2030, 6, 1))
    assert src.column_bounds(events, "ts") == (
        dt.datetime(2023, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2030, 6, 1, 12, 30),
    )
    low, high = src.column_bounds(events, "tsz")
    assert low == dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert high == dt.datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
    assert low.tzinfo is not None and high.tzinfo is not None
    assert src.column_bounds(events, "k", predicate="\"k\" >= 'b'") == ("b", "z😀")
    assert src.column_bounds(events, "id", predicate='"id" > 1000') == (None, None)
    query = {"query": f"SELECT id * 2 AS twice, tsz FROM `{events}` WHERE id < 200"}
    assert src.column_bounds("q", "twice", options=query) == (2, 398)
    assert src.column_bounds("q", "tsz", options=query, predicate='"twice" > 2')[0] == (
        dt.datetime(2024, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(ConfigError):
        src.column_bounds(events, "nope")


def test_column_bounds_of_an_empty_table(config: MariadbConfig) -> None:
    name = unique("none")
    table = pa.table({"id": pa.array([], pa.int64())})
    MariadbFactory().destination(config).write(name, table.to_reader(), mode="overwrite")
    assert MariadbFactory().source(config).column_bounds(name, "id") == (None, None)


def test_incremental_key_ranges_cover_every_row_once(config: MariadbConfig, events: str) -> None:
    """What the engine does: bounds, then disjoint ranges read in order."""
    src = MariadbFactory().source(config)
    low, high = src.column_bounds(events, "id")
    seen: list[int] = []
    step = 60
    start = low
    while start <= high:
        predicate = f'"id" >= {start} AND "id" < {start + step}'
        seen += read(config, events, predicate=predicate, order_by=["id"])["id"].to_pylist()
        start += step
    assert seen == sorted(i for i in read(config, events)["id"].to_pylist() if i is not None)
