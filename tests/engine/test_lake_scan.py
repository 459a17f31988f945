"""Datasets read by DuckDB's own Parquet reader: same rows as the Arrow scan, evolution-safe."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from headwater.testing import workspace_for_test


def _plan(ws: object, sql: str) -> str:
    with ws.session() as s:  # type: ignore[attr-defined]
        s.attach("raw.t")
        return "\n".join(r[1] for r in s.execute(f"EXPLAIN {sql}"))


def test_local_datasets_use_the_native_parquet_reader(tmp_path: Path) -> None:
    with workspace_for_test(tmp_path / "ws") as ws:
        ws.lake.write("raw.t", pa.table({"id": [1, 2], "v": ["a", "b"]}), mode="overwrite")
        plan = _plan(ws, "select v from raw.t where id > 1")
        assert "PARQUET" in plan.upper() and "ARROW" not in plan.upper()
        assert ws.query("select v from raw.t where id > 1").to_pylist() == [{"v": "b"}]


def test_evolved_schema_reads_old_files_with_nulls_in_schema_order(tmp_path: Path) -> None:
    with workspace_for_test(tmp_path / "ws") as ws:
        ws.lake.write("raw.t", pa.table({"id": [1], "v": ["a"]}), mode="append")
        ws.lake.write("raw.t", pa.table({"id": [2], "v": ["b"], "note": ["n"]}), mode="append")
        got = ws.query("select * from raw.t order by id")
        assert got.column_names == ["id", "v", "note"]
        assert got.to_pylist() == [
            {"id": 1, "v": "a", "note": None},
            {"id": 2, "v": "b", "note": "n"},
        ]
        assert ws.query("select count(*) as n from raw.t where note is null").to_pylist() == [
            {"n": 1}
        ]
        # the first version, before the column existed, through the same path
        assert ws.query("select * from raw.t", as_of=0).to_pylist() == [{"id": 1, "v": "a"}]


def test_native_and_arrow_scans_agree_after_merge(tmp_path: Path) -> None:
    with workspace_for_test(tmp_path / "ws") as ws:
        ws.lake.write("raw.t", pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}), mode="overwrite")
        ws.lake.write("raw.t", pa.table({"id": [2, 4], "v": ["B", "d"]}), mode="merge", keys=["id"])
        native = ws.query("select * from raw.t where v >= 'B' order by id").to_pylist()
        arrow = [r for r in ws.lake.read("raw.t").sort_by("id").to_pylist() if r["v"] >= "B"]
        assert (
            native
            == arrow
            == [
                {"id": 1, "v": "a"},
                {"id": 2, "v": "B"},
                {"id": 3, "v": "c"},
                {"id": 4, "v": "d"},
            ]
        )


def test_empty_dataset_falls_back_to_the_arrow_scan(tmp_path: Path) -> None:
    with workspace_for_test(tmp_path / "ws") as ws:
        ws.lake.write("raw.t", pa.table({"id": pa.array([], pa.int64())}), mode="overwrite")
        assert ws.query("select count(*) as n from raw.t").to_pylist() == [{"n": 0}]


def test_workspace_paths_with_spaces(tmp_path: Path) -> None:
    """File URIs are percent-encoded; the native scan must decode them."""
    for folder in ("with space", "ünïcode dir"):
        with workspace_for_test(tmp_path / folder / "ws") as ws:
            ws.lake.write("raw.t", pa.table({"id": [1, 2]}), mode="overwrite")
            assert ws.query("select sum(id) as s from raw.t").to_pylist() == [{"s": 3}]


def test_two_checks_of_one_dataset_both_hold(tmp_path: Path) -> None:
    """Checks of one dataset run one after the other: each one's quarantine sticks."""
    pipeline = """\
name: p
steps:
  - {name: ex, type: extract, connection: landing, stream: orders.csv, to: raw.orders}
  - {name: chk_a, type: check, dataset: raw.orders, checks: [{type: not_null, column: order_id}]}
  - {name: chk_b, type: check, dataset: raw.orders, checks: [{type: range, column: amount, min: 0}]}
"""
    connections = {"landing": {"type": "files", "path": "data"}}
    with workspace_for_test(tmp_path / "a b", connections=connections) as ws:
        (ws.root / "data" / "orders.csv").write_text("order_id,amount\n1,10\n2,-3\n,5\n4,8\n")
        (ws.root / "pipelines" / "p.yaml").write_text(pipeline)
        result = ws.run("p")
        assert result.ok, result.error
        kept = sorted(r["order_id"] for r in ws.read("raw.orders").to_pylist())
        assert kept == [1, 4]
        assert ws.read("raw.orders__quarantine").num_rows == 2
        counts = [(s.name, s.rows_in, s.rows_out, s.rows_quarantined) for s in result.steps]
        assert counts == [("ex", 4, 4, 0), ("chk_a", 4, 3, 1), ("chk_b", 3, 2, 1)]
