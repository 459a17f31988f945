"""Extract from PostgreSQL: big tables are read as parallel key ranges in one snapshot."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from headwater.pipelines.spec import PipelineSpec
from headwater.workspace import Workspace


@pytest.fixture
def orders(postgres_url: str) -> Iterator[tuple[str, str]]:
    schema = f"rr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"""
            create schema {schema};
            create table {schema}.orders (
                id bigint primary key, updated_at timestamptz, amount numeric(10, 2));
            insert into {schema}.orders
              select g, timestamptz '2026-01-01 00:00+00' + g * interval '1 minute', g / 4.0
              from generate_series(1, 5000) as g;
            analyze {schema}.orders;
            """
        )
    try:
        yield postgres_url, schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


def workspace(root: Path, url: str, **settings: Any) -> Workspace:
    Workspace.init(root).close()
    connection = {"type": "postgres", "url": url, **settings}
    (root / "headwater.yaml").write_text(
        yaml.safe_dump({"name": "rr", "connections": {"pg": connection}})
    )
    return Workspace.open(root)


def extract(schema: str, extra: str = "", mode: str = "overwrite") -> PipelineSpec:
    return PipelineSpec.from_yaml(
        f"""
name: orders
steps:
  - name: orders
    type: extract
    connection: pg
    stream: {schema}.orders
    to: raw.orders
    mode: {mode}
{extra}"""
    )


def ids(ws: Workspace) -> list[int]:
    return sorted(ws.read("raw.orders").column("id").to_pylist())


def test_a_big_table_is_split_on_its_primary_key_by_default(
    orders: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = orders
    with workspace(tmp_path / "ws", url, parallel_read_rows=1000) as ws:
        result = ws.run(extract(schema))
        assert result.status == "succeeded", result.error
        details = result.steps[0].details
        assert details["range_read"] == {
            "column": "id",
            "partitions": 2,
            "by_default": True,
            "shared_snapshot": True,
        }
        assert details["ranges"] == ['"id" < 2501', '"id" >= 2501', '"id" IS NULL']
        assert ids(ws) == list(range(1, 5001))
        assert sum(ws.read("raw.orders").column("amount").to_pylist()) == sum(
            r / 4 for r in range(1, 5001)
        )


@pytest.mark.parametrize(
    "extra",
    ["    partition: false\n", "    partition: {column: id, partitions: 1}\n"],
    ids=["false", "one-partition"],
)
def test_a_step_can_turn_the_default_split_off(
    orders: tuple[str, str], tmp_path: Path, extra: str
) -> None:
    url, schema = orders
    with workspace(tmp_path / "ws", url, parallel_read_rows=1000) as ws:
        result = ws.run(extract(schema, extra))
        assert result.status == "succeeded", result.error
        assert "range_read" not in result.steps[0].details
        assert ids(ws) == list(range(1, 5001))


def test_a_table_below_the_threshold_is_one_stream(orders: tuple[str, str], tmp_path: Path) -> None:
    url, schema = orders
    with workspace(tmp_path / "ws", url) as ws:  # default threshold: 2,000,000 rows
        result = ws.run(extract(schema))
        assert result.status == "succeeded", result.error
        assert "range_read" not in result.steps[0].details


def test_an_explicit_partition_reads_its_ranges_in_one_snapshot(
    orders: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = orders
    extra = "    partition: {column: updated_at, partitions: 3}\n"
    with workspace(tmp_path / "ws", url) as ws:
        result = ws.run(extract(schema, extra))
        assert result.status == "succeeded", result.error
        assert result.steps[0].details["range_read"] == {
            "column": "updated_at",
            "partitions": 3,
            "by_default": False,
            "shared_snapshot": True,
        }
        assert ids(ws) == list(range(1, 5001))


def test_incremental_reads_split_only_while_many_rows_are_new(
    orders: tuple[str, str], tmp_path: Path
) -> None:
    """The first run reads every row in two ranges and checkpoints the cursor; the next
    one reads the few new and changed rows as one stream, each exactly once."""
    url, schema = orders
    inc = "    incremental: {cursor: updated_at}\n    keys: [id]\n"
    with workspace(tmp_path / "ws", url, parallel_read_rows=1000) as ws:
        first = ws.run(extract(schema, inc, mode="merge"))
        assert first.status == "succeeded", first.error
        assert first.steps[0].details["range_read"]["by_default"] is True
        assert first.steps[0].details["checkpoint"].startswith("2026-01-04 11:20")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"insert into {schema}.orders values (5001, '2026-02-01 00:00+00', 1);"
                f"update {schema}.orders set amount = -1, updated_at = '2026-02-01 00:00+00' "
                "where id <= 3"
            )
        second = ws.run(extract(schema, inc, mode="merge"))
        assert second.status == "succeeded", second.error
        assert "range_read" not in second.steps[0].details
        assert second.steps[0].rows_in == 4
        assert ids(ws) == list(range(1, 5002))
        amounts = dict(
            zip(
                ws.read("raw.orders").column("id").to_pylist(),
                ws.read("raw.orders").column("amount").to_pylist(),
                strict=True,
            )
        )
        assert [float(amounts[i]) for i in (1, 2, 3, 4, 5001)] == [-1, -1, -1, 1, 1]


def test_a_chunked_incremental_read_is_never_split(orders: tuple[str, str], tmp_path: Path) -> None:
    url, schema = orders
    inc = "    incremental: {cursor: updated_at}\n    keys: [id]\n    checkpoint_every: 2000\n"
    with workspace(tmp_path / "ws", url, parallel_read_rows=1000) as ws:
        result = ws.run(extract(schema, inc, mode="merge"))
        assert result.status == "succeeded", result.error
        assert "range_read" not in result.steps[0].details
        assert result.steps[0].details["chunks"] == 3
        assert ids(ws) == list(range(1, 5001))
