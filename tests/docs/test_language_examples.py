"""The language examples of docs/pipelines.md run, and the docs show exactly those files.

Each file in docs/examples/language/ is one construct (parameters and variables, `when`,
`for_each`, `python` steps with retries/timeout/on_failure, backfills); each test runs it
on a real workspace with small CSV files and checks exact outcomes.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater import Workspace
from headwater.pipelines.backfill import backfill

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "language"
PIPELINES_DOC = ROOT / "docs" / "pipelines.md"

EU = """\
order_id,amount,order_date
1,20.00,2024-01-05
2,150.00,2024-01-20
3,-4.00,2024-02-02
4,99.50,2024-02-10
5,300.00,2024-03-01
"""
US = """\
order_id,amount,order_date
10,5.00,2024-01-07
11,500.00,2024-02-03
"""
DAILY = {
    "2024-03-01": "order_id,amount,order_date\n1,10.00,2024-03-01\n2,15.00,2024-03-01\n",
    "2024-03-02": "order_id,amount,order_date\n3,7.50,2024-03-02\n",
    "2024-03-03": "order_id,amount,order_date\n4,1.00,2024-03-03\n5,2.00,2024-03-03\n",
}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    Workspace.init(tmp_path).close()
    (tmp_path / "headwater.yaml").write_text(
        "name: docs\nconnections:\n"
        "  landing: {type: files, path: data}\n"
        "  exports: {type: files, path: exports}\n"
    )
    for region, text in (("eu", EU), ("us", US)):
        (tmp_path / "data" / region).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / region / "orders.csv").write_text(text)
    (tmp_path / "data" / "daily").mkdir(parents=True, exist_ok=True)
    for day, text in DAILY.items():
        (tmp_path / "data" / "daily" / f"{day}.csv").write_text(text)
    (tmp_path / "exports").mkdir(exist_ok=True)
    for name in ("params_vars", "when", "for_each", "python_step", "backfill"):
        shutil.copyfile(EXAMPLES / f"{name}.yaml", tmp_path / "pipelines" / f"{name}.yaml")
    shutil.copyfile(EXAMPLES / "scoring.py", tmp_path / "scoring.py")
    monkeypatch.chdir(tmp_path)
    with Workspace.open(tmp_path) as ws:
        yield ws


def _ids(ws: Workspace, dataset: str, column: str = "order_id") -> list[int]:
    return sorted(ws.read(dataset).column(column).to_pylist())


def test_params_and_vars(ws: Workspace) -> None:
    result = ws.run("params_vars", params={"min_amount": "100"})
    assert result.ok, result.error
    assert _ids(ws, "staging.big_orders_eu") == [2, 5]
    us = ws.run("params_vars", params={"region": "us", "min_amount": "10"})
    assert us.ok, us.error
    assert _ids(ws, "staging.big_orders_us") == [11]


def test_when(ws: Workspace) -> None:
    result = ws.run("when")
    assert result.ok, result.error
    statuses = {s.name: s.status for s in result.steps}
    assert statuses == {
        "extract_orders": "succeeded",
        "check_orders": "succeeded",  # a warn check: reported, not blocking
        "export_orders": "skipped",  # ... but `passed` is false
        "orders_to_review": "succeeded",
    }
    assert _ids(ws, "marts.orders_to_review") == [3]
    assert not (ws.root / "exports" / "orders.parquet").exists()


def test_when_publishes_clean_data(ws: Workspace) -> None:
    (ws.root / "data" / "eu" / "orders.csv").write_text(EU.replace("-4.00", "4.00"))
    result = ws.run("when")
    assert {s.name: s.status for s in result.steps}["orders_to_review"] == "skipped"
    assert pq.read_table(ws.root / "exports" / "orders.parquet").num_rows == 5
    off = ws.run("when", params={"publish": "false"})
    assert off.step("export_orders").status == "skipped"


def test_for_each(ws: Workspace) -> None:
    result = ws.run("for_each")
    assert result.ok, result.error
    assert [s.name for s in result.steps] == [
        "extract-eu",
        "extract-us",
        "monthly-2024-01-01",
        "monthly-2024-02-01",
    ]
    assert _ids(ws, "raw.orders_us") == [10, 11]
    january = ws.read("marts.eu_2024_01_01").to_pylist()
    assert [(r["orders"], float(r["amount"])) for r in january] == [(2, 170.0)]
    february = ws.read("marts.eu_2024_02_01").to_pylist()
    assert [(r["orders"], float(r["amount"])) for r in february] == [(2, 95.5)]


def test_python_step(ws: Workspace) -> None:
    result = ws.run("python_step")
    assert result.ok, result.error  # publish_stats failed, with on_failure: continue
    statuses = {s.name: s.status for s in result.steps}
    assert statuses == {
        "extract_orders": "succeeded",
        "score": "succeeded",
        "publish_stats": "failed",
        "notify": "skipped",  # nothing failed that it handles
    }
    assert result.step("publish_stats").error_type == "UserCodeError"
    scored = ws.read("staging.scored_orders").sort_by("order_id")
    assert scored.column("large").to_pylist() == [False, True, False, False, True]


def test_python_step_failure_calls_the_handler(ws: Workspace) -> None:
    (ws.root / "data" / "eu" / "orders.csv").write_text("order_id,total\n1,5\n")
    result = ws.run("python_step")
    assert result.status == "failed"
    assert result.step("score").error_type == "UserCodeError"
    assert result.step("notify").status == "succeeded"
    assert (ws.root / "notifications.txt").read_text() == "scoring failed\n"


def test_backfill(ws: Workspace) -> None:
    done = backfill(ws, "backfill", start="2024-03-01", end="2024-03-04", every="day")
    assert done.ok and done.count("succeeded") == 3
    assert _ids(ws, "raw.daily_orders") == [1, 2, 3, 4, 5]
    totals = ws.read("marts.totals_2024_03_03").to_pylist()
    assert [(r["orders"], float(r["amount"])) for r in totals] == [(2, 3.0)]
    again = backfill(ws, "backfill", start="2024-03-01", end="2024-03-05", every="day")
    # the three done days are skipped; the fourth has no file, and fails
    assert [(o.interval.key, o.status) for o in again.outcomes] == [
        ("2024-03-01", "skipped"),
        ("2024-03-02", "skipped"),
        ("2024-03-03", "skipped"),
        ("2024-03-04", "failed"),
    ]


def _section_blocks(heading: str) -> list[str]:
    text = PIPELINES_DOC.read_text(encoding="utf-8")
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^##)", text, re.M | re.S)
    assert match, f"docs/pipelines.md has no `### {heading}` section"
    return re.findall(r"^```yaml\n(.*?)^```", match.group(1), re.M | re.S)


@pytest.mark.parametrize(
    ("heading", "name"),
    [
        ("Parameters and variables", "params_vars"),
        ("Conditions: when", "when"),
        ("Fan-out: for_each", "for_each"),
        ("Python steps", "python_step"),
        ("Backfills", "backfill"),
    ],
)
def test_docs_show_the_example_files(heading: str, name: str) -> None:
    blocks = _section_blocks(heading)
    assert (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8") in blocks
