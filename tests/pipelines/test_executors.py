"""The same pipelines on threads, a process pool and a 2-worker Dask LocalCluster.

Each example workspace (the quickstart, the docs' orders pipeline) is copied three times
and run once per executor; every dataset (less the columns that name the run) and the
exported file must hold the same rows, and every step the same counts. An error raised in
a worker process arrives as the same class, with its fields and the worker's traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import ConfigError, PipelineSyntaxError, SourceNotFoundError
from headwater.pipelines.executors import (
    DaskExecutor,
    ExecutorConfig,
    RemoteSteps,
    make_executor,
    parse_executor_option,
    resolve_executor,
)
from headwater.pipelines.loader import parse_pipeline
from headwater.pipelines.steps import RunContext
from headwater.workspace import Workspace
from tests.docs.test_examples import ORDERS_CSV

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
EXAMPLE_DB = ROOT / "examples" / "database"
HEADWATER = Path(sys.executable).parent / "headwater"
# columns that name the run or the moment, which differ between any two runs
VOLATILE = {"run_id", "quarantined_at", "load_id"}
# DuckDB's CSV rejects sometimes report one short line twice ("Found: 5; ... Found: 6"),
# depending on how the scan was split, even for two thread runs in one process: the
# quarantined rows are compared, the text of a parse error is not
PARSE_ERROR_TEXT = "error"


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Executor]:
    pool = make_executor("process", workers=2)
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[DaskExecutor]:
    executor = DaskExecutor(workers=2)
    yield executor
    executor.shutdown()


def _quickstart(root: Path) -> Path:
    root.mkdir()
    for name in ("headwater.yaml", "pipelines", "data"):
        src = QUICKSTART / name
        if src.is_dir():
            shutil.copytree(src, root / name)
        else:
            shutil.copy(src, root / name)
    Workspace.init(root).close()
    return root / "pipelines" / "quickstart.yaml"


def _orders(root: Path) -> Path:
    Workspace.init(root).close()
    (root / "data" / "orders.csv").write_text(ORDERS_CSV)
    pipeline = root / "pipelines" / "orders.yaml"
    shutil.copy(ROOT / "docs" / "examples" / "orders_pipeline.yaml", pipeline)
    return pipeline


_SHOP: dict[str, Path] = {}


def _database(root: Path) -> Path:
    """examples/database with the shop generated once (timestamps differ between calls)."""
    if "db" not in _SHOP:
        from tests.docs.test_database_example import _shop_module

        shop = root.parent / "shop.sqlite"
        _shop_module().advance(shop, seed=1)
        _SHOP["db"] = shop
    shutil.copytree(
        EXAMPLE_DB, root, ignore=shutil.ignore_patterns("lake", "data", ".headwater", "*.py")
    )
    (root / "data").mkdir()
    shutil.copy(_SHOP["db"], root / "data" / "shop.sqlite")
    Workspace.init(root).close()
    return root / "pipelines" / "sync.yaml"


def _checksum(table: pa.Table, root: Path) -> tuple[int, str]:
    """Row count and a hash of the sorted rows (paths inside the workspace made relative)."""
    keep = [c for c in table.column_names if c not in VOLATILE]
    if "rule" in keep and "raw_record" in keep:  # a quarantine dataset
        keep.remove(PARSE_ERROR_TEXT)
    table = table.select(keep)
    rows = sorted(
        repr(tuple(r.values())).replace(str(root.resolve()), "<root>") for r in table.to_pylist()
    )
    return table.num_rows, hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _state(ws: Workspace) -> dict[str, tuple[int, str]]:
    out = {name: _checksum(ws.read(name), ws.root) for name in ws.datasets()}
    for file in sorted((ws.root / "exports").glob("*.parquet")):
        out[f"exports/{file.name}"] = _checksum(pq.read_table(file), ws.root)
    warehouse = ws.root / "data" / "warehouse.duckdb"
    if warehouse.exists():
        import duckdb

        with duckdb.connect(str(warehouse), read_only=True) as con:
            revenue = con.sql("select * from revenue").arrow().read_all()
        out["warehouse.revenue"] = _checksum(revenue, ws.root)
    return out


def _run(
    root: Path, pipeline: Path, executor: object
) -> tuple[dict[str, object], dict[str, tuple[int, str]]]:
    with Workspace.open(root) as ws:
        result = ws.run(pipeline, executor=executor)
        assert result.ok, result.error
        steps = {
            s.name: (s.status, s.rows_in, s.rows_out, s.rows_quarantined) for s in result.steps
        }
        return steps, _state(ws)


@pytest.mark.parametrize(
    "example", [_quickstart, _orders, _database], ids=["quickstart", "orders", "database"]
)
def test_examples_give_the_same_datasets_on_every_executor(
    tmp_path: Path, example: object, process_pool: Executor, dask_cluster: DaskExecutor
) -> None:
    results = {}
    for name, executor in (
        ("threads", "local"),
        ("processes", process_pool),
        ("dask", dask_cluster),
    ):
        pipeline = example(tmp_path / name)  # type: ignore[operator]
        results[name] = _run(tmp_path / name, pipeline, executor)
    steps, datasets = results["threads"]
    assert datasets and all(rows > 0 for rows, _ in datasets.values() if rows)
    assert "warehouse.revenue" in datasets or any(n.endswith("__quarantine") for n in datasets)
    for name in ("processes", "dask"):
        assert results[name][0] == steps, name
        assert results[name][1] == datasets, name


def test_the_pipeline_chooses_its_executor_and_the_cli_overrides_it(tmp_path: Path) -> None:
    pipeline = _orders(tmp_path)
    text = pipeline.read_text()
    pipeline.write_text(text + "executor:\n  type: process\n  workers: 1\n")
    spec = parse_pipeline(pipeline.read_text(), source=str(pipeline))
    assert spec.executor is not None and spec.executor.type == "process"
    assert resolve_executor(None, spec.executor) == ExecutorConfig("process", workers=1)
    assert resolve_executor("local", spec.executor) == ExecutorConfig("local")
    # a step that fails in a worker process: the pid in its traceback is not ours
    (tmp_path / "data" / "orders.csv").unlink()
    with Workspace.open(tmp_path) as ws:
        result = ws.run(pipeline)
        failed = [s for s in result.steps if s.status == "failed"]
        assert len(failed) == 1 and failed[0].error_type == "SourceNotFoundError"
        trace = failed[0].details["traceback"]
        assert "headwater/pipelines/worker.py" in trace
        assert "SourceNotFoundError" in trace
        assert f"in process {os.getpid()} " not in trace and "step ran in process" in trace
        stored = ws.get_run(result.run_id).steps
        assert any("step ran in process" in str(s.details.get("traceback")) for s in stored)
        # --executor local runs the same failure in this process: no worker traceback
        local = ws.run(pipeline, executor="local")
        assert "traceback" not in local.step(failed[0].name).details


def test_an_unknown_executor_in_yaml_is_a_located_error(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "examples" / "orders_pipeline.yaml").read_text()
    with pytest.raises(PipelineSyntaxError) as info:
        parse_pipeline(text + "executor:\n  type: daks\n", source="orders.yaml")
    line = len(text.splitlines()) + 2
    assert info.value.location is not None and info.value.location.startswith(
        f"orders.yaml:{line}:"
    )
    assert "dask" in str(info.value) and "process" in str(info.value)


def test_the_executor_option_is_checked() -> None:
    assert parse_executor_option("dask") == ExecutorConfig("dask")
    assert parse_executor_option("dask=tcp://10.0.0.5:8786") == ExecutorConfig(
        "dask", address="tcp://10.0.0.5:8786"
    )
    assert parse_executor_option("process=3") == ExecutorConfig("process", workers=3)
    with pytest.raises(ConfigError, match="unknown executor `dsak`") as info:
        parse_executor_option("dsak")
    assert info.value.hint is not None and "Did you mean `dask`?" in info.value.hint
    with pytest.raises(ConfigError, match="positive integer"):
        parse_executor_option("process=many")
    with pytest.raises(ConfigError, match="takes no value"):
        parse_executor_option("local=4")


def test_the_cli_rejects_an_unknown_executor(tmp_path: Path) -> None:
    pipeline = _orders(tmp_path)
    proc = subprocess.run(
        [str(HEADWATER), "-w", str(tmp_path), "run", str(pipeline), "--executor", "dsak"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "error: unknown executor `dsak`" in proc.stderr
    assert "Did you mean `dask`?" in proc.stderr
    assert "Traceback" not in proc.stderr
    with Workspace.open(tmp_path) as ws:
        assert ws.runs() == []


def test_a_dask_cli_run_matches_the_thread_run(tmp_path: Path) -> None:
    states = {}
    for name, option in (("threads", "local"), ("dask", "dask")):
        pipeline = _orders(tmp_path / name)
        proc = subprocess.run(
            [str(HEADWATER), "-w", str(tmp_path / name), "run", str(pipeline), "-e", option],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        with Workspace.open(tmp_path / name) as ws:
            states[name] = _state(ws)
    assert states["dask"] == states["threads"]


def _ctx(ws: Workspace, pipeline: str) -> RunContext:
    return RunContext(
        run_id="r" * 32,
        pipeline=pipeline,
        store=ws.store,
        lake=ws.lake,
        connections=ws.connections,
        engine=ws.settings.engine,
        emit=lambda event: None,
    )


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_worker_error_arrives_with_type_fields_and_traceback(
    tmp_path: Path, kind: str, process_pool: Executor, dask_cluster: DaskExecutor
) -> None:
    pipeline = _orders(tmp_path)
    (tmp_path / "data" / "orders.csv").unlink()
    executor = process_pool if kind == "process" else dask_cluster
    with Workspace.open(tmp_path) as ws:
        spec = ws.load_pipeline(pipeline)
        step = spec.steps[0]
        with pytest.raises(SourceNotFoundError) as info:
            RemoteSteps(executor, ws)(_ctx(ws, spec.name), step)
        local_exc: SourceNotFoundError | None = None
        try:
            from headwater.pipelines.steps import execute_step

            execute_step(_ctx(ws, spec.name), step)
        except SourceNotFoundError as exc:
            local_exc = exc
    remote = info.value
    assert local_exc is not None
    assert type(remote) is SourceNotFoundError
    assert remote.attrs() == local_exc.attrs()
    assert remote.connector == local_exc.connector and remote.hint == local_exc.hint
    trace = remote.remote_traceback or ""
    assert "Traceback (most recent call last)" in trace
    assert "headwater/pipelines/worker.py" in trace and "SourceNotFoundError" in trace
    pid = int(trace.rsplit("step ran in process ", 1)[1].split()[0])
    assert pid != os.getpid()


def test_a_dask_scheduler_that_is_not_there_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler") as info:
        make_executor("dask", address=f"tcp://127.0.0.1:{port}")
    assert info.value.field == "executor.address"


def test_the_documented_executor_example_runs_and_matches_threads(tmp_path: Path) -> None:
    import re

    doc = (ROOT / "docs" / "pipelines.md").read_text(encoding="utf-8")
    section = re.search(r"^## Executors\n(.*?)(?=^## )", doc, re.M | re.S)
    assert section is not None
    blocks = re.findall(r"^```yaml\n(.*?)^```", section.group(1), re.M | re.S)
    example = ROOT / "docs" / "examples" / "executor_pipeline.yaml"
    assert blocks == [example.read_text(encoding="utf-8")]
    states = {}
    for name, pipeline_file in (("threads", "orders_pipeline.yaml"), ("example", example.name)):
        pipeline = _orders(tmp_path / name)
        shutil.copy(ROOT / "docs" / "examples" / pipeline_file, pipeline)
        with Workspace.open(tmp_path / name) as ws:
            spec = ws.load_pipeline(pipeline)
            assert (spec.executor is not None) == (name == "example")
            result = ws.run(pipeline)
            assert result.ok, result.error
            states[name] = _state(ws)
    assert states["example"] == states["threads"]
    assert states["threads"]["exports/orders.parquet"][0] == 2


def test_workers_decrypt_stored_secrets_with_their_own_key(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import psycopg
    from cryptography.fernet import Fernet

    monkeypatch.setenv("HEADWATER_SECRET_KEY", Fernet.generate_key().decode())
    table = f"exec_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"create table public.{table} as select g as id from generate_series(1, 500) g"
        )
    try:
        root = tmp_path / "ws"
        Workspace.init(root).close()
        (root / "pipelines" / "pull.yaml").write_text(
            f"name: pull\nsteps:\n  - {{name: pull, type: extract, connection: pg, "
            f"stream: public.{table}, to: raw.t}}\n"
        )
        with Workspace.open(root) as ws:
            ws.add_connection("pg", "postgres", secrets={"url": postgres_url})
            assert ws.settings.secret_key is not None
            pool = make_executor("process", workers=1)  # spawned now: inherits the key
            try:
                remote = RemoteSteps(pool, ws)
                assert remote.settings.secret_key is None  # the key is not in the task
                result = ws.run("pipelines/pull.yaml", executor=pool)
            finally:
                pool.shutdown()
            assert result.ok, result.error
            assert result.step("pull").rows_out == 500
            assert ws.read("raw.t").num_rows == 500
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"drop table public.{table}")
