"""Push-down: a transform with `connection:` runs in that database, and its result equals
DuckDB's over the same data, for every supported dialect."""

from __future__ import annotations

import sqlite3
import textwrap
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from headwater.errors import PipelineSyntaxError, UnsupportedOperationError
from headwater.lineage import edges
from headwater.pipelines import PipelineSpec
from headwater.transform.pushdown import transpile
from headwater.workspace import Workspace

ORDERS = [
    (1, 10, 1250, "placed"),
    (2, 11, 700, "shipped"),
    (3, 10, 325, "cancelled"),
    (4, 12, 999, "placed"),
    (5, 12, 1, "placed"),
    (6, 13, 5000, "shipped"),
]
CUSTOMERS = [(10, "DE"), (11, "FR"), (12, "DE"), (13, "US")]

#: DuckDB's dialect, as every Headwater query: CTE, join, CASE, ||, window, division
SQL = """\
with totals as (
  select customer_id, count(*) as orders, sum(amount) as revenue,
         sum(case when status = 'cancelled' then 1 else 0 end) as cancelled
  from orders
  group by customer_id
)
select c.country, t.customer_id, t.orders, t.revenue, t.cancelled,
       c.country || '-' || cast(t.customer_id as varchar) as label,
       row_number() over (partition by c.country order by t.revenue desc) as rank_in_country,
       round(t.revenue / t.orders, 2) as avg_amount
from totals t join customers c on c.customer_id = t.customer_id
where t.orders > 0
"""

DDL = [
    "create table orders (order_id integer, customer_id integer, amount integer, "
    "status varchar(20))",
    "create table customers (customer_id integer, country varchar(2))",
]


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def value(v: Any) -> Any:
        if isinstance(v, Decimal | float):
            return round(float(v), 2)
        return v

    return sorted(tuple(value(v) for v in row) for row in rows)


def duckdb_result(sql: str = SQL) -> list[tuple[Any, ...]]:
    with duckdb.connect() as con:
        for ddl in DDL:
            con.execute(ddl)
        con.executemany("insert into orders values (?, ?, ?, ?)", ORDERS)
        con.executemany("insert into customers values (?, ?)", CUSTOMERS)
        return _norm(con.execute(sql).fetchall())


def _workspace(root: Path, connection: str, to: str, mode: str = "overwrite") -> Workspace:
    ws = Workspace.init(root)
    (root / "headwater.yaml").write_text(f"name: t\nconnections:\n  wh: {connection}\n")
    (root / "pipelines" / "push.yaml").write_text(
        "name: push\nsteps:\n  - name: totals\n    type: transform\n    connection: wh\n"
        f"    to: {to}\n    mode: {mode}\n    sql: |\n" + textwrap.indent(SQL, "      ")
    )
    ws.close()
    return Workspace.open(root)


def _check(
    tmp_path: Path,
    connection: str,
    to: str,
    load: Callable[[], None],
    fetch: Callable[[str], list[tuple[Any, ...]]],
    dialect: str,
) -> None:
    load()
    with _workspace(tmp_path / "ws", connection, to) as ws:
        result = ws.run("push")
        assert result.status == "succeeded", result.error
        step = result.step("totals")
        assert step.details["pushdown"] == dialect
        assert step.rows_out == 4
        expected = duckdb_result()
        assert _norm(fetch("select * from " + to)) == expected
        # overwrite again: same rows, not doubled
        assert ws.run("push").ok
        assert _norm(fetch("select * from " + to)) == expected


def test_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"

    def load() -> None:
        with sqlite3.connect(db) as con:
            for ddl in DDL:
                con.execute(ddl)
            con.executemany("insert into orders values (?, ?, ?, ?)", ORDERS)
            con.executemany("insert into customers values (?, ?)", CUSTOMERS)

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(db) as con:
            return con.execute(sql).fetchall()

    _check(tmp_path, f"{{type: sqlite, path: {db}}}", "main.totals", load, fetch, "sqlite")


def test_duckdb_file(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"

    def load() -> None:
        with duckdb.connect(str(db)) as con:
            for ddl in DDL:
                con.execute(ddl)
            con.executemany("insert into orders values (?, ?, ?, ?)", ORDERS)
            con.executemany("insert into customers values (?, ?)", CUSTOMERS)

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(db)) as con:
            return con.execute(sql).fetchall()

    _check(tmp_path, f"{{type: duckdb, path: {db}}}", "analytics.totals", load, fetch, "duckdb")


def test_postgres(tmp_path: Path, postgres_url: str) -> None:
    import psycopg

    schema = f"push_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"

    def load() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"create schema {schema}")
            con.execute(f"set search_path to {schema}")
            for ddl in DDL:
                con.execute(ddl)
            with con.cursor() as cur:
                cur.executemany("insert into orders values (%s, %s, %s, %s)", ORDERS)
                cur.executemany("insert into customers values (%s, %s)", CUSTOMERS)

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(postgres_url) as con:
            return con.execute(sql).fetchall()

    try:
        _check(
            tmp_path,
            f'{{type: postgres, url: "{url}"}}',
            f"{schema}.totals",
            load,
            fetch,
            "postgres",
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"drop schema if exists {schema} cascade")


def test_mariadb(tmp_path: Path, mariadb_url: str) -> None:
    import pymysql  # type: ignore[import-untyped]

    database = mariadb_url.rsplit("/", 1)[1]

    def connect() -> Any:
        return pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", database=database
        )

    def load() -> None:
        with connect() as con, con.cursor() as cur:
            for table in ("orders", "customers", "totals"):
                cur.execute(f"drop table if exists {table}")
            for ddl in DDL:
                cur.execute(ddl)
            cur.executemany("insert into orders values (%s, %s, %s, %s)", ORDERS)
            cur.executemany("insert into customers values (%s, %s)", CUSTOMERS)
            con.commit()

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        with connect() as con, con.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    _check(
        tmp_path,
        f"{{type: mariadb, url: {mariadb_url}}}",
        f"{database}.totals",
        load,
        fetch,
        "mysql",
    )


def test_append_mode_adds_rows(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    with sqlite3.connect(db) as con:
        for ddl in DDL:
            con.execute(ddl)
        con.executemany("insert into orders values (?, ?, ?, ?)", ORDERS)
        con.executemany("insert into customers values (?, ?)", CUSTOMERS)
    with _workspace(tmp_path / "ws", f"{{type: sqlite, path: {db}}}", "main.t", "append") as ws:
        assert ws.run("push").ok
        second = ws.run("push")
        assert second.ok and second.step("totals").rows_out == 4
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from t").fetchone() == (8,)


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "sqlite"])
def test_constructs_that_would_change_meaning_are_refused(dialect: str) -> None:
    with pytest.raises(UnsupportedOperationError, match="QUALIFY ... LIMIT/ORDER BY"):
        transpile(
            "select a from t qualify row_number() over (order by b) = 1 order by a limit 5",
            dialect,
        )
    with pytest.raises(UnsupportedOperationError, match="EXCLUDE"):
        transpile("select * exclude (a) from t", dialect)
    with pytest.raises(UnsupportedOperationError, match="UNION BY NAME"):
        transpile("select 1 as a union all by name select 2 as a", dialect)
    # DuckDB itself runs it as written
    assert "QUALIFY" in transpile(
        "select a from t qualify row_number() over (order by b) = 1 limit 5", "duckdb"
    )


def test_refused_construct_fails_the_step_before_touching_the_database(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    sqlite3.connect(db).close()
    ws = Workspace.init(tmp_path / "ws")
    (tmp_path / "ws" / "headwater.yaml").write_text(
        f"name: t\nconnections:\n  wh: {{type: sqlite, path: {db}}}\n"
    )
    ws.close()
    spec = PipelineSpec.from_yaml(
        "name: p\nsteps:\n  - {type: transform, connection: wh, to: main.x, "
        "sql: 'select * exclude (a) from t'}\n"
    )
    with Workspace.open(tmp_path / "ws") as ws2:
        step = ws2.run(spec).step("transform_main_x")
    assert step.status == "failed"
    assert "cannot push `SELECT * EXCLUDE/REPLACE` down to sqlite" in (step.error or "")


def test_pushdown_spec_rules() -> None:
    with pytest.raises(PipelineSyntaxError, match="names the database's tables directly"):
        PipelineSpec.from_yaml(
            "name: p\nsteps:\n  - {type: transform, connection: wh, to: main.x, "
            "sql: \"select * from {{ ref('raw.orders') }}\"}\n"
        )
    with pytest.raises(PipelineSyntaxError, match="overwrite` or `append"):
        PipelineSpec.from_yaml(
            "name: p\nsteps:\n  - {type: transform, connection: wh, to: main.x, mode: merge, "
            "keys: [a], sql: 'select 1 as a'}\n"
        )


def test_docs_example(tmp_path: Path) -> None:
    from tests.transform.test_map_docs import EXAMPLES

    db = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(db) as con:
        con.execute(DDL[0])
        con.executemany("insert into orders values (?, ?, ?, ?)", ORDERS)
    ws = Workspace.init(tmp_path / "ws")
    (tmp_path / "ws" / "headwater.yaml").write_text(
        f"name: t\nconnections:\n  warehouse: {{type: sqlite, path: {db}}}\n"
    )
    ws.close()
    with Workspace.open(tmp_path / "ws") as opened:
        result = opened.run(PipelineSpec.from_yaml(EXAMPLES["pushdown"], source="transforms.md"))
        assert result.ok, result.error
        lineage = {(e.src, e.dst, e.transformation) for e in edges(opened.store)}
    # tables of the database are named <connection>:<schema>.<table> in lineage
    assert lineage == {
        (
            "warehouse:main.orders.customer_id",
            "warehouse:main.customer_totals.customer_id",
            "identity",
        ),
        ("warehouse:main.orders.amount", "warehouse:main.customer_totals.revenue", "derived"),
        ("warehouse:main.orders.amount", "warehouse:main.customer_totals.average", "derived"),
    }
    with sqlite3.connect(db) as con:
        rows = con.execute("select * from customer_totals order by customer_id").fetchall()
    assert rows == [
        (10, 2, 1575, 787.5),
        (11, 1, 700, 700.0),
        (12, 2, 1000, 500.0),
        (13, 1, 5000, 5000.0),
    ]
