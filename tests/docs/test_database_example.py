"""examples/database runs as its README says: a first sync, then only the changes."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import duckdb

from headwater.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "database"


def _shop_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_shop", EXAMPLE / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _warehouse(root: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select country, orders, revenue from revenue order by country"
        ).fetchall()


def test_database_example_syncs_only_changes(tmp_path: Path) -> None:
    root = tmp_path / "database"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("lake", "data", ".headwater"))
    shop = _shop_module()
    db = root / "data" / "shop.sqlite"
    assert shop.advance(db, seed=1) == (1000, 20_000)
    Workspace.init(root).close()
    with Workspace.open(root) as ws:
        first = ws.run("pipelines/sync.yaml")
        assert first.status == "succeeded", first.error
        mirror = first.steps[0]
        assert mirror.rows_out == 21_000  # 1,000 customers and 20,000 orders
        expected = ws.query(
            "select c.country, count(*) as orders, sum(o.amount) as revenue "
            "from raw.orders o join raw.customers c using (customer_id) "
            "where o.status <> 'cancelled' group by c.country order by c.country"
        ).to_pylist()
        assert [(r["country"], r["orders"]) for r in expected] == [
            (row[0], row[1]) for row in _warehouse(root)
        ]

        assert shop.advance(db, seed=2) == (1000, 22_000)
        second = ws.run("pipelines/sync.yaml")
        assert second.status == "succeeded", second.error
        tables = second.steps[0].details["tables"]
        assert tables["orders"]["rows"] == 2_500  # 2,000 new and 500 changed orders
        assert tables["customers"]["rows"] == 0
        orders = ws.query(
            "select count(*) as n, count(distinct order_id) as k, "
            "count(*) filter (where status <> 'paid') as changed from raw.orders"
        ).to_pylist()[0]
        assert orders["n"] == orders["k"] == 22_000
        assert orders["changed"] >= 400  # a few of the 500 may have been changed twice

        third = ws.run("pipelines/sync.yaml")  # nothing new: nothing read, nothing sent
        assert third.status == "succeeded", third.error
        assert third.steps[0].rows_out == 0
        publish = next(s for s in third.steps if s.name == "publish")
        assert publish.details["already_loaded"] is False  # mart.revenue was rewritten
        with duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True) as con:
            (ledger,) = con.execute("select count(*) from _headwater_loads").fetchone()
        assert ledger == 3
