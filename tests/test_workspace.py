"""The Workspace facade end to end: init, settings, run, inspect, query, time travel."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater import Workspace
from headwater.errors import ConfigError, DatasetNotFoundError, QueryError, WorkspaceNotFoundError
from tests.workspace_helpers import make_workspace


def test_init_creates_the_layout(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        for sub in ("pipelines", "data", "lake", "archive", "backups", ".headwater"):
            assert (ws.root / sub).is_dir(), sub
        assert (ws.root / "headwater.yaml").is_file()
        assert (ws.root / ".headwater" / "metadata.db").is_file()
        assert oct((ws.root / ".headwater" / "key").stat().st_mode & 0o777) == "0o600"
    # idempotent: a second init keeps the file
    (tmp_path / "ws" / "headwater.yaml").write_text("name: kept\n")
    with Workspace.init(tmp_path / "ws") as ws:
        assert ws.settings.name == "kept"


def test_open_finds_the_workspace_upwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path).close()
    deep = tmp_path / "pipelines" / "sub"
    deep.mkdir()
    monkeypatch.chdir(deep)
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    with Workspace.open() as ws:
        assert ws.root == tmp_path.resolve()


def test_no_workspace_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    with pytest.raises(WorkspaceNotFoundError, match="no headwater.yaml"):
        Workspace.open(tmp_path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path).close()
    monkeypatch.setenv("HEADWATER_RUNNER__MAX_PARALLEL", "7")
    monkeypatch.setenv("HEADWATER_ENGINE__MEMORY_LIMIT", "1GB")
    with Workspace.open(tmp_path) as ws:
        assert ws.settings.runner.max_parallel == 7
        assert ws.settings.engine.memory_limit == "1GB"


def test_invalid_settings_name_the_key(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    (tmp_path / "headwater.yaml").write_text("runner:\n  max_paralel: 3\n")
    with pytest.raises(ConfigError, match="runner.max_paralel") as info:
        Workspace.open(tmp_path)
    assert info.value.location and info.value.location.endswith("headwater.yaml")
    (tmp_path / "headwater.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        Workspace.open(tmp_path)
    assert info.value.location and info.value.location.endswith("headwater.yaml:2:1")


def test_metadata_on_postgres(
    tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_METADATA_URL", metadata_url)
    with make_workspace(tmp_path) as ws:
        result = ws.run("pipelines/shop.yaml")
        assert result.ok, result.error
        assert ws.get_run(result.run_id).status == "succeeded"
        if metadata_url.startswith("postgresql"):
            assert not (tmp_path / ".headwater" / "metadata.db").exists()


def test_run_accounts_for_every_row(tmp_path: Path) -> None:
    with make_workspace(tmp_path) as ws:
        result = ws.run("shop")  # resolved under pipelines/
        assert result.ok, result.error
        extract = result.step("extract_orders")
        # 7 data lines: one has too few fields, one an uncastable amount
        assert (extract.rows_in, extract.rows_out, extract.rows_quarantined) == (7, 5, 2)
        check = result.step("check_orders")
        assert (check.rows_in, check.rows_out, check.rows_quarantined) == (5, 4, 1)
        for step in result.steps:
            assert step.balanced, step
        # the blocked row is gone from the dataset and sits in quarantine with its reason
        amounts = sorted(ws.read("staging.orders").column("amount").to_pylist())
        assert [float(a) for a in amounts] == [3.25, 7.0, 9.99, 12.5]
        q = ws.query(
            "select rule, source_line, raw_record from raw.orders__quarantine order by source_line"
        ).to_pylist()
        assert [r["source_line"] for r in q] == [5, 7]
        assert "abc" in q[0]["raw_record"] and q[1]["raw_record"].startswith("6,10,4.00")
        checked = ws.query("select rule, raw_record from staging.orders__quarantine").to_pylist()
        assert checked[0]["rule"] == "range_amount" and '"amount":-1' in checked[0]["raw_record"]
        # the warn check recorded, moved nothing
        results = {r.check: r for r in ws.store.check_results(run_id=result.run_id)}
        assert results["accepted_values_status"].rows_failed == 1
        assert results["accepted_values_status"].severity == "warn"
        # the export holds exactly the checked rows
        exported = pq.read_table(tmp_path / "exports" / "orders.parquet")
        assert exported.num_rows == 4
        # run and steps recorded
        run = ws.get_run(result.run_id)
        assert [s.status for s in run.steps] == ["succeeded"] * 5
        assert {s.step: s.rows_quarantined for s in run.steps}["extract_orders"] == 2


def test_failure_skips_downstream_and_keeps_independent_work(tmp_path: Path) -> None:
    pipeline = """\
name: partial
steps:
  - {name: good, type: extract, connection: landing, stream: customers.csv, to: raw.customers}
  - {name: bad, type: extract, connection: landing, stream: nope.csv, to: raw.nope}
  - name: after_bad
    type: transform
    sql: select * from {{ ref('raw.nope') }}
    to: staging.nope
"""
    with make_workspace(tmp_path, pipeline) as ws:
        result = ws.run("pipelines/shop.yaml")
        assert not result.ok
        status = {s.name: s.status for s in result.steps}
        assert status == {"good": "succeeded", "bad": "failed", "after_bad": "skipped"}
        assert "nope.csv" in (result.step("bad").error or "")
        assert ws.read("raw.customers").num_rows == 5
        assert ws.get_run(result.run_id).status == "failed"


def test_query_time_travel_and_errors(tmp_path: Path) -> None:
    with make_workspace(tmp_path) as ws:
        assert ws.run("shop").ok
        v_first = ws.history("staging.orders")
        assert ws.run("shop").ok
        assert ws.query("select count(*) as n from staging.orders").to_pylist() == [{"n": 4}]
        # the check step rewrote the dataset: version 0 is the unchecked join output
        assert ws.query("select count(*) as n from staging.orders", as_of=0).to_pylist() == [
            {"n": 5}
        ]
        ts = max(v_first, key=lambda h: h.version).timestamp.isoformat()
        assert ws.query("select count(*) as n from staging.orders", as_of=ts).to_pylist() == [
            {"n": 4}
        ]
        with pytest.raises(QueryError, match="syntax error"):
            ws.query("selec * from staging.orders")
        with pytest.raises(QueryError, match="does not exist"):
            ws.query("select * from staging.nothing")
        with pytest.raises(DatasetNotFoundError):
            ws.dataset_info("staging.nothing")


def test_parallel_steps_overlap(tmp_path: Path) -> None:
    """Independent extracts start before either finishes (the runner uses a pool)."""
    from headwater.pipelines.events import StepFinished, StepStarted

    events: list[tuple[str, str]] = []

    def record(event: object) -> None:
        if isinstance(event, StepStarted):
            events.append(("start", event.step))
        elif isinstance(event, StepFinished):
            events.append(("end", event.outcome.name))

    with make_workspace(tmp_path) as ws:
        assert ws.run("shop", on_event=record).ok
    first_end = next(i for i, e in enumerate(events) if e[0] == "end")
    started_before = {name for kind, name in events[:first_end] if kind == "start"}
    assert {"extract_orders", "extract_customers"} <= started_before
    assert os.cpu_count()


def test_on_schema_change_replace(tmp_path: Path) -> None:
    """A transform whose output changes type fails by default and succeeds with replace."""
    pipeline = """\
name: reshape
steps:
  - name: t
    type: transform
    sql: select {expr} as amount
    to: staging.reshaped
    mode: overwrite
{extra}"""
    with make_workspace(tmp_path) as ws:
        path = ws.root / "pipelines" / "reshape.yaml"
        path.write_text(pipeline.format(expr="1.5::DOUBLE", extra=""))
        assert ws.run("reshape").ok
        path.write_text(pipeline.format(expr="'x'", extra=""))
        failed = ws.run("reshape")
        assert not failed.ok and "amount" in (failed.steps[0].error or "")
        assert "on_schema_change: replace" in (failed.steps[0].error or "")
        assert ws.read("staging.reshaped").column("amount").to_pylist() == [1.5]
        path.write_text(pipeline.format(expr="'x'", extra="    on_schema_change: replace\n"))
        assert ws.run("reshape").ok
        assert ws.read("staging.reshaped").column("amount").to_pylist() == ["x"]
        changes = [v.change for v in ws.store.schema_versions("staging.reshaped")]
        assert changes == ["created", "replaced"]
        assert ws.query("select amount from staging.reshaped", as_of=0).to_pylist() == [
            {"amount": 1.5}
        ]


def test_replace_needs_overwrite(tmp_path: Path) -> None:
    from headwater.errors import PipelineSyntaxError
    from headwater.pipelines.spec import PipelineSpec

    with pytest.raises(PipelineSyntaxError, match="needs `mode: overwrite`"):
        PipelineSpec.from_yaml(
            "name: x\nsteps:\n  - {type: transform, sql: select 1, to: a.b, mode: append,"
            " on_schema_change: replace}\n"
        )


def test_write_and_read_from_python(tmp_path: Path) -> None:
    import pyarrow as pa

    with Workspace.init(tmp_path) as ws:
        ws.write("raw.t", pa.table({"id": [1, 2], "v": ["a", "b"]}))
        ws.write("raw.t", pa.table({"id": [2, 3], "v": ["B", "c"]}), mode="merge", keys=["id"])
        rows = sorted(ws.read("raw.t").to_pylist(), key=lambda r: r["id"])
        assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
