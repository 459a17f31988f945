"""A concurrent backfill whose intervals all append to one dataset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater import Workspace
from headwater.cli.app import main

APPEND_DAYS = """\
name: days
steps:
  - name: day
    type: transform
    mode: append
    sql: |
      select date '{{ interval.start }}' as day, n
      from range(3) as r(n)
    to: staging.days
"""


def test_backfill_appends_every_interval_into_one_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Workspace.init(tmp_path).close()
    (tmp_path / "pipelines" / "days.yaml").write_text(APPEND_DAYS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    args = ["backfill", "days", "--from", "2024-01-01", "--to", "2024-01-07", "--every", "day"]
    code = main([*args, "--concurrency", "3"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    statuses = re.findall(r"\] (\S+)\s+(\w+)\s+run", out)
    assert sorted(statuses) == [(f"2024-01-0{d}", "succeeded") for d in range(1, 7)]
    assert (
        out.splitlines()[-1] == "backfill of days: 6 succeeded, 0 skipped (done before), 0 failed"
    )
    with Workspace.open(tmp_path) as ws:
        rows = ws.read("staging.days").to_pylist()
        history = ws.lake.history("staging.days")
    pairs = sorted((str(row["day"]), row["n"]) for row in rows)
    assert pairs == [(f"2024-01-0{d}", n) for d in range(1, 7) for n in range(3)]
    assert len(history) == 6  # one commit per interval, nothing committed twice
