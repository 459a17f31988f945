"""postgres: range reads inside one exported snapshot, and the default split of big reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import Source
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.connectors.postgres.source import PostgresSource
from headwater.connectors.server.snapshot import RangeSplit, SnapshotRangeSource
from headwater.errors import ConfigError, ConnectorUnavailableError


def sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def ids(source: Source, table: str, predicate: str | None = None) -> list[int]:
    batches = list(source.read(table, predicate=predicate))
    if not batches:
        return []
    return sorted(pa.Table.from_batches(batches).column("id").to_pylist())


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    name = f"snap_{uuid.uuid4().hex[:8]}"
    sql(
        postgres_url,
        f"CREATE TABLE {name} (id int8 PRIMARY KEY, v text, amount numeric(10, 2));"
        f"INSERT INTO {name} SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 1000) g;"
        f"ANALYZE {name}",
    )
    yield name
    sql(postgres_url, f"DROP TABLE IF EXISTS {name}")


def test_every_range_reads_the_snapshot_exported_before_other_writes(
    postgres_url: str, table: str
) -> None:
    """Rows inserted, deleted or updated by another connection after the export are seen
    by no range: together the ranges read the table exactly as it was at the export."""
    source = PostgresFactory().source(PostgresConfig(url=postgres_url))
    assert isinstance(source, SnapshotRangeSource)
    with source.shared_snapshot() as snap:
        first = ids(snap, table, '"id" < 500')  # one range reads before the other writes
        sql(
            postgres_url,
            f"INSERT INTO {table} VALUES (1001, 'new', 1), (0, 'below', 1);"
            f"DELETE FROM {table} WHERE id IN (10, 900);"
            f"UPDATE {table} SET id = id + 5000 WHERE id IN (20, 800)",
        )
        later = ids(snap, table, '"id" >= 500') + ids(snap, table, '"id" IS NULL')
        bounds = snap.column_bounds(table, "id")
        amounts = pa.Table.from_batches(list(snap.read(table, predicate='"id" = 800')))
    assert sorted(first + later) == list(range(1, 1001))
    assert bounds == (1, 1000)
    assert amounts.column("amount").to_pylist() == [pa.scalar(200, pa.decimal128(10, 2)).as_py()]
    # without the shared snapshot, a read started now sees the other connection's writes
    now = ids(source, table)
    assert 1001 in now and 0 in now and 10 not in now and 5800 in now


def test_a_range_read_never_writes_and_the_snapshot_ends_with_the_context(
    postgres_url: str, table: str
) -> None:
    source = PostgresFactory().source(PostgresConfig(url=postgres_url))
    with source.shared_snapshot() as snap:
        assert isinstance(snap, PostgresSource) and snap.snapshot
        exported = snap.snapshot
    late = PostgresSource(PostgresConfig(url=postgres_url), snapshot=exported)
    with pytest.raises(ConnectorUnavailableError, match="snapshot shared by a parallel read"):
        ids(late, table)  # its transaction is gone: transient, the step retries afresh


def test_a_snapshot_id_is_checked_before_it_reaches_sql(postgres_url: str) -> None:
    with pytest.raises(ConfigError, match="Not a snapshot id"):
        PostgresSource(PostgresConfig(url=postgres_url), snapshot="x'; DROP TABLE t; --")


def test_default_split_needs_a_big_read_on_a_single_column_ordered_primary_key(
    postgres_url: str, table: str
) -> None:
    small = PostgresSource(PostgresConfig(url=postgres_url, parallel_read_rows=500))
    split = small.default_split(table)
    assert split == RangeSplit("id", 2, split.estimated_rows if split else 0)
    assert split is not None and split.estimated_rows >= 900  # the planner's estimate
    four = PostgresSource(
        PostgresConfig(url=postgres_url, parallel_read_rows=500, parallel_read_partitions=4)
    )
    assert (four.default_split(table) or RangeSplit("", 0, 0)).partitions == 4
    # off by default; too few rows for the threshold, or an incremental read of a few rows
    assert PostgresSource(PostgresConfig(url=postgres_url)).default_split(table) is None
    big = PostgresSource(PostgresConfig(url=postgres_url, parallel_read_rows=2_000_000))
    assert big.default_split(table) is None
    assert small.default_split(table, predicate='"id" > 990') is None
    off = PostgresSource(PostgresConfig(url=postgres_url, parallel_read_rows=0))
    assert off.default_split(table) is None
    # a query is not a table: no key to split on
    assert small.default_split(table, options={"query": f"SELECT * FROM {table}"}) is None


@pytest.mark.parametrize(
    "ddl",
    [
        "id int8, v text",  # no primary key
        "id text PRIMARY KEY, v text",  # a key that cannot be cut into ranges
        "id int8, k int8, v text, PRIMARY KEY (id, k)",  # a composite key
    ],
)
def test_no_default_split_without_a_suitable_key(postgres_url: str, ddl: str) -> None:
    name = f"snap_{uuid.uuid4().hex[:8]}"
    sql(postgres_url, f"CREATE TABLE {name} ({ddl})")
    try:
        columns = "id, k, v" if " k " in ddl else "id, v"
        values = "g::text" if "id text" in ddl else "g"
        extra = ", g" if " k " in ddl else ""
        sql(
            postgres_url,
            f"INSERT INTO {name} ({columns}) SELECT {values}{extra}, 'x' "
            f"FROM generate_series(1, 1000) g; ANALYZE {name}",
        )
        source = PostgresSource(PostgresConfig(url=postgres_url, parallel_read_rows=10))
        assert source.default_split(name) is None
    finally:
        sql(postgres_url, f"DROP TABLE {name}")
