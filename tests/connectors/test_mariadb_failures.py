"""mariadb: hostile identifiers, killed sessions (transient, no partial data), bad logins.

Against a real MariaDB (127.0.0.1:3306, user root). Sessions are killed with ``KILL <id>``
from a second connection while a read or a write runs.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory
from headwater.errors import (
    ConnectorError,
    ConnectorUnavailableError,
    SchemaIncompatibleError,
    Terminal,
    Transient,
)
from tests.connectors.server_cases import unique


def _admin() -> Any:
    import pymysql  # type: ignore[import-untyped]

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


@pytest.fixture
def config(mariadb_url: str) -> MariadbConfig:
    return MariadbConfig(url=mariadb_url, write_timeout=5)


def sql(
    config: MariadbConfig, statement: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{config.database}`")
            cur.execute(statement, params or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def read(config: MariadbConfig, stream: str, **kwargs: Any) -> pa.Table:
    batches = list(MariadbFactory().source(config).read(stream, **kwargs))
    return pa.Table.from_batches(batches)


# -- identifiers -------------------------------------------------------------------------------

NAMES = [
    'dq"uote',
    "back`tick``s",
    "semi;colon",
    "sp ace",
    "do.t",
    "é accent",
    "日本",
    'x"; DROP TABLE canary; --',
    "x`; DROP TABLE canary; --",
]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_identifiers_round_trip(config: MariadbConfig, name: str) -> None:
    canary = unique("canary")
    sql(config, f"CREATE TABLE `{canary}` (id int)")
    table_name = name + "_" + uuid.uuid4().hex[:4]
    key, value = name, "v " + name
    table = pa.table({key: [1, 2, 3], value: ["a", "b", "c"]})
    dst = MariadbFactory().destination(config)
    dst.write(table_name, table.to_reader(), mode="overwrite")
    dst.write(table_name, table.slice(0, 1).to_reader(), mode="append")
    merged = pa.table({key: [2, 4], value: ["b2", "d"]})
    result = dst.write(table_name, merged.to_reader(), mode="merge", keys=[key])
    assert (result.details["inserted"], result.details["updated"]) == (1, 1)
    streams = {s.name: s for s in MariadbFactory().source(config).discover()}
    assert table_name in streams
    assert streams[table_name].schema is not None
    assert streams[table_name].schema.names == [key, value]
    quoted = '"' + key.replace('"', '""') + '"'
    got = read(config, table_name, columns=[value, key], predicate=f"{quoted} >= 2", order_by=[key])
    assert got.to_pylist() == [{value: "b2", key: 2}, {value: "c", key: 3}, {value: "d", key: 4}]
    low, high = MariadbFactory().source(config).column_bounds(table_name, key)
    assert (low, high) == (1, 4)
    assert sql(config, "SHOW TABLES LIKE %s", (canary,)) == [(canary,)]


def test_names_mariadb_cannot_hold_fail_before_connecting() -> None:
    nowhere = MariadbConfig(url="mysql://me:pw@127.0.0.1:1/db")  # never reached
    dst = MariadbFactory().destination(nowhere)
    for table, column in [("emoji😀", "id"), ("t", "c😀"), ("t", "x" * 65), ("t", "trailing ")]:
        with pytest.raises(SchemaIncompatibleError) as info:
            dst.write(table, pa.table({column: [1]}).to_reader(), mode="append")
        assert "MariaDB" in str(info.value) or "characters" in str(info.value)
    with pytest.raises(SchemaIncompatibleError):
        MariadbFactory().source(nowhere).read("emoji😀")


# -- killed sessions ---------------------------------------------------------------------------


def _kill(
    config: MariadbConfig, info_like: str, *, delay: float = 0.0, within: float = 20
) -> list[int]:
    """Kill the sessions of ``config``'s database running a statement LIKE ``info_like``."""
    admin = _admin()
    killed: list[int] = []
    try:
        with admin.cursor() as cur:
            started = time.monotonic()
            while time.monotonic() - started < within and not killed:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND INFO LIKE %s "
                    "AND ID <> CONNECTION_ID()",
                    (config.database, info_like),
                )
                ids = [int(r[0]) for r in cur.fetchall()]
                if ids:
                    time.sleep(delay)
                for i in ids:
                    cur.execute(f"KILL {i}")
                    killed.append(i)
                time.sleep(0.005)
    finally:
        admin.close()
    return killed


def test_a_session_killed_mid_read_is_transient(config: MariadbConfig) -> None:
    slow = MariadbConfig(url=config.url, batch_rows=500)
    marker = uuid.uuid4().hex[:8]
    query = f"SELECT seq, SLEEP(0.0002) AS s, '{marker}' AS m FROM seq_1_to_20000"
    batches = MariadbFactory().source(slow).read("slow", options={"query": query})
    first = next(iter(batches))
    assert first.num_rows == 500
    assert _kill(config, f"%{marker}%")
    with pytest.raises(ConnectorUnavailableError) as info:
        for _ in batches:
            pass
    assert isinstance(info.value, Transient)
    assert config.where in str(info.value)


def _big(n: int = 300_000) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()), "v": pa.array(["x" * 40] * n)})


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_a_session_killed_mid_load_is_transient_and_leaves_nothing(
    config: MariadbConfig, mode: str
) -> None:
    name = unique("kill")
    sql(config, f"CREATE TABLE `{name}` (id bigint PRIMARY KEY, v text)")
    sql(config, f"INSERT INTO `{name}` VALUES (-1, 'old')")
    killed: list[int] = []
    killer = threading.Thread(
        target=lambda: killed.extend(_kill(config, "LOAD DATA LOCAL INFILE%", delay=0.05))
    )
    killer.start()
    load_id = f"killed-{uuid.uuid4().hex}"
    keys = ["id"] if mode == "merge" else None
    dst = MariadbFactory().destination(config)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectorUnavailableError) as info:
            dst.write(name, _big().to_reader(), mode=mode, keys=keys, load_id=load_id)  # type: ignore[arg-type]
    finally:
        killer.join(30)
    assert killed
    assert time.monotonic() - started < 30
    assert isinstance(info.value, Transient) and config.where in str(info.value)
    assert sql(config, f"SELECT id, v FROM `{name}`") == [(-1, "old")]
    assert sql(config, "SELECT count(*) FROM _headwater_loads WHERE load_id = %s", (load_id,)) == [
        (0,)
    ]
    assert sql(config, "SHOW TABLES LIKE 'hw%%'") == []
    # the runner retries a transient error: the same load id then loads once
    table = pa.table({"id": [1, 2], "v": ["a", "b"]})
    assert dst.write(name, table.to_reader(), mode=mode, keys=keys, load_id=load_id).rows == 2  # type: ignore[arg-type]


def test_a_session_killed_between_statements_is_transient(config: MariadbConfig) -> None:
    """The write's connection is killed while the caller's stream is being read."""
    name = unique("idle")
    sql(config, f"CREATE TABLE `{name}` (id bigint, v text)")
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])

    def gen() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1]), pa.array(["a"])], schema=schema)
        admin = _admin()
        try:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                    "AND ID <> CONNECTION_ID()",
                    (config.database,),
                )
                for (i,) in cur.fetchall():
                    cur.execute(f"KILL {int(i)}")
        finally:
            admin.close()
        yield pa.record_batch([pa.array([2]), pa.array(["b"])], schema=schema)

    dst = MariadbFactory().destination(config)
    with pytest.raises(ConnectorUnavailableError):
        dst.write(name, pa.RecordBatchReader.from_batches(schema, gen()), mode="append")
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(0,)]


# -- bad logins --------------------------------------------------------------------------------


def test_wrong_password_is_terminal_fast_and_secret_everywhere(mariadb_url: str) -> None:
    host_db = mariadb_url.split("@", 1)[1]
    cfg = MariadbConfig(url=f"mysql://root:s3cr3t-pw@{host_db}")
    src, dst = MariadbFactory().source(cfg), MariadbFactory().destination(cfg)
    attempts = [
        lambda: src.discover(),
        lambda: list(src.read("anything")),
        lambda: list(src.read("q", options={"query": "SELECT 1"})),
        lambda: src.column_bounds("anything", "id"),
        lambda: dst.write("t", pa.table({"id": [1]}).to_reader(), mode="append"),
        lambda: dst.write("t", pa.table({"id": [1]}).to_reader(), mode="merge", keys=["id"]),
    ]
    for attempt in attempts:
        started = time.monotonic()
        with pytest.raises(ConnectorError) as info:
            attempt()
        assert time.monotonic() - started < 5
        err = info.value
        assert isinstance(err, Terminal) and not isinstance(err, Transient), repr(err)
        text = str(err) + repr(err.attrs()) + repr(pickle.loads(pickle.dumps(err)).attrs())
        assert "s3cr3t-pw" not in text
        assert host_db in str(err)
