"""`headwater run --param`, `run --resume`, `backfill` and `runs show` from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater import Workspace
from headwater.cli.app import main

HOOKS = '''\
from pathlib import Path


def check_day(day, flags):
    """Fail for a day whose flag file exists (a test's stand-in for a flaky upstream)."""
    if (Path(flags) / f"fail-{day}").exists():
        raise RuntimeError(f"no data for {day}")
'''

DAILY = """\
name: daily
params:
  scale: {type: integer, default: 1}
steps:
  - name: gate
    type: python
    function: hooks:check_day
    args: {day: "{{ interval.start }}", flags: "{{ params.flags }}"}
  - name: day
    type: transform
    depends_on: [gate]
    sql: |
      select date '{{ interval.start }}' as day, date '{{ interval.end }}' as next_day,
             {{ params.scale }} as scale
    to: "staging.day_{{ interval.start | replace('-', '') }}"
"""


@pytest.fixture
def ws_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    Workspace.init(tmp_path).close()
    (tmp_path / "hooks.py").write_text(HOOKS)
    daily = DAILY.replace("  scale:", f"  flags: {{type: string, default: '{tmp_path}'}}\n  scale:")
    (tmp_path / "pipelines" / "daily.yaml").write_text(daily)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def progress(out: str) -> list[tuple[str, str, str, str]]:
    """The progress lines of a backfill: (done, interval, status, note), times as `T`."""
    found = []
    for line in out.splitlines():
        match = re.fullmatch(r"\[(\d+)/\d+\] (\S+)\s+(\w+)\s+run \w+\s+(.*)", line)
        if match:
            done, key, status, note = match.groups()
            found.append((done, key, status, re.sub(r"^[\d.]+s$", "T", note)))
    return found


def test_backfill_runs_each_interval_and_resumes(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws_dir / "fail-2024-01-02").write_text("x")
    args = ("backfill", "daily", "--from", "2024-01-01", "--to", "2024-01-04", "--every", "day")
    code, out, err = run_cli(capsys, *args, "--concurrency", "2")
    assert code == 1, err
    lines = progress(out)
    assert [done for done, *_ in lines] == ["1", "2", "3"]  # finishing order varies
    assert sorted((key, status) for _, key, status, _ in lines) == [
        ("2024-01-01", "succeeded"),
        ("2024-01-02", "failed"),
        ("2024-01-03", "succeeded"),
    ]
    assert (
        "    gate: step `gate`: `hooks:check_day` raised RuntimeError: no data for 2024-01-02"
        in out
    )
    assert out.splitlines()[-1] == (
        "backfill of daily: 2 succeeded, 0 skipped (done before), 1 failed"
    )

    (ws_dir / "fail-2024-01-02").unlink()
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert [(done, key, status, note) for done, key, status, note in progress(out)] == [
        ("1", "2024-01-01", "skipped", "already succeeded"),
        ("2", "2024-01-03", "skipped", "already succeeded"),
        ("3", "2024-01-02", "succeeded", "T"),
    ]
    assert out.splitlines()[-1] == (
        "backfill of daily: 1 succeeded, 2 skipped (done before), 0 failed"
    )

    with Workspace.open(ws_dir) as ws:
        days = {
            name: ws.read(name).to_pylist()[0]
            for name in ws.datasets()
            if name.startswith("staging.day_")
        }
        assert sorted(days) == [
            "staging.day_20240101",
            "staging.day_20240102",
            "staging.day_20240103",
        ]
        assert str(days["staging.day_20240102"]["next_day"]) == "2024-01-03"
        runs = ws.runs()
        assert sorted(r.params["interval"]["key"] for r in runs if r.status == "succeeded") == [
            "2024-01-01",
            "2024-01-02",
            "2024-01-03",
        ]
    # another parameter value is another backfill: nothing is skipped
    code, out, _ = run_cli(capsys, *args, "--param", "scale=2")
    assert code == 0 and out.splitlines()[-1].startswith(
        "backfill of daily: 3 succeeded, 0 skipped"
    )


def test_backfill_bad_range_is_a_clear_error(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "backfill", "daily", "--from", "2024-01-05", "--to", "2024-01-01", "--every", "day"
    )
    assert code == 1
    assert err.startswith("error: invalid backfill range: the end `2024-01-01` is not after")
    code, _, err = run_cli(
        capsys, "backfill", "daily", "--from", "2024-01-01", "--to", "2024-01-02", "--every", "dya"
    )
    assert code == 1 and "`every` must be one of hour, day, week, month, got `dya`" in err


PARAMS = """\
name: regional
params:
  region: {type: string, default: eu}
  limit: {type: integer, default: 2}
steps:
  - name: pick
    type: transform
    sql: select '{{ params.region }}' as region, range as n from range({{ params.limit }})
    to: "staging.{{ params.region }}_numbers"
"""


def test_run_with_params_and_runs_show(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws_dir / "pipelines" / "regional.yaml").write_text(PARAMS)
    code, out, err = run_cli(capsys, "run", "regional", "-p", "region=us", "--param", "limit=3")
    assert code == 0, out + err
    with Workspace.open(ws_dir) as ws:
        assert ws.read("staging.us_numbers").num_rows == 3
        run = ws.runs()[0]
    code, out, _ = run_cli(capsys, "runs", "show", run.id, "--spec")
    assert code == 0
    assert f"  version: {run.params['spec_hash']}" in out
    assert "  params: region=us, limit=3" in out
    assert "{{ params.region }}" in out  # the text as it ran


def test_parameter_mistakes_on_the_command_line(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws_dir / "pipelines" / "regional.yaml").write_text(PARAMS)
    path = ws_dir / "pipelines" / "regional.yaml"
    code, _, err = run_cli(capsys, "run", "regional", "--param", "limit=lots")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"error: {path}:4:3: parameter `limit` is of type `integer`, but the value given "
        "`lots` is not: expected an integer such as `10`"
    )
    code, _, err = run_cli(capsys, "run", "regional", "--param", "regoin=us")
    assert err.splitlines()[0] == (
        f"error: {path}:2:1: unknown parameter `regoin`. Did you mean `region`?"
    )
    code, _, err = run_cli(capsys, "run", "regional", "--param", "region")
    assert err.splitlines()[0] == "error: `--param region` is not `name=value`"
    code, _, err = run_cli(capsys, "run")
    assert (
        err.splitlines()[0] == "error: `headwater run` needs a pipeline FILE, or `--resume RUN_ID`"
    )


def test_run_resume_from_the_command_line(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws_dir / "fail-2024-01-01").write_text("x")
    code, _, _ = run_cli(capsys, "backfill", "daily", "--from", "2024-01-01", "--to", "2024-01-02")
    assert code == 1
    with Workspace.open(ws_dir) as ws:
        failed = ws.runs()[0]
    code, out, _ = run_cli(capsys, "runs", "show", failed.id)
    assert "  traceback of your code in `gate`:" in out
    assert 'hooks.py", line 7, in check_day' in out
    assert "  interval: 2024-01-01T00:00:00 .. 2024-01-02T00:00:00 (day)" in out
    (ws_dir / "fail-2024-01-01").unlink()
    code, out, err = run_cli(capsys, "run", "--resume", failed.id)
    assert code == 0, out + err
    with Workspace.open(ws_dir) as ws:
        resumed = ws.runs()[0]
        assert resumed.params["resumed_from"] == failed.id
        assert resumed.params["interval"]["key"] == "2024-01-01"  # the interval is kept
        assert ws.read("staging.day_20240101").num_rows == 1
    code, _, err = run_cli(capsys, "run", "--resume", resumed.id)
    assert code == 1
    assert err.splitlines()[0] == (
        f"error: run `{resumed.id}` succeeded: there is nothing to resume"
    )


def test_validate_a_backfill_pipeline(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "validate", "pipelines/daily.yaml")
    assert code == 1
    assert "unknown name `interval` (only in a backfill)" in err
    assert "headwater validate FILE --interval 2024-01-01" in err
    code, out, err = run_cli(
        capsys, "validate", "pipelines/daily.yaml", "--interval", "2024-05-01", "--every", "month"
    )
    assert code == 0, err
    assert "staging.day_20240501" in out
