"""`replicate` against PostgreSQL: a whole schema into a zone, tables in parallel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from headwater.pipelines.spec import PipelineSpec
from headwater.workspace import Workspace


@pytest.fixture
def shop(postgres_url: str) -> Iterator[tuple[str, str]]:
    schema = f"rp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"""
            create schema {schema};
            create table {schema}.orders (id int primary key, updated_at timestamptz, amount numeric(10, 2));
            insert into {schema}.orders
              select g, timestamptz '2026-01-01 00:00+00' + g * interval '1 minute', g / 4.0
              from generate_series(1, 5000) as g;
            create table {schema}."Customer List" (id int primary key, name text);
            insert into {schema}."Customer List" values (1, 'Zoë'), (2, '日本'), (3, '🙂');
            create table {schema}.tmp_scratch (x int);
            create table {schema}.events (id bigint primary key, kind text);
            insert into {schema}.events select g, 'k' || (g % 3) from generate_series(1, 1000) g;
            """
        )
    try:
        yield postgres_url, schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


def test_replicate_a_schema_then_only_new_rows(shop: tuple[str, str], tmp_path: Path) -> None:
    url, schema = shop
    root = tmp_path / "ws"
    Workspace.init(root).close()
    (root / "headwater.yaml").write_text(
        yaml.safe_dump({"name": "rp", "connections": {"pg": {"type": "postgres", "url": url}}})
    )
    spec = PipelineSpec.from_yaml(
        f"""
name: mirror
steps:
  - type: replicate
    connection: pg
    tables: "*"
    schema: {schema}
    exclude: ["tmp_*"]
    to: raw
    mode: merge
    incremental: {{cursor: updated_at}}
    parallel: 3
"""
    )
    with Workspace.open(root) as ws:
        first = ws.run(spec)
        assert first.status == "succeeded", first.error
        assert ws.read("raw.orders").num_rows == 5000
        assert sorted(ws.read("raw.customer_list").column("name").to_pylist()) == [
            "Zoë",
            "日本",
            "🙂",
        ]
        assert ws.read("raw.events").num_rows == 1000
        assert not ws.lake.exists("raw.tmp_scratch")
        tables = first.steps[0].details["tables"]
        assert tables[f"{schema}.orders"]["checkpoint"].startswith("2026-01-04")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"update {schema}.orders set amount = -1, updated_at = now() where id <= 10;"
                f"insert into {schema}.events values (1001, 'new')"
            )
        second = ws.run(spec)
        assert second.status == "succeeded", second.error
        orders = ws.query(
            "select count(*) as n, sum(amount) filter (where amount = -1) as neg from raw.orders"
        )
        assert orders.to_pylist() == [{"n": 5000, "neg": -10}]
        assert ws.read("raw.events").num_rows == 1001  # no cursor column: re-read, merged
        with Workspace.open(root) as again:
            names = {row.step for row in again.store.list_checkpoints("mirror")}
        assert names == {f"replicate_pg_to_raw/{schema}.orders"}
