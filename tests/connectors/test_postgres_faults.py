"""postgres faults and hostile names, against real servers.

* a session killed mid-read or mid-write (``pg_terminate_backend`` from a second
  connection) is :class:`ConnectorUnavailableError` (transient: the runner retries) and
  a killed write leaves nothing behind;
* a wrong password, checked by a private PostgreSQL cluster that asks for one (the
  shared test server trusts every local login), is terminal, fast, and never shown;
* identifiers full of quotes, semicolons, dots, spaces and emoji round-trip through
  write, discover, read, merge, contracts and the load ledger, and do nothing evil.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.postgres.client import PostgresAuthError, PostgresQueryError
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.errors import ConnectorUnavailableError, Terminal, Transient


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def unique(prefix: str = "f") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- sessions killed mid-flight --------------------------------------------------------------


@pytest.fixture
def tagged(postgres_url: str) -> tuple[PostgresConfig, str]:
    """A config whose sessions carry a unique application_name, so a test can find them."""
    app = unique("hwkill")
    return PostgresConfig(url=f"{postgres_url}?application_name={app}"), app


def kill(url: str, app: str) -> int:
    rows = sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (app,),
    )
    return len(rows)


def wait_for(url: str, app: str, wait_event: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sql(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event = %s",
            (app, wait_event),
        )
        if found:
            return
        time.sleep(0.05)
    raise AssertionError(f"no session of {app} reached {wait_event}")


SLOW = (
    "SELECT g, repeat('x', 50) AS pad, CASE WHEN g = 60000 THEN pg_sleep(30) END AS s "
    "FROM generate_series(1, 100000) AS g"
)


def test_a_session_killed_mid_read_is_transient(
    postgres_url: str, tagged: tuple[PostgresConfig, str]
) -> None:
    config, app = tagged
    src = PostgresFactory().source(config)
    rows = 0

    def killer() -> None:
        wait_for(postgres_url, app, "PgSleep")  # 59,999 rows are on their way
        kill(postgres_url, app)

    thread = threading.Thread(target=killer)
    thread.start()
    started = time.monotonic()
    with pytest.raises(ConnectorUnavailableError) as info:
        for batch in src.read("q", options={"query": SLOW}):
            rows += batch.num_rows
    thread.join(10)
    assert time.monotonic() - started < 20
    assert isinstance(info.value, Transient) and not isinstance(info.value, Terminal)
    assert "127.0.0.1" in info.value.message
    assert rows < 100_000  # never a silently short read: the error is raised
    assert kill(postgres_url, app) == 0  # the connection is gone


def test_a_query_failing_mid_read_is_terminal(config_url: str) -> None:
    src = PostgresFactory().source(PostgresConfig(url=config_url))
    query = "SELECT g, 1 / (g - 60000) AS boom FROM generate_series(1, 100000) AS g"
    with pytest.raises(PostgresQueryError, match="division by zero") as info:
        list(src.read("q", options={"query": query}))
    assert isinstance(info.value, Terminal)


@pytest.fixture
def config_url(postgres_url: str) -> str:
    return postgres_url


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_a_session_killed_mid_write_leaves_nothing(
    postgres_url: str, tagged: tuple[PostgresConfig, str], mode: str
) -> None:
    config, app = tagged
    name, load_id = unique("killw"), unique("run")
    sql(postgres_url, f"CREATE TABLE {name} (id bigint PRIMARY KEY, v text)")
    sql(postgres_url, f"INSERT INTO {name} VALUES (1, 'old')")
    data = pa.table({"id": pa.array(range(10, 5010), pa.int64()), "v": ["new"] * 5000})

    def stream() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(data.to_batches(max_chunksize=500)):
            if i == 4:  # four batches are in the COPY: kill the session under it
                assert kill(postgres_url, app) == 1
            yield batch

    dst = PostgresFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(data.schema, stream())
    keys = ["id"] if mode == "merge" else None
    with pytest.raises(ConnectorUnavailableError) as info:
        dst.write(name, reader, mode=mode, keys=keys, load_id=load_id)  # type: ignore[arg-type]
    assert isinstance(info.value, Transient)
    assert sql(postgres_url, f"SELECT id, v FROM {name}") == [(1, "old")]
    assert sql(
        postgres_url, "SELECT count(*) FROM _headwater_loads WHERE load_id = %s", (load_id,)
    ) == [(0,)]
    assert sql(
        postgres_url,
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'hw_stage_%%' AND relkind = 'r'",
    ) == [(0,)]
    # the retry the runner makes loads it, once
    result = dst.write(name, data.to_reader(), mode=mode, keys=keys, load_id=load_id)  # type: ignore[arg-type]
    assert result.rows == 5000
    expected = 5000 if mode == "overwrite" else 5001
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(expected,)]


# -- a server that checks passwords -----------------------------------------------------------

PASSWORD = "r1ght-pw-Zq8"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def password_server(postgres_url: str) -> Iterator[str]:
    """A throwaway cluster with scram-sha-256 auth on a free port; yields host:port."""
    bin_dir = Path("/usr/lib/postgresql/15/bin")
    if not (bin_dir / "initdb").exists():
        found = shutil.which("pg_ctl")
        if found is None:
            message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
            if os.environ.get("CI"):
                pytest.fail(f"{message}; CI must run this test")
            pytest.skip(message)
        bin_dir = Path(found).parent
    root = Path(tempfile.mkdtemp(prefix="hw_pgauth_"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c shared_buffers=16MB -c max_connections=10"
    )
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(root / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_the_right_password_is_accepted(password_server: str) -> None:
    cfg = PostgresConfig(url=f"postgresql://postgres:{PASSWORD}@{password_server}/postgres")
    PostgresFactory().source(cfg).check()


def test_a_wrong_password_is_terminal_fast_and_never_shown(password_server: str) -> None:
    wrong = "wr0ng-pw-Xy7"
    cfg = PostgresConfig(url=f"postgresql://postgres:{wrong}@{password_server}/postgres")
    for attempt in (
        lambda: PostgresFactory().source(cfg).check(),
        lambda: list(PostgresFactory().source(cfg).read("t")),
        lambda: PostgresFactory().destination(cfg).write("t", pa.table({"a": [1]}).to_reader()),
    ):
        started = time.monotonic()
        with pytest.raises(PostgresAuthError) as info:
            attempt()
        assert time.monotonic() - started < 5
        err = info.value
        assert isinstance(err, Terminal) and not isinstance(err, Transient)
        text = str(err) + repr(err.attrs()) + repr(pickle.loads(pickle.dumps(err)).attrs())
        assert wrong not in text and PASSWORD not in text
        assert f"{password_server}/postgres" in err.message
        assert "password" in err.message.lower()  # the server's reason, without the secret


# -- hostile identifiers ----------------------------------------------------------------------

NAMES = [
    'we"ird',
    "back`tick",
    "semi;colon",
    "sp ace",
    "do.t",
    "é日本🦆",
    'x"; DROP TABLE t; --',
    "'single'",
    "MiXeD",
]


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    return PostgresConfig(url=postgres_url)


@pytest.mark.parametrize("name", NAMES)
def test_hostile_identifiers_round_trip(
    config: PostgresConfig, postgres_url: str, name: str
) -> None:
    sql(postgres_url, "CREATE TABLE IF NOT EXISTS t (canary int)")
    table = f"{name} {uuid.uuid4().hex[:4]}"
    key, col = f"k {name}", f"v {name}"
    data = pa.table({key: pa.array([1, 2, 3], pa.int64()), col: ["a", "b", "c"]})
    dst, src = PostgresFactory().destination(config), PostgresFactory().source(config)
    assert dst.write(table, data.to_reader(), mode="overwrite", load_id=f"{name}-1").rows == 3
    stream = next(s for s in src.discover() if s.name == f"public.{table}")
    assert stream.schema is not None and stream.schema.names == [key, col]
    # merge on the hostile key, a new hostile column added by the contract
    extra = f"new {name}"
    update = pa.table({key: pa.array([3, 4], pa.int64()), col: ["C", "d"], extra: [True, None]})
    result = dst.write(table, update.to_reader(), mode="merge", keys=[key], load_id=f"{name}-2")
    assert result.details["inserted"] == 1 and result.details["updated"] == 1
    assert result.details["columns_added"] == [extra]
    pred = f"{q(key)} >= 2 AND {q(col)} <> 'zz'"
    got = pa.Table.from_batches(list(src.read(table, predicate=pred, order_by=[key])))
    assert got.to_pylist() == [
        {key: 2, col: "b", extra: None},
        {key: 3, col: "C", extra: True},
        {key: 4, col: "d", extra: None},
    ]
    assert src.column_bounds(table, key) == (1, 4)
    assert src.column_bounds(f"public.{table}", col, predicate=pred) == ("C", "d")
    assert dst.write(
        table, update.to_reader(), mode="merge", keys=[key], load_id=f"{name}-2"
    ).details["already_loaded"]
    # the canary table is still there: nothing was executed as SQL
    assert sql(postgres_url, "SELECT count(*) FROM t") == [(0,)]


def test_a_hostile_schema_holds_the_ledger(config: PostgresConfig, postgres_url: str) -> None:
    schema = f'sch"ema; DROP TABLE t; -- {uuid.uuid4().hex[:4]}'
    sql(postgres_url, f"CREATE SCHEMA {q(schema)}")
    sql(postgres_url, "CREATE TABLE IF NOT EXISTS t (canary int)")
    dst = PostgresFactory().destination(config)
    target = f"{schema}.tab le"
    assert dst.write(target, pa.table({"a": [1]}).to_reader(), load_id="L'1\"").rows == 1
    assert dst.write(target, pa.table({"a": [1]}).to_reader(), load_id="L'1\"").details[
        "already_loaded"
    ]
    assert sql(postgres_url, f"SELECT load_id, target_table FROM {q(schema)}._headwater_loads") == [
        ("L'1\"", f"{schema}.tab le")
    ]
    assert sql(postgres_url, "SELECT count(*) FROM t") == [(0,)]
