"""Every mapping rule's example in docs/transforms.md runs, with exact results."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headwater.pipelines import PipelineSpec
from headwater.pipelines.map_step import MASK_SALT_SECRET
from headwater.transform.mapping import RULES
from headwater.workspace import Workspace
from tests.transform.map_fixtures import map_workspace

DOCS = Path(__file__).resolve().parents[2] / "docs" / "transforms.md"
EXAMPLES = dict(re.findall(r"<!-- example: (\w+) -->\n```yaml\n(.*?)```", DOCS.read_text(), re.S))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with map_workspace(tmp_path_factory.mktemp("maps")) as workspace:
        yield workspace


def run(ws: Workspace, example: str) -> list[dict[str, Any]]:
    spec = PipelineSpec.from_yaml(EXAMPLES[example], source=f"transforms.md#{example}")
    result = ws.run(spec)
    assert result.status == "succeeded", result.error
    (step,) = result.steps
    rows: list[dict[str, Any]] = ws.read(step.outputs[0]).to_pylist()
    return rows


def test_every_rule_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted([*RULES, "incremental", "pushdown"])


def test_rename(ws: Workspace) -> None:
    rows = run(ws, "rename")
    assert list(rows[0]) == [
        "order_id", "customer_id", "amount", "status", "country", "email", "card",
        "payload", "meta", "tags", "changed_at",
    ]  # fmt: skip
    assert [r["customer_id"] for r in rows] == [10, 11, 10, 10]


def test_cast(ws: Workspace) -> None:
    rows = run(ws, "cast")
    assert [r["amount"] for r in rows] == [
        Decimal("12.50"), Decimal("7.00"), Decimal("3.25"), Decimal("13.00")
    ]  # fmt: skip
    assert str(rows[0]["updated_at"]) == "2026-01-01"


def test_derive(ws: Workspace) -> None:
    rows = run(ws, "derive")
    assert [(r["amount_cents"], r["is_big"]) for r in rows] == [
        (Decimal("1250.00"), True), (Decimal("700.00"), False),
        (Decimal("325.00"), False), (Decimal("1300.00"), True),
    ]  # fmt: skip


def test_filter(ws: Workspace) -> None:
    assert [r["status"] for r in run(ws, "filter")] == ["placed", "shipped", "shipped"]


def test_lookup(ws: Workspace) -> None:
    rows = run(ws, "lookup")
    pairs = sorted((r["order_id"], r["updated_at"].day, r["country_name"]) for r in rows)
    assert pairs == [(1, 1, "Germany"), (1, 4, "Germany"), (2, 2, "France"), (3, 3, "unknown")]


def test_aggregate(ws: Workspace) -> None:
    rows = sorted(run(ws, "aggregate"), key=lambda r: r["cust"])
    assert rows == [
        {"cust": 10, "orders": 3, "revenue": Decimal("28.75")},
        {"cust": 11, "orders": 1, "revenue": Decimal("7.00")},
    ]


def test_dedupe(ws: Workspace) -> None:
    rows = sorted(run(ws, "dedupe"), key=lambda r: r["order_id"])
    assert [(r["order_id"], r["status"], r["amount"]) for r in rows] == [
        (1, "shipped", "13.00"), (2, "shipped", "7.00"), (3, "cancelled", "3.25")
    ]  # fmt: skip


def test_mask(ws: Workspace) -> None:
    rows = run(ws, "mask")
    salt = ws.connections.workspace_secret(MASK_SALT_SECRET, lambda: pytest.fail("no salt"))
    assert len(salt) == 64
    expected = hashlib.sha256((salt + "a@x.io").encode()).hexdigest()
    assert [r["email"] for r in rows] == [
        expected, hashlib.sha256((salt + "b@x.io").encode()).hexdigest(), None, expected
    ]  # fmt: skip
    assert [r["card"] for r in rows] == [
        "************1111", "************0004", None, "************1111"
    ]  # fmt: skip
    assert {r["cust"] for r in rows} == {"****"}
    # the salt is stored encrypted, and a second run uses the same one
    assert salt.encode() not in (ws.store.get_secret(f"workspace.{MASK_SALT_SECRET}") or b"")
    assert next(r["email"] for r in run(ws, "mask")) == expected


def test_flatten(ws: Workspace) -> None:
    rows = run(ws, "flatten")
    assert "payload" not in rows[0] and "meta" not in rows[0]
    assert [(r["payload_sku"], r["payload_qty"], r["channel"], r["score"]) for r in rows] == [
        ("A1", 2, "web", 3), ("B2", 1, "shop", None), ("A1", 5, None, None), ("A1", 2, "web", None)
    ]  # fmt: skip


def test_explode(ws: Workspace) -> None:
    rows = run(ws, "explode")
    assert sorted((r["order_id"], r["updated_at"].day, r["tag"]) for r in rows) == [
        (1, 1, "gift"), (1, 1, "new"), (1, 4, "new"), (3, 3, "gift")
    ]  # fmt: skip


def test_union(ws: Workspace) -> None:
    rows = run(ws, "union")
    assert len(rows) == 5
    archived = [r for r in rows if r["order_id"] == 0]
    assert archived == [{**dict.fromkeys(rows[0]), "order_id": 0, "cust": 9, "amount": "1.00"}]
