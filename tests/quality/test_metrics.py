"""Metrics after every run, the 0-100 quality score and `headwater quality`."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.cli._state import console
from headwater.cli.app import main
from headwater.errors import ConfigError
from headwater.metadata.models import CheckResultRow
from headwater.quality.metrics import metric_history
from headwater.quality.score import compute_score, score_history
from tests.workspace_helpers import make_workspace

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def check(name: str, kind: str, passed: bool, checked: int = 0, failed: int = 0) -> CheckResultRow:
    return CheckResultRow(
        dataset="d",
        check=name,
        kind=kind,
        severity="error",
        passed=passed,
        rows_checked=checked,
        rows_failed=failed,
    )


def test_score_formula() -> None:
    checks = [
        check("not_null_id", "not_null", True, 100, 0),
        check("range_amount", "range", False, 100, 20),  # 80% of rows pass
        check("row_count", "row_count", False, 100, 0),  # a failed table check passes 0
        check("orders_customers", "references", False, 100, 50),
        check("anomaly:row_count", "anomaly", False, 100, 0),  # not a check of the data
    ]
    score = compute_score(
        "d",
        null_rates={"id": 0.0, "amount": 0.1, "email": 0.2},
        checks=checks,
        freshness_seconds=36 * 3600,
        max_age_seconds=24 * 3600,
        measured_at=NOW,
    )
    comps = score.components
    assert comps["completeness"] == pytest.approx(0.9)
    assert comps["validity"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)
    assert comps["consistency"] == pytest.approx(0.5)
    assert comps["timeliness"] == pytest.approx(0.5)  # 12 h late of a 24 h allowance
    expected = 100 * (0.30 * 0.9 + 0.35 * 0.6 + 0.15 * 0.5 + 0.20 * 0.5)
    assert score.score == pytest.approx(expected, abs=0.01)
    assert score.details["failed_checks"] == ["range_amount", "row_count"]


def test_unmeasured_components_are_left_out() -> None:
    score = compute_score(
        "d",
        null_rates={"id": 0.0, "email": 0.5},
        checks=[],
        freshness_seconds=10.0,
        max_age_seconds=None,
        measured_at=NOW,
    )
    assert score.components == {
        "completeness": 0.75,
        "validity": None,
        "consistency": None,
        "timeliness": None,
    }
    assert score.score == 75.0 and score.details["weights"] == {"completeness": 1.0}


def test_run_records_metrics_and_scores(
    tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_METADATA_URL", metadata_url)  # SQLite and PostgreSQL
    ws = make_workspace(tmp_path)
    try:
        result = ws.run("shop")
        assert result.ok
        points = metric_history(ws.store, "staging.orders")
        rows = ws.read("staging.orders")
        assert points["row_count"][-1].value == rows.num_rows
        assert points["row_count"][-1].run_id == result.run_id
        assert points["mean:amount"][-1].value == pytest.approx(
            float(sum(v.as_py() for v in rows["amount"])) / rows.num_rows
        )
        assert points["null_rate:status"][-1].value == 0.0
        # no time column: freshness is the age of the last commit, a few seconds
        freshness = points["freshness_seconds"][-1].value
        assert freshness is not None and 0 <= freshness < 120
        assert set(metric_history(ws.store, "raw.orders")) >= {"row_count", "null_rate:amount"}
        assert metric_history(ws.store, "raw.orders__quarantine") == {}

        scores = score_history(ws.store, "staging.orders")
        assert len(scores) == 1 and scores[0].run_id == result.run_id
        checks = [r for r in ws.store.check_results(run_id=result.run_id)]
        assert checks and all(r.dataset == "staging.orders" for r in checks)
        rates = [1 - r.rows_failed / r.rows_checked if r.rows_failed else 1.0 for r in checks]
        assert scores[0].components["validity"] == pytest.approx(sum(rates) / len(rates))
        assert scores[0].components["completeness"] == 1.0
        ws.run("shop")
        assert len(score_history(ws.store, "staging.orders")) == 2
    finally:
        ws.close()


def test_freshness_setting_scores_timeliness(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root).close()
    (root / "headwater.yaml").write_text(
        textwrap.dedent(
            """\
            name: test
            quality:
              freshness:
                raw.*: {max_age: 2h, column: ordered_at}
            """
        )
    )
    with Workspace.open(root) as ws:
        newest = NOW - timedelta(hours=3)  # one hour late of a 2 h allowance
        ws.write(
            "raw.events",
            pa.table({"ordered_at": pa.array([newest - timedelta(days=1), newest]), "n": [1, 2]}),
        )
        from headwater.quality.monitor import RunMonitor

        dq = RunMonitor(ws).observe_dataset("raw.events", at=NOW, run_id=None)
        assert dq.measurement.time_column == "ordered_at"
        assert dq.measurement.values["freshness_seconds"] == pytest.approx(3 * 3600)
        assert dq.score.components["timeliness"] == pytest.approx(0.5)


def test_bad_quality_settings_fail_before_the_run(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ws.close()
    text = (tmp_path / "headwater.yaml").read_text()
    (tmp_path / "headwater.yaml").write_text(
        text + "quality:\n  freshness:\n    raw.orders: {max_age: soon}\n"
    )
    with Workspace.open(tmp_path) as ws2:
        with pytest.raises(ConfigError) as info:
            ws2.run("shop")
        assert "invalid duration 'soon' for `max_age`" in info.value.message
        assert info.value.field == "quality.freshness.raw.orders.max_age"
        assert ws2.runs() == []  # nothing ran


def test_quality_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)
    make_workspace(tmp_path).close()
    root = str(tmp_path)
    assert main(["-w", root, "run", "shop"]) == 0
    capsys.readouterr()
    assert main(["-w", root, "quality", "staging.orders"]) == 0
    out = capsys.readouterr().out
    with Workspace.open(tmp_path) as ws:
        latest = score_history(ws.store, "staging.orders")[-1]
    assert f"staging.orders  quality score {latest.score:.1f} / 100" in out
    assert "completeness │ 100.0" in out
    assert "(0.20) not measured" in out  # no freshness expectation: timeliness not scored
    assert "failed checks: " in out and "score trend (1 runs" in out
    # a dataset written outside a run is measured on demand
    with Workspace.open(tmp_path) as ws:
        ws.write("raw.extra", pa.table({"x": [1, None, 3, None]}))
    assert main(["-w", root, "quality", "raw.extra"]) == 0
    out = capsys.readouterr().out
    assert "raw.extra  quality score 50.0 / 100" in out
    assert main(["-w", root, "quality", "raw.nope"]) == 1
    assert "no dataset named `raw.nope`" in capsys.readouterr().err
