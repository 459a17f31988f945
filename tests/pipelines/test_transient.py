"""Transient and terminal connector errors through whole runs against PostgreSQL.

A server-side kill of the reading or writing session (``pg_terminate_backend``) is a
dropped connection: the step is retried and completes with exact counts. A wrong password
is terminal: the run fails fast, once, naming the connection and never the password.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from headwater.pipelines.spec import PipelineSpec
from headwater.workspace import Workspace

ROWS = 300_000


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[str, str]]:
    schema = f"tr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
    try:
        yield postgres_url, schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


def _workspace(root: Path, url: str) -> Workspace:
    Workspace.init(root).close()
    config = {"name": "tr", "connections": {"pg": {"type": "postgres", "url": url}}}
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    return Workspace.open(root)


def _terminate_once(url: str, find: str, stop: threading.Event, killed: list[int]) -> None:
    """Terminate the first backend ``find`` (a query returning pids) returns, once."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set() and not killed:
            for (pid,) in conn.execute(find).fetchall():
                conn.execute("select pg_terminate_backend(%s)", (pid,))
                killed.append(int(pid))
                return
            time.sleep(0.005)


def _run_with_kill(ws: Workspace, spec: PipelineSpec, url: str, find: str) -> tuple[object, int]:
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_terminate_once, args=(url, find, stop, killed))
    killer.start()
    try:
        result = ws.run(spec)
    finally:
        stop.set()
        killer.join()
    assert killed, "no session was terminated: the test did not exercise a dropped connection"
    run = ws.get_run(result.run_id)  # type: ignore[attr-defined]
    return result, max(s.attempt for s in run.steps)


def test_a_read_dropped_by_the_server_is_retried_and_exact(
    pg: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"create table {schema}.src as select g as id, (g % 1000) / 10.0 as amount "
            f"from generate_series(1, {ROWS}) as g"
        )
    spec = PipelineSpec.from_yaml(
        f"""
name: tr
steps:
  - type: extract
    connection: pg
    stream: {schema}.src
    to: raw.src
    retry_delay: 0.05
"""
    )
    find = (
        "select pid from pg_stat_activity where state = 'active' "
        f"and query like '%{schema}%src%' and pid <> pg_backend_pid()"
    )
    with _workspace(tmp_path / "ws", url) as ws:
        result, attempts = _run_with_kill(ws, spec, url, find)
        assert result.status == "succeeded", result.error  # type: ignore[attr-defined]
        assert attempts == 2
        stats = ws.query("select count(*) as n, count(distinct id) as k from raw.src")
        assert stats.to_pylist() == [{"n": ROWS, "k": ROWS}]


def test_a_write_dropped_by_the_server_is_retried_and_exact(
    pg: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = pg
    spec = PipelineSpec.from_yaml(
        f"""
name: tr
steps:
  - type: load
    from: raw.orders
    connection: pg
    target: {schema}.orders
    mode: append
    retry_delay: 0.05
"""
    )
    # only this database's COPY: the server is shared, other sessions' COPYs are not ours
    find = (
        "select pid from pg_stat_progress_copy "
        "where pid <> pg_backend_pid() and datname = current_database()"
    )
    with _workspace(tmp_path / "ws", url) as ws:
        ids = pa.array(range(ROWS), pa.int64())
        ws.write("raw.orders", pa.table({"id": ids, "v": pc.cast(ids, pa.string())}))
        result, attempts = _run_with_kill(ws, spec, url, find)
        assert result.status == "succeeded", result.error  # type: ignore[attr-defined]
        assert attempts == 2
    with psycopg.connect(url) as conn:
        row = conn.execute(f"select count(*), count(distinct id) from {schema}.orders").fetchone()
    assert row == (ROWS, ROWS)


def test_a_refused_login_fails_fast_once_and_never_shows_the_password(
    postgres_url: str, tmp_path: Path
) -> None:
    """The test server trusts local users, so the refusal comes from an unknown role: the
    same path as a wrong password (the server answered and said no)."""
    parts = urlsplit(postgres_url)
    host = parts.netloc.rpartition("@")[2]
    secret = "Sup3r-s3cret-pw"
    bad = urlunsplit(
        (parts.scheme, f"hw_nobody_{uuid.uuid4().hex[:8]}:{secret}@{host}", parts.path, "", "")
    )
    root = tmp_path / "ws"
    _workspace(root, bad).close()
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / "p.yaml").write_text(
        "name: p\nsteps:\n  - {type: extract, connection: pg, stream: pg_class, to: raw.c}\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "run", "pipelines/p.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert secret not in output
    assert "connection `pg`" in output and "refused" in output
    with Workspace.open(root) as ws:
        (run,) = ws.runs()
        (step,) = run.steps
    assert step.attempt == 1  # terminal: not retried
    assert secret not in (step.error or "")
    assert elapsed < 5, f"took {elapsed:.1f} s"
