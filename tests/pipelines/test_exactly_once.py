"""Exactly-once effects under kill -9: PostgreSQL -> dataset and dataset -> PostgreSQL.

Each test runs ``headwater run`` in a child process, kills it (SIGKILL, either from here
at about half of a 1,000,000-row load, or at a named crash point through
``HEADWATER_CRASH_AT``), runs again, and compares row count, distinct keys and a
checksum with the source.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from headwater.crashpoints import CRASH_ENV
from headwater.workspace import Workspace

ROWS_BIG = 1_000_000
ROWS_SMALL = 10_000


@dataclass
class Env:
    root: Path
    url: str
    schema: str

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query)
            return list(cur.fetchall()) if cur.description else []

    def pipeline(self, body: str) -> Path:
        path = self.root / "pipelines" / "p.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text("name: p\nsteps:\n" + textwrap.indent(textwrap.dedent(body), "  "))
        return path

    def start(self, crash_at: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at:
            env[CRASH_ENV] = crash_at
        return subprocess.Popen(
            [sys.executable, "-m", "headwater", "run", "pipelines/p.yaml"],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def run(self, crash_at: str | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = self.start(crash_at)
        out, _ = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out)

    def ok(self) -> None:
        done = self.run()
        assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]

    def killed(self, crash_at: str) -> None:
        done = self.run(crash_at)
        assert done.returncode == -signal.SIGKILL, (
            f"expected a SIGKILL at {crash_at}, got {done.returncode}: "
            + done.stdout.decode(errors="replace")[-3000:]
        )

    def dataset_stats(self, name: str) -> tuple[int, int, int]:
        with Workspace.open(self.root) as ws:
            if not ws.lake.exists(name):
                return (0, 0, 0)
            table = ws.query(
                f"select count(*) as n, count(distinct id) as k, "
                f"coalesce(sum(id * 7 + cast(amount * 100 as bigint)), 0) as c from {name}"
            )
        row = table.to_pylist()[0]
        return (int(row["n"]), int(row["k"]), int(row["c"]))

    def table_stats(self, table: str) -> tuple[int, int, int]:
        (row,) = self.sql(
            f"select count(*), count(distinct id), "
            f"coalesce(sum(id * 7 + (amount * 100)::bigint), 0) from {self.schema}.{table}"
        )
        return (int(row[0]), int(row[1]), int(row[2]))  # type: ignore[call-overload]


@pytest.fixture
def env(postgres_url: str, tmp_path: Path) -> Iterator[Env]:
    schema = f"eo_{uuid.uuid4().hex[:10]}"
    root = tmp_path / "ws"
    Workspace.init(root).close()
    config = {"name": "eo", "connections": {"pg": {"type": "postgres", "url": postgres_url}}}
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    e = Env(root, postgres_url, schema)
    e.sql(f"create schema {schema}")
    try:
        yield e
    finally:
        e.sql(f"drop schema {schema} cascade")


def _source_table(env: Env, rows: int, *, cursor_groups: int | None = None) -> None:
    cursor = f"(g / {rows // cursor_groups})" if cursor_groups else "g"
    env.sql(
        f"""
        create table {env.schema}.src (
            id bigint primary key, cur bigint not null, amount numeric(12, 2), customer text
        );
        insert into {env.schema}.src
        select g, {cursor}, (g % 1000) / 10.0, 'c' || (g % 977)
        from generate_series(1, {rows}) as g;
        """
    )


def _kill_when(proc: subprocess.Popen[bytes], reached: object, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``reached()`` is true; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed:\n{out}")
        if reached():  # type: ignore[operator]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            return
        time.sleep(0.01)
    proc.kill()
    pytest.fail("the run never reached the kill point")


def _committed_rows(root: Path, step: str) -> int:
    try:
        with Workspace.open(root) as ws:
            saved = ws.store.get_checkpoint("p", step) or {}
    except Exception:  # the child may hold the metadata database for a moment
        return 0
    committed = saved.get("committed") or {}
    return int(committed.get("rows") or 0)


def test_kill_9_halfway_through_a_million_row_postgres_extract(env: Env) -> None:
    _source_table(env, ROWS_BIG)
    env.pipeline(
        f"""
        - type: extract
          name: pull
          connection: pg
          stream: {env.schema}.src
          to: raw.orders
          mode: append
          incremental: {{cursor: id}}
          checkpoint_every: 100000
        """
    )
    proc = env.start()
    _kill_when(proc, lambda: _committed_rows(env.root, "pull") >= ROWS_BIG // 2)
    partial = env.dataset_stats("raw.orders")
    assert 0 < partial[0] < ROWS_BIG and partial[0] == partial[1]  # whole chunks, no doubles
    env.ok()
    assert env.dataset_stats("raw.orders") == env.table_stats("src")
    env.ok()  # a third run finds nothing new
    assert env.dataset_stats("raw.orders") == env.table_stats("src")


def test_kill_9_halfway_through_a_million_row_merge_into_postgres(env: Env) -> None:
    ids = pa.array(range(1, ROWS_BIG + 1), pa.int64())
    with Workspace.open(env.root) as ws:
        ws.write(
            "raw.orders",
            pa.table(
                {
                    "id": ids,
                    "amount": pc.divide(pc.cast(ids, pa.float64()), 1000.0),
                }
            ).cast(pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))]), safe=False),
        )
    env.sql(
        f"""
        create table {env.schema}.orders (id bigint primary key, amount numeric(12, 2));
        insert into {env.schema}.orders select g, -1 from generate_series(1, 300000) as g;
        """
    )
    before = env.table_stats("orders")
    env.pipeline(
        f"""
        - type: load
          name: push
          from: raw.orders
          connection: pg
          target: {env.schema}.orders
          mode: merge
          keys: [id]
        """
    )
    proc = env.start()

    def copied_half() -> bool:
        rows = env.sql("select coalesce(max(tuples_processed), 0) from pg_stat_progress_copy")
        return int(rows[0][0]) >= ROWS_BIG // 2  # type: ignore[call-overload]

    _kill_when(proc, copied_half)
    assert env.table_stats("orders") == before  # nothing of the killed load is visible
    env.ok()
    assert env.table_stats("orders") == env.dataset_stats("raw.orders")
    env.ok()  # the same dataset version again: skipped by its load id
    assert env.table_stats("orders") == env.dataset_stats("raw.orders")
    ledger = env.sql(f"select count(*) from {env.schema}._headwater_loads")
    assert ledger[0][0] == 1
    # 1M incoming rows into 300k: auto rebuilt the table (the first completed run)
    assert _load_details(env)[-2]["strategy"] == "rebuild"


def _load_details(env: Env) -> list[dict[str, object]]:
    """The details of the load step ``push`` of every run, oldest first."""
    with Workspace.open(env.root) as ws:
        runs = ws.store.list_runs(pipeline="p", limit=100)
    steps = [s for r in reversed(runs) for s in r.steps if s.step == "push"]
    return [dict(s.details or {}) for s in steps if s.status == "succeeded"]


@pytest.mark.parametrize(
    ("strategy", "statement"),
    [("merge", "MERGE INTO %"), ("rebuild", "INSERT INTO %hw_rebuild_% WHERE NOT EXISTS %")],
)
def test_kill_9_in_the_middle_of_a_million_row_merge_by_strategy(
    env: Env, strategy: str, statement: str
) -> None:
    """Killed while the merge statement (or the rebuild's copy of untouched rows) runs."""
    ids = pa.array(range(1, ROWS_BIG + 1), pa.int64())
    with Workspace.open(env.root) as ws:
        ws.write(
            "raw.orders",
            pa.table({"id": ids, "amount": pc.cast(pc.divide(ids, 7), pa.float64())}).cast(
                pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))]), safe=False
            ),
        )
    env.sql(
        f"""
        create table {env.schema}.orders (id bigint primary key, amount numeric(12, 2));
        insert into {env.schema}.orders
        select g, -1 from generate_series({ROWS_BIG // 2}, {ROWS_BIG * 3 // 2}) as g;
        """
    )
    before = env.table_stats("orders")
    env.pipeline(
        f"""
        - type: load
          name: push
          from: raw.orders
          connection: pg
          target: {env.schema}.orders
          mode: merge
          keys: [id]
          options: {{merge_strategy: {strategy}}}
        """
    )
    proc = env.start()

    def running() -> bool:
        rows = env.sql(
            "select count(*) from pg_stat_activity where state = 'active' "
            f"and query like '{statement}' and query like '%{env.schema}%'"
        )
        return bool(rows[0][0])  # a count: 0 until the statement runs

    _kill_when(proc, running)
    assert env.table_stats("orders") == before  # nothing of the killed load is visible
    env.ok()
    details = _load_details(env)[-1]
    assert details["strategy"] == strategy
    assert (details["inserted"], details["updated"]) == (ROWS_BIG // 2 - 1, ROWS_BIG // 2 + 1)
    expected = env.dataset_stats("raw.orders")
    (untouched,) = env.sql(
        f"select count(*) from {env.schema}.orders where id > {ROWS_BIG} and amount = -1"
    )
    assert untouched[0] == ROWS_BIG // 2
    (merged,) = env.sql(
        f"select count(*), coalesce(sum(id * 7 + (amount * 100)::bigint), 0) "
        f"from {env.schema}.orders where id <= {ROWS_BIG}"
    )
    assert (merged[0], merged[1]) == (expected[0], expected[2])


EXTRACT_MATRIX = [
    ("append", "extract.after_read:2"),
    ("append", "extract.after_commit:2"),
    ("append", "extract.after_checkpoint:2"),
    ("merge", "extract.after_read:2"),
    ("merge", "extract.after_commit:2"),
    ("overwrite", "extract.after_read"),
    ("overwrite", "extract.after_commit"),
]


@pytest.mark.parametrize(("mode", "point"), EXTRACT_MATRIX)
def test_crash_points_of_extracts(env: Env, mode: str, point: str) -> None:
    _source_table(env, ROWS_SMALL, cursor_groups=4)  # 2,500 rows share each cursor value
    chunked = mode != "overwrite"
    body = textwrap.dedent(
        f"""
        - type: extract
          name: pull
          connection: pg
          stream: {env.schema}.src
          to: raw.orders
          mode: {mode}
        """
    )
    if mode == "merge":
        body += "  keys: [id]\n"
    if chunked:
        body += "  incremental: {cursor: cur}\n  checkpoint_every: 3000\n"
    env.pipeline(body)
    env.killed(point)
    partial = env.dataset_stats("raw.orders")
    assert partial[0] == partial[1]  # never a doubled row, even mid-way
    env.ok()
    assert env.dataset_stats("raw.orders") == env.table_stats("src")
    # rows arriving later, some at the current maximum cursor value
    env.sql(
        f"insert into {env.schema}.src select g, 4, 1, 'late' "
        f"from generate_series({ROWS_SMALL + 1}, {ROWS_SMALL + 500}) as g"
    )
    env.ok()
    assert env.dataset_stats("raw.orders") == env.table_stats("src")


def _orders_in_lake_and_table(env: Env, *, prefill: tuple[int, int]) -> object:
    """``raw.orders`` with ids 1..ROWS_SMALL, and a keyed PostgreSQL table holding the ids
    ``prefill`` (inclusive) with amount 5; returns the table's stats before any load."""
    ids = list(range(1, ROWS_SMALL + 1))
    with Workspace.open(env.root) as ws:
        ws.write(
            "raw.orders",
            pa.table({"id": pa.array(ids, pa.int64()), "amount": [i % 100 for i in ids]}),
        )
    first, last = prefill
    env.sql(
        f"create table {env.schema}.orders (id bigint primary key, amount numeric(12, 2));"
        f"insert into {env.schema}.orders select g, 5 from generate_series({first}, {last}) as g"
    )
    return env.table_stats("orders")


LOAD_MATRIX = [
    ("append", "load.before_commit"),
    ("append", "load.after_commit"),
    ("merge", "load.before_commit"),
    ("merge", "load.after_commit"),
    ("overwrite", "load.during_swap"),
    ("overwrite", "load.after_commit"),
]


@pytest.mark.parametrize(("mode", "point"), LOAD_MATRIX)
def test_crash_points_of_loads(env: Env, mode: str, point: str) -> None:
    before = _orders_in_lake_and_table(env, prefill=(1, 100))
    keys = "  keys: [id]\n" if mode == "merge" else ""
    if mode == "append":  # appending rows that exist would break the primary key
        env.sql(f"delete from {env.schema}.orders")
        before = env.table_stats("orders")
    env.pipeline(
        textwrap.dedent(
            f"""
            - type: load
              name: push
              from: raw.orders
              connection: pg
              target: {env.schema}.orders
              mode: {mode}
            """
        )
        + keys
    )
    env.killed(point)
    after_kill = env.table_stats("orders")
    if point == "load.after_commit":
        assert after_kill == env.dataset_stats("raw.orders")
    else:
        assert after_kill == before  # the killed transaction left nothing behind
    env.ok()
    assert env.table_stats("orders") == env.dataset_stats("raw.orders")


@pytest.mark.parametrize("point", ["load.during_swap", "load.before_commit", "load.after_commit"])
def test_crash_points_of_a_rebuilding_merge(env: Env, point: str) -> None:
    before = _orders_in_lake_and_table(env, prefill=(5001, 15000))
    env.pipeline(
        f"""
        - type: load
          name: push
          from: raw.orders
          connection: pg
          target: {env.schema}.orders
          mode: merge
          keys: [id]
          options: {{merge_strategy: rebuild}}
        """
    )
    env.killed(point)
    after_kill = env.table_stats("orders")
    if point == "load.after_commit":
        assert after_kill != before
    else:
        assert after_kill == before  # the killed transaction left the old table as it was
        tables = env.sql(
            f"select count(*) from pg_tables where schemaname = '{env.schema}' "
            "and tablename like 'hw_rebuild_%'"
        )
        assert tables[0][0] == 0
    env.ok()
    last = _load_details(env)[-1]  # after a committed load the rerun skips it
    assert last.get("strategy") == (None if point == "load.after_commit" else "rebuild")
    (stats,) = env.sql(
        f"select count(*), count(*) filter (where amount = 5 and id > {ROWS_SMALL}) "
        f"from {env.schema}.orders"
    )
    assert stats == (15_000, 5_000)
    env.ok()  # skipped by its load id
    assert env.sql(f"select count(*) from {env.schema}._headwater_loads")[0][0] == 1


def test_thirty_thousand_rows_on_three_cursor_values_survive_a_crash_after_a_checkpoint(
    env: Env,
) -> None:
    """The boundary case: 30,000 rows share 3 cursor values (12,000 / 9,000 / 9,000, so a
    chunk ends inside a run of equal values), checkpoint every 10,000, SIGKILL right after
    the first checkpoint; the re-run leaves exactly the 30,000 rows."""
    env.sql(
        f"""
        create table {env.schema}.src (id bigint primary key, cur int, amount numeric(12, 2));
        insert into {env.schema}.src
        select g, case when g <= 12000 then 1 when g <= 21000 then 2 else 3 end, g % 50
        from generate_series(1, 30000) as g;
        """
    )
    env.pipeline(
        f"""
        - type: extract
          name: pull
          connection: pg
          stream: {env.schema}.src
          to: raw.orders
          mode: append
          incremental: {{cursor: cur}}
          checkpoint_every: 10000
        """
    )
    env.killed("extract.after_checkpoint:1")
    assert env.dataset_stats("raw.orders")[0] == 10_000
    env.ok()
    assert env.dataset_stats("raw.orders") == env.table_stats("src")
    assert env.table_stats("src")[0] == 30_000
