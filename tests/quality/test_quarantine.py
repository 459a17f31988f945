"""Quarantine you can work with: list by rule and run, replay after a fix, never doubled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.cli.app import main
from headwater.errors import DatasetNotFoundError
from headwater.pipelines.replay import list_quarantine, replay_quarantine
from headwater.workspace import Workspace
from tests.quality.conftest import write_pipeline

PIPELINE = """\
    name: orders
    steps:
      - name: check_orders
        type: check
        dataset: staging.orders
        checks:
          - {{type: accepted_values, column: status, values: [{values}]}}
          - {{type: range, column: amount, min: 0}}
          - {{type: unique, column: order_id}}
    """


def _setup(ws: Workspace) -> tuple[Path, str]:
    ws.write(
        "staging.orders",
        pa.table(
            {
                "order_id": [1, 2, 3, 4, 5, 5],
                "status": ["placed", "lost", "placed", "gone", "placed", "placed"],
                "amount": [1.0, 2.0, -3.0, 4.0, 5.0, 6.0],
            }
        ),
        mode="overwrite",
    )
    path = write_pipeline(ws, PIPELINE.format(values="placed"))
    result = ws.run(path)
    assert result.ok, result.error
    step = result.step("check_orders")
    assert (step.rows_in, step.rows_out, step.rows_quarantined) == (6, 1, 5)
    return path, result.run_id


def _ids(ws: Workspace) -> list[int]:
    return sorted(ws.lake.read("staging.orders")["order_id"].to_pylist())


def _quarantined_ids(ws: Workspace) -> list[int]:
    table = list_quarantine(ws, "staging.orders")
    return sorted(json.loads(r)["order_id"] for r in table["raw_record"].to_pylist())


def test_list_filters_by_rule_and_run(ws: Workspace) -> None:
    _, run_id = _setup(ws)
    assert list_quarantine(ws, "staging.orders").num_rows == 5
    unique = list_quarantine(ws, "staging.orders", rule="unique_order_id")
    assert unique.num_rows == 2 and set(unique["rule"].to_pylist()) == {"unique_order_id"}
    assert list_quarantine(ws, "staging.orders", run_id=run_id).num_rows == 5
    assert list_quarantine(ws, "staging.orders", run_id="other").num_rows == 0
    with pytest.raises(DatasetNotFoundError, match="no dataset `staging.ordres`") as info:
        list_quarantine(ws, "staging.ordres")
    assert "staging.orders" in (info.value.hint or "")


def test_replay_after_a_fix_moves_only_passing_rows_and_is_idempotent(ws: Workspace) -> None:
    path, run_id = _setup(ws)
    path.write_text(textwrap.dedent(PIPELINE.format(values="placed, lost")))  # the fix
    first = replay_quarantine(ws, "staging.orders")
    # `lost` now passes; `gone`, the negative amount and both copies of order 5 still fail
    assert (first.rows_in, first.rows_out, first.rows_quarantined) == (5, 1, 4)
    assert first.rows_in == first.rows_out + first.rows_quarantined
    assert _ids(ws) == [1, 2]
    assert _quarantined_ids(ws) == [3, 4, 5, 5]
    second = replay_quarantine(ws, "staging.orders", run_id=run_id)
    assert (second.rows_in, second.rows_out, second.rows_quarantined) == (4, 0, 4)
    assert _ids(ws) == [1, 2] and _quarantined_ids(ws) == [3, 4, 5, 5]
    # the rows still quarantined keep their original rule, run and reason
    left = list_quarantine(ws, "staging.orders")
    assert set(left["run_id"].to_pylist()) == {run_id}
    assert sorted(left["rule"].to_pylist()) == [
        "accepted_values_status",
        "range_amount",
        "unique_order_id",
        "unique_order_id",
    ]


def test_a_replayed_duplicate_of_a_kept_row_stays_quarantined(ws: Workspace) -> None:
    path, _ = _setup(ws)
    # allow every status and any amount: order 5 is still duplicated (two quarantined copies)
    path.write_text(
        textwrap.dedent(
            """\
            name: orders
            steps:
              - name: check_orders
                type: check
                dataset: staging.orders
                checks:
                  - {type: unique, column: order_id}
            """
        )
    )
    result = replay_quarantine(ws, "staging.orders")
    assert (result.rows_in, result.rows_out, result.rows_quarantined) == (5, 3, 2)
    assert _ids(ws) == [1, 2, 3, 4] and _quarantined_ids(ws) == [5, 5]


def test_replay_killed_after_the_append_doubles_nothing(ws: Workspace) -> None:
    path, _ = _setup(ws)
    path.write_text(textwrap.dedent(PIPELINE.format(values="placed, lost, gone")))
    script = (
        "from headwater import Workspace\n"
        "from headwater.pipelines.replay import replay_quarantine\n"
        f"with Workspace.open({str(ws.root)!r}) as ws:\n"
        "    replay_quarantine(ws, 'staging.orders')\n"
    )
    env = {**os.environ, "HEADWATER_CRASH_AT": "replay.after_append"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    # the append committed; the quarantine still holds the rows
    assert _ids(ws) == [1, 2, 4]
    assert _quarantined_ids(ws) == [2, 3, 4, 5, 5]
    again = replay_quarantine(ws, "staging.orders")
    # it finishes the interrupted replay: the 2 rows it had appended leave the quarantine
    assert again.already_appended and (again.rows_in, again.rows_out) == (2, 2)
    assert _ids(ws) == [1, 2, 4]
    assert _quarantined_ids(ws) == [3, 5, 5]
    third = replay_quarantine(ws, "staging.orders")
    assert not third.already_appended and third.rows_out == 0
    assert _ids(ws) == [1, 2, 4]


def test_cli_list_and_replay(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, run_id = _setup(ws)
    monkeypatch.chdir(ws.root)
    assert main(["quarantine", "list", "staging.orders", "--rule", "range_amount"]) == 0
    out = capsys.readouterr().out
    assert "1 rows quarantined for staging.orders" in out and "range_amount" in out
    path.write_text(textwrap.dedent(PIPELINE.format(values="placed, lost")))
    assert main(["quarantine", "replay", "staging.orders", "--run", run_id]) == 0
    out = capsys.readouterr().out
    assert "5 rows replayed, 1 passed and moved back, 4 still quarantined" in out
    assert main(["quarantine", "list", "staging.orders", "--run", "nope"]) == 0
    assert "nothing quarantined for staging.orders" in capsys.readouterr().out
    assert main(["quarantine", "replay", "staging.nope"]) == 1
    assert "no dataset `staging.nope`" in capsys.readouterr().err
