"""Column lineage recorded by a 3-step pipeline: exact edges, upstream, impact, CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.cli.app import main
from headwater.errors import DatasetNotFoundError, HeadwaterError
from headwater.lineage import downstream, edges, flatten_tree, resolve_column, upstream
from headwater.workspace import Workspace

PIPELINE = """\
name: shop
steps:
  - name: joined
    type: transform
    sql: |
      select o.*, c.country
      from {{ ref('raw.orders') }} o join {{ ref('raw.customers') }} c using (customer_id)
    to: staging.orders
  - name: clean
    type: map
    from: staging.orders
    to: clean.orders
    rules:
      - rename: {customer_id: cust}
      - derive: {net: "amount / 1.19"}
      - mask: {email: hash}
  - name: revenue
    type: transform
    sql: |
      select country, sum(net) as revenue, count(*) as orders
      from {{ ref('clean.orders') }} group by country
    to: mart.revenue
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    with Workspace.init(root) as workspace:
        workspace.write(
            "raw.orders",
            pa.table(
                {
                    "order_id": [1, 2, 3],
                    "customer_id": [10, 11, 10],
                    "amount": [11.9, 23.8, 1.19],
                    "email": ["a@x.io", "b@x.io", "a@x.io"],
                }
            ),
        )
        workspace.write(
            "raw.customers", pa.table({"customer_id": [10, 11], "country": ["DE", "FR"]})
        )
        (root / "pipelines" / "shop.yaml").write_text(PIPELINE)
        result = workspace.run("shop")
        assert result.status == "succeeded", result.error
        monkeypatch.chdir(root)
        monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
        yield workspace


def _plain(ws: Workspace) -> set[tuple[str, str, str, str, str]]:
    return {(e.step, e.kind, e.src, e.dst, e.transformation) for e in edges(ws.store)}


def test_exact_edges(ws: Workspace) -> None:
    assert _plain(ws) == {
        ("joined", "transform", "raw.orders.order_id", "staging.orders.order_id", "identity"),
        ("joined", "transform", "raw.orders.customer_id", "staging.orders.customer_id", "identity"),
        ("joined", "transform", "raw.orders.amount", "staging.orders.amount", "identity"),
        ("joined", "transform", "raw.orders.email", "staging.orders.email", "identity"),
        ("joined", "transform", "raw.customers.country", "staging.orders.country", "identity"),
        ("clean", "map", "staging.orders.order_id", "clean.orders.order_id", "identity"),
        ("clean", "map", "staging.orders.customer_id", "clean.orders.cust", "identity"),
        ("clean", "map", "staging.orders.amount", "clean.orders.amount", "identity"),
        ("clean", "map", "staging.orders.email", "clean.orders.email", "derived"),
        ("clean", "map", "staging.orders.country", "clean.orders.country", "identity"),
        ("clean", "map", "staging.orders.amount", "clean.orders.net", "derived"),
        ("revenue", "transform", "clean.orders.country", "mart.revenue.country", "identity"),
        ("revenue", "transform", "clean.orders.net", "mart.revenue.revenue", "derived"),
    }
    run_ids = {e.run_id for e in edges(ws.store)}
    assert run_ids == {ws.runs()[0].id}
    assert {e.pipeline for e in edges(ws.store)} == {"shop"}


def test_rerun_replaces_edges_of_a_step(ws: Workspace) -> None:
    ws.run("shop")
    assert len(edges(ws.store)) == 13
    assert len({e.run_id for e in edges(ws.store)}) == 1


def test_upstream_and_impact(ws: Workspace) -> None:
    up = upstream(ws.store, "mart.revenue", "revenue")
    assert [c.name for c in up.children] == ["clean.orders.net"]
    assert [c.name for c in up.children[0].children] == ["staging.orders.amount"]
    assert [c.name for c in up.children[0].children[0].children] == ["raw.orders.amount"]
    assert upstream(ws.store, "mart.revenue", "revenue", depth=1).children[0].truncated

    down = flatten_tree(downstream(ws.store, "raw.orders", "amount"))
    assert sorted(n.name for n in down) == [
        "clean.orders.amount",
        "clean.orders.net",
        "mart.revenue.revenue",
        "staging.orders.amount",
    ]


def test_resolve_errors_offer_close_matches(ws: Workspace) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        resolve_column(ws.store, "mart.revenu.revenue", datasets=ws.lake.list())
    assert "Did you mean `mart.revenue`?" in (info.value.hint or "")
    with pytest.raises(HeadwaterError) as other:
        resolve_column(ws.store, "mart.revenue.revnue", datasets=ws.lake.list())
    assert "has no column `revnue`" in other.value.message
    assert "Did you mean `revenue`?" in (other.value.hint or "")
    with pytest.raises(HeadwaterError, match="not DATASET.COLUMN"):
        resolve_column(ws.store, "revenue")


def test_cli(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "mart.revenue.revenue"]) == 0
    out = capsys.readouterr().out
    lines = [line.strip(" │├└─") for line in out.splitlines()]
    assert lines[0] == "mart.revenue.revenue"
    assert lines[1].startswith("clean.orders.net  from transform `revenue` of pipeline `shop`")
    assert lines[2].startswith("staging.orders.amount  from map `clean` of pipeline `shop`")
    assert lines[3].startswith("raw.orders.amount  from transform `joined`")

    assert main(["impact", "raw.customers.country"]) == 0
    out = capsys.readouterr().out
    assert "mart.revenue.country" in out
    assert "datasets: clean.orders, mart.revenue, staging.orders" in out
    assert "pipelines: shop" in out

    assert main(["lineage", "mart.revenue.revnue"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert "Did you mean `revenue`?" in err
