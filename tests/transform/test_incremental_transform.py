"""Incremental transforms: a second run reads only new input rows and equals a recompute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.errors import PipelineSyntaxError
from headwater.pipelines import PipelineSpec
from headwater.workspace import Workspace

SQL = """
      select o.order_id, o.amount * 2 as doubled, c.country
      from {{ ref('raw.orders') }} o join {{ ref('raw.customers') }} c using (customer_id)
"""


def spec(incremental: str) -> PipelineSpec:
    return PipelineSpec.from_yaml(
        f"name: inc\nsteps:\n  - name: enrich\n    type: transform\n    incremental: "
        f"{incremental}\n    inputs_note: x\n".replace("    inputs_note: x\n", "")
        + f"    to: staging.orders\n    sql: |{SQL}",
        source="inc.yaml",
    )


def orders(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "order_id": ids,
            "customer_id": [10 + i % 2 for i in ids],
            "amount": [float(i) for i in ids],
        }
    )


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.init(tmp_path / "ws") as workspace:
        workspace.write("raw.orders", orders([1, 2, 3]))
        workspace.write(
            "raw.customers", pa.table({"customer_id": [10, 11], "country": ["DE", "FR"]})
        )
        yield workspace


def full(ws: Workspace) -> list[tuple[object, ...]]:
    table = ws.query(
        "select o.order_id, o.amount * 2 as doubled, c.country from raw.orders o "
        "join raw.customers c using (customer_id) order by 1"
    )
    return [tuple(r.values()) for r in table.to_pylist()]


def out(ws: Workspace) -> list[tuple[object, ...]]:
    rows = ws.read("staging.orders").to_pylist()
    return sorted(tuple(r.values()) for r in rows)  # type: ignore[type-var]


def test_append_reads_only_new_rows(ws: Workspace) -> None:
    pipeline = spec("{inputs: [raw.orders]}")
    first = ws.run(pipeline).step("enrich")
    assert first.status == "succeeded"
    assert first.details["incremental"] == "full" and first.details["reason"] == "first run"
    assert out(ws) == full(ws)

    ws.write("raw.orders", orders([4, 5]))
    second = ws.run(pipeline).step("enrich")
    assert second.status == "succeeded", second.error
    assert second.details["incremental"] == "append"
    assert second.details["new_rows"] == {"raw.orders": 2}
    assert second.rows_out == 2
    assert out(ws) == full(ws)  # equals a full recompute

    third = ws.run(pipeline)
    assert third.status == "succeeded"
    step = third.step("enrich")
    assert step.status == "up_to_date"
    assert step.details["message"] == "no new rows since raw.orders v1"
    assert out(ws) == full(ws)


def test_merge_strategy_and_whole_dimension(ws: Workspace) -> None:
    pipeline = spec("{strategy: merge, keys: [order_id], inputs: [raw.orders]}")
    assert ws.run(pipeline).ok
    ws.write("raw.orders", orders([3, 6]))  # order 3 again (a correction) and a new one
    ws.write("raw.customers", pa.table({"customer_id": [12], "country": ["US"]}))
    step = ws.run(pipeline).step("enrich")
    assert step.details["incremental"] == "merge"
    assert step.details["new_rows"] == {"raw.orders": 2}
    rows = out(ws)
    assert [r[0] for r in rows] == [1, 2, 3, 6]  # merged on order_id: 3 not doubled


def test_every_input_incremental_by_default(ws: Workspace) -> None:
    # with `true` every ref() is read incrementally: a new customer alone adds no rows
    pipeline = spec("true")
    assert ws.run(pipeline).ok
    ws.write("raw.customers", pa.table({"customer_id": [12], "country": ["US"]}))
    step = ws.run(pipeline).step("enrich")
    assert step.details["new_rows"] == {"raw.orders": 0, "raw.customers": 1}
    assert step.rows_out == 0
    ws.write("raw.orders", orders([12]))  # customer 10 (12 % 2 == 0), already read
    step = ws.run(pipeline).step("enrich")
    assert step.rows_out == 0  # the join of new orders with only new customers
    assert len(out(ws)) == 3


def test_rewritten_input_recomputes(ws: Workspace) -> None:
    pipeline = spec("true")
    assert ws.run(pipeline).ok
    ws.write("raw.orders", orders([7, 8]), mode="overwrite")
    step = ws.run(pipeline).step("enrich")
    assert step.details["incremental"] == "full"
    assert step.details["reason"] == "`raw.orders` was rewritten between versions 0 and 1"
    assert out(ws) == full(ws)


def test_incremental_spec_errors() -> None:
    with pytest.raises(PipelineSyntaxError, match="needs `keys`"):
        spec("{strategy: merge}")
    with pytest.raises(PipelineSyntaxError, match="does not ref"):
        spec("{inputs: [raw.other]}")


def test_docs_example(ws: Workspace) -> None:
    from tests.transform.test_map_docs import EXAMPLES

    pipeline = PipelineSpec.from_yaml(EXAMPLES["incremental"], source="transforms.md")
    assert ws.run(pipeline).step("enrich").details["incremental"] == "full"
    ws.write("raw.orders", orders([3, 4]))
    step = ws.run(pipeline).step("enrich")
    assert step.details["incremental"] == "merge"
    assert step.details["new_rows"] == {"raw.orders": 2}
    rows = sorted(ws.read("staging.orders").to_pylist(), key=lambda r: r["order_id"])
    assert [(r["order_id"], r["country"]) for r in rows] == [
        (1, "FR"), (2, "DE"), (3, "FR"), (4, "DE")
    ]  # fmt: skip
    assert ws.run(pipeline).step("enrich").status == "up_to_date"


def _enable_change_feed(ws: Workspace, dataset: str) -> None:
    from deltalake import DeltaTable

    DeltaTable(ws.lake.location(dataset)).alter.set_table_properties(
        {"delta.enableChangeDataFeed": "true"}
    )


def test_change_data_feed_carries_updates_into_a_merge(ws: Workspace) -> None:
    _enable_change_feed(ws, "raw.orders")
    pipeline = spec("{strategy: merge, keys: [order_id], inputs: [raw.orders]}")
    assert ws.run(pipeline).ok
    # order 2 corrected (amount 2 -> 20) and order 4 added, in one merge of the input
    ws.write(
        "raw.orders",
        pa.table({"order_id": [2, 4], "customer_id": [10, 10], "amount": [20.0, 4.0]}),
        mode="merge",
        keys=["order_id"],
    )
    step = ws.run(pipeline).step("enrich")
    assert step.details.get("incremental") == "merge", step.error
    assert step.details["read_from"] == {"raw.orders": "change data feed"}
    assert step.details["new_rows"] == {"raw.orders": 2}
    assert out(ws) == full(ws)

    # with append, an update cannot be applied: the run recomputes and says why
    append = spec("{inputs: [raw.orders]}")
    ws.write("raw.orders", orders([5]))
    assert ws.run(append).step("enrich").details["new_rows"] == {"raw.orders": 1}
    ws.write(
        "raw.orders",
        pa.table({"order_id": [5], "customer_id": [11], "amount": [50.0]}),
        mode="merge",
        keys=["order_id"],
    )
    step = ws.run(append).step("enrich")
    assert step.details["incremental"] == "full"
    assert "were updated" in step.details["reason"] and "strategy: merge" in step.details["reason"]
    assert out(ws) == full(ws)
