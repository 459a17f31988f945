"""The runner: retries of transient errors, step selection, abandoned runs after a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from headwater.connectors.base import Capabilities, ConnectorConfig, ConnectorFactory, Source
from headwater.connectors.registry import register_connector
from headwater.errors import ConnectorUnavailableError, SourceFormatError
from headwater.testing import workspace_for_test

ATTEMPTS: dict[str, int] = {}


class FlakyConfig(ConnectorConfig):
    fail_times: int = 1
    terminal: bool = False


class _FlakySource:
    def __init__(self, config: FlakyConfig) -> None:
        self.config = config

    def check(self) -> None:
        return None

    def discover(self) -> list[Any]:
        return []

    def read(self, stream: str, **_: Any) -> Iterator[pa.RecordBatch]:
        ATTEMPTS[stream] = ATTEMPTS.get(stream, 0) + 1
        if ATTEMPTS[stream] <= self.config.fail_times:
            if self.config.terminal:
                raise SourceFormatError(f"`{stream}` is corrupt")
            raise ConnectorUnavailableError(f"`{stream}` endpoint timed out")
        yield pa.record_batch({"id": [1, 2, 3]})


class FlakyFactory(ConnectorFactory):
    name: ClassVar[str] = "flaky_test"
    config_model: ClassVar[type[ConnectorConfig]] = FlakyConfig
    capabilities: ClassVar[Capabilities] = Capabilities(source=True)

    def source(self, config: ConnectorConfig) -> Source:
        assert isinstance(config, FlakyConfig)
        return _FlakySource(config)


register_connector(FlakyFactory)


def _pipeline(retries: int, stream: str) -> str:
    return textwrap.dedent(
        f"""\
        name: flaky
        steps:
          - {{name: e, type: extract, connection: src, stream: {stream}, to: raw.t,
              retries: {retries}, retry_delay: 0.01}}
        """
    )


def test_transient_errors_are_retried() -> None:
    with workspace_for_test(connections={"src": {"type": "flaky_test", "fail_times": 2}}) as ws:
        (ws.root / "pipelines" / "p.yaml").write_text(_pipeline(2, "s1"))
        result = ws.run("p")
        assert result.ok, result.error
        assert ATTEMPTS["s1"] == 3
        assert ws.read("raw.t").num_rows == 3
        assert ws.get_run(result.run_id).steps[0].attempt == 3


def test_retries_run_out() -> None:
    with workspace_for_test(connections={"src": {"type": "flaky_test", "fail_times": 5}}) as ws:
        (ws.root / "pipelines" / "p.yaml").write_text(_pipeline(1, "s2"))
        result = ws.run("p")
        assert not result.ok and ATTEMPTS["s2"] == 2
        assert result.steps[0].error_type == "ConnectorUnavailableError"


def test_terminal_errors_are_not_retried() -> None:
    config = {"src": {"type": "flaky_test", "fail_times": 1, "terminal": True}}
    with workspace_for_test(connections=config) as ws:
        (ws.root / "pipelines" / "p.yaml").write_text(_pipeline(3, "s3"))
        result = ws.run("p")
        assert not result.ok and ATTEMPTS["s3"] == 1
        assert "corrupt" in (result.steps[0].error or "")


def test_select_runs_only_the_chosen_steps() -> None:
    from headwater.testing import memory_tables

    memory_tables("sel")["a"] = pa.table({"x": [1, 2]})
    pipeline = textwrap.dedent(
        """\
        name: sel
        steps:
          - {name: ea, type: extract, connection: m, stream: a, to: raw.a}
          - {name: t, type: transform, sql: "select x * 2 as y from {{ ref('raw.a') }}", to: s.b}
        """
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": "sel"}}) as ws:
        (ws.root / "pipelines" / "sel.yaml").write_text(pipeline)
        first = ws.run("sel", select=["ea"])
        assert [s.name for s in first.steps] == ["ea"] and first.ok
        assert not ws.lake.exists("s.b")
        second = ws.run("sel", select=["t"])
        assert [s.name for s in second.steps] == ["t"] and second.ok
        assert ws.read("s.b").column("y").to_pylist() == [2, 4]


def test_a_killed_run_is_marked_failed_on_next_open(tmp_path: Path) -> None:
    """A process that dies mid-run leaves `running`; the next open records what happened."""
    with workspace_for_test(tmp_path) as ws:
        url = ws.store.url
    script = textwrap.dedent(
        f"""
        import os, socket
        from headwater.metadata import MetadataStore
        store = MetadataStore({url!r})
        store.start_run("crashed", "p", params={{"pid": os.getpid(), "host": socket.gethostname()}})
        sid = store.add_step_run("crashed", "e", "extract", status="running")
        store.add_step_run("crashed", "t", "transform", status="pending")
        os._exit(137)  # no cleanup, like kill -9
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 137
    from headwater import Workspace

    with Workspace.open(tmp_path) as ws:
        run = ws.get_run("crashed")
        assert run.status == "failed" and "ended without finishing" in (run.error or "")
        assert [(s.step, s.status) for s in run.steps] == [("e", "failed"), ("t", "skipped")]


def test_a_retried_check_does_not_double_its_quarantine(monkeypatch: Any) -> None:
    """The rewrite after quarantining fails once (transient); the retry leaves each row once."""
    from headwater.lake.lake import Lake
    from headwater.testing import memory_tables

    memory_tables("retry")["o"] = pa.table({"id": [1, 2, 3], "amount": [5, -1, -2]})
    real_write = Lake.write
    failures = {"left": 1}

    def flaky_write(self: Lake, name: str, data: Any, **kwargs: Any) -> Any:
        rewrite = name == "raw.o" and kwargs.get("mode") == "overwrite"
        # only the check's rewrite (the quarantine exists by then), not the extract
        if rewrite and failures["left"] and self.exists("raw.o__quarantine"):
            failures["left"] -= 1
            raise ConnectorUnavailableError("simulated storage hiccup")
        return real_write(self, name, data, **kwargs)

    monkeypatch.setattr(Lake, "write", flaky_write)
    pipeline = textwrap.dedent(
        """\
        name: r
        steps:
          - {name: e, type: extract, connection: m, stream: o, to: raw.o}
          - name: c
            type: check
            dataset: raw.o
            retries: 1
            retry_delay: 0.01
            checks: [{type: range, column: amount, min: 0}]
        """
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": "retry"}}) as ws:
        (ws.root / "pipelines" / "r.yaml").write_text(pipeline)
        result = ws.run("r")
        assert result.ok, result.error
        assert failures["left"] == 0  # the failure did happen
        assert ws.get_run(result.run_id).steps[1].attempt == 2
        quarantined = ws.read("raw.o__quarantine").column("raw_record").to_pylist()
        assert sorted(quarantined) == ['{"id":2,"amount":-1}', '{"id":3,"amount":-2}']
        assert ws.read("raw.o").column("id").to_pylist() == [1]
