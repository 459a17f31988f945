"""mariadb destination: merge, the load-id ledger, schema contracts, rejects, crash safety.

Against a real MariaDB (127.0.0.1:3306, user root); every test makes its own tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import ListRejectSink, WriteResult
from headwater.connectors.contract import SchemaContractError
from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory
from headwater.errors import (
    ConfigError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
)
from tests.connectors.server_cases import CRASH_POINTS, failing, unique, untouchable

LEDGER = "_headwater_loads"


def _admin() -> Any:
    import pymysql  # type: ignore[import-untyped]

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


@pytest.fixture
def config(mariadb_url: str) -> MariadbConfig:
    return MariadbConfig(url=mariadb_url)


def sql(
    config: MariadbConfig, statement: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{config.database}`")
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(statement, params or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def write(
    config: MariadbConfig, target: str, table: pa.Table, mode: str = "append", **kwargs: Any
) -> WriteResult:
    dst = MariadbFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
    return dst.write(target, reader, mode=mode, **kwargs)  # type: ignore[arg-type]


def rows(config: MariadbConfig, table: str, order: str = "id") -> list[tuple[Any, ...]]:
    return sql(config, f"SELECT * FROM `{table}` ORDER BY {order}")


def ledger(config: MariadbConfig, load_id: str) -> list[tuple[Any, ...]]:
    return sql(
        config,
        f"SELECT target_table, mode, `rows`, committed_at FROM {LEDGER} WHERE load_id = %s",
        (load_id,),
    )


class Boom(Exception):
    pass


def _failing(table: pa.Table, after: int) -> pa.RecordBatchReader:
    return failing(table, after, Boom("the upstream broke"))


# -- merge -------------------------------------------------------------------------------------


def test_merge_creates_a_keyed_table_then_upserts_last_occurrence_wins(
    config: MariadbConfig,
) -> None:
    name = unique("m")
    first = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"], "n": [1.5, 2.5, None]})
    result = write(config, name, first, "merge", keys=["id"])
    assert result.rows == 3 and result.details["inserted"] == 3
    ddl = sql(config, f"SHOW CREATE TABLE `{name}`")[0][1]
    assert "PRIMARY KEY (`id`)" in ddl
    second = pa.table(
        {"id": [2, 4, 2, 5, 4], "v": ["b1", "d", "b2", "e", "d2"], "n": [None, 4.0, 9.0, 5.0, 4.5]}
    )
    result = write(config, name, second, "merge", keys=["id"])
    assert result.details["merge_statement"] == "on duplicate key update"
    assert result.details["duplicates"] == 2
    assert result.rows == 3
    assert (result.details["inserted"], result.details["updated"]) == (2, 1)
    assert rows(config, name) == [
        (1, "a", 1.5),
        (2, "b2", 9.0),
        (3, "c", None),
        (4, "d2", 4.5),
        (5, "e", 5.0),
    ]


def test_merge_into_a_new_table_loads_straight_in_last_occurrence_wins(
    config: MariadbConfig,
) -> None:
    name = unique("mn")
    stream = pa.table({"id": [1, 2, 1, 3, 2], "v": ["a", "b", "a2", "c", "b2"]})
    result = write(config, name, stream, "merge", keys=["id"], load_id=f"mn-{name}")
    assert result.details["merge_statement"] == "load data replace"
    assert (result.rows, result.details["inserted"], result.details["duplicates"]) == (3, 3, 2)
    assert rows(config, name) == [(1, "a2"), (2, "b2"), (3, "c")]
    assert ledger(config, f"mn-{name}")[0][2] == 3


def test_merge_into_a_new_table_with_text_keys_or_soft_deletes(config: MariadbConfig) -> None:
    name = unique("mt")
    long_key = "k" * 300  # longer than the staging index prefix: compared in full
    stream = pa.table({"k": [long_key, "b", long_key + "x", "b"], "v": [1, 2, 3, 4]})
    result = write(config, name, stream, "merge", keys=["k"])
    assert result.details["merge_statement"] == "update join"  # longtext: no primary key
    assert sql(config, f"SELECT k, v FROM `{name}` ORDER BY v") == [
        (long_key, 1),
        (long_key + "x", 3),
        ("b", 4),
    ]
    again = write(config, name, pa.table({"k": [long_key + "x", "z"], "v": [30, 5]}), "merge",
                  keys=["k"])  # fmt: skip
    assert (again.details["inserted"], again.details["updated"]) == (1, 1)
    assert sql(config, f"SELECT v FROM `{name}` ORDER BY v") == [(1,), (4,), (5,), (30,)]
    soft = unique("ms")
    flagged = pa.table({"id": [1, 2, 1], "v": ["a", "b", "a2"], "del": [False, True, True]})
    result = write(config, soft, flagged, "merge", keys=["id"],
                   options={"soft_delete_column": "del"})  # fmt: skip
    assert result.details["merge_statement"] == "on duplicate key update"
    assert rows(config, soft) == []  # the last occurrence of each key deletes it
    assert result.details["inserted"] == 0


def test_merge_without_a_unique_key_updates_and_inserts(config: MariadbConfig) -> None:
    name = unique("mu")
    sql(config, f"CREATE TABLE `{name}` (id int, k varchar(10), v text, extra int DEFAULT 7)")
    sql(
        config,
        f"INSERT INTO `{name}` VALUES (1, 'x', 'old', 1), (1, 'y', 'old', 2), (2, 'x', 'old', 3)",
    )
    incoming = pa.table({"id": [1, 3, 1], "k": ["x", "x", "x"], "v": ["new1", "new3", "newer1"]})
    result = write(config, name, incoming, "merge", keys=["id", "k"])
    assert result.details["merge_statement"] == "update join"
    assert (result.details["inserted"], result.details["updated"]) == (1, 1)
    assert result.details["duplicates"] == 1 and result.rows == 2
    assert rows(config, name, "id, k") == [
        (1, "x", "newer1", 1),
        (1, "y", "old", 2),
        (2, "x", "old", 3),
        (3, "x", "new3", 7),
    ]


def test_merge_with_another_unique_key_does_not_use_on_duplicate_key(
    config: MariadbConfig,
) -> None:
    name = unique("m2")
    sql(
        config,
        f"CREATE TABLE `{name}` (id int PRIMARY KEY, email varchar(50), UNIQUE KEY ue (email))",
    )
    sql(config, f"INSERT INTO `{name}` VALUES (1, 'a@x'), (2, 'b@x')")
    result = write(config, name, pa.table({"email": ["a@x"], "id": [10]}), "merge", keys=["email"])
    assert result.details["merge_statement"] == "update join"
    assert rows(config, name) == [(2, "b@x"), (10, "a@x")]


def test_merge_on_a_case_insensitive_unique_key(config: MariadbConfig) -> None:
    name = unique("mci")
    sql(
        config,
        f"CREATE TABLE `{name}` (code varchar(10) COLLATE utf8mb4_general_ci PRIMARY KEY, v int)",
    )
    sql(config, f"INSERT INTO `{name}` VALUES ('ABC', 1)")
    result = write(
        config,
        name,
        pa.table({"code": ["abc", "Abc", "x"], "v": [2, 3, 4]}),
        "merge",
        keys=["code"],
    )
    assert result.details["merge_statement"] == "on duplicate key update"
    assert result.details["duplicates"] == 1  # 'abc' and 'Abc' are one key to MariaDB
    assert sql(config, f"SELECT v FROM `{name}` ORDER BY v") == [(3,), (4,)]


@pytest.mark.parametrize("keyed", [True, False])
def test_merge_soft_delete(config: MariadbConfig, keyed: bool) -> None:
    name = unique("sd")
    key = "PRIMARY KEY" if keyed else ""
    sql(config, f"CREATE TABLE `{name}` (id int {key}, v varchar(5))")
    sql(config, f"INSERT INTO `{name}` VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    incoming = pa.table(
        {
            "id": [1, 2, 4, 5, 3],
            "v": ["a2", "x", "d", "e", "c2"],
            "gone": [False, True, True, None, False],
        }
    )
    result = write(
        config, name, incoming, "merge", keys=["id"], options={"soft_delete_column": "gone"}
    )
    assert rows(config, name) == [(1, "a2"), (3, "c2"), (5, "e")]
    assert (result.details["deleted"], result.details["inserted"], result.details["updated"]) == (
        1,
        1,
        2,
    )
    columns = [r[0] for r in sql(config, f"SHOW COLUMNS FROM `{name}`")]
    assert columns == ["id", "v"]  # the flag is not a column of the target


def test_merge_refusals_write_nothing(config: MariadbConfig) -> None:
    name = unique("mr")
    write(config, name, pa.table({"id": [1], "v": ["a"]}), "merge", keys=["id"])
    with pytest.raises(ConfigError):
        write(config, name, pa.table({"id": [2]}), "merge")
    with pytest.raises(ConfigError) as info:
        write(config, name, pa.table({"id": [2]}), "merge", keys=["idd"])
    assert "id" in (info.value.hint or "")
    with pytest.raises(ConfigError):
        write(config, name, pa.table({"id": [2], "f": [1]}), "merge", keys=["id"],
              options={"soft_delete_column": "f"})  # fmt: skip
    with pytest.raises(ConfigError):
        write(config, name, pa.table({"id": [2]}), "merge", keys=["id"], options={"x": 1})
    with pytest.raises(SchemaIncompatibleError) as null:
        write(config, name, pa.table({"id": [2, None], "v": ["b", "c"]}), "merge", keys=["id"])
    assert null.value.column == "id"
    with pytest.raises(Boom):
        dst = MariadbFactory().destination(config)
        big = pa.table({"id": list(range(10)), "v": ["z"] * 10})
        dst.write(name, _failing(big, 2), mode="merge", keys=["id"])
    assert rows(config, name) == [(1, "a")]
    view = unique("v")
    sql(config, f"CREATE VIEW `{view}` AS SELECT * FROM `{name}`")
    with pytest.raises(UnsupportedOperationError):
        write(config, view, pa.table({"id": [1], "v": ["b"]}), "merge", keys=["id"])


def test_merge_discard_row_quarantines_null_keys(config: MariadbConfig) -> None:
    name = unique("mk")
    write(config, name, pa.table({"id": [1], "v": ["a"]}), "merge", keys=["id"])
    sink = ListRejectSink()
    incoming = pa.table({"id": [None, 1, 2], "v": ["lost", "a2", "b"]})
    result = write(config, name, incoming, "merge", keys=["id"],
                   schema_contract="discard_row", rejects=sink)  # fmt: skip
    assert result.details["rows_rejected"] == 1 and result.rows == 2
    assert rows(config, name) == [(1, "a2"), (2, "b")]
    assert json.loads(sink.items[0].raw_record) == {"id": None, "v": "lost"}
    assert "null merge key" in sink.items[0].error and sink.items[0].column == "id"


def test_merge_evolves_the_target(config: MariadbConfig) -> None:
    name = unique("me")
    write(config, name, pa.table({"id": [1, 2], "v": ["a", "b"]}), "merge", keys=["id"])
    new = pa.table({"id": [2, 3], "v": ["b2", "c"], "added": [20, 30]})
    write(config, name, new, "merge", keys=["id"])
    assert rows(config, name) == [(1, "a", None), (2, "b2", 20), (3, "c", 30)]


# -- load ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_load_id_is_exactly_once(config: MariadbConfig, mode: str) -> None:
    name = unique("once")
    table = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    load_id = f"run-{uuid.uuid4().hex}"
    keys = ["id"] if mode == "merge" else None
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=5)
    first = write(config, name, table, mode, keys=keys, load_id=load_id)
    assert first.rows == 3 and first.details["load_id"] == load_id
    assert "already_loaded" not in first.details
    dst = MariadbFactory().destination(config)
    again = dst.write(name, untouchable(table.schema), mode=mode, keys=keys, load_id=load_id)  # type: ignore[arg-type]
    assert again.rows == 3
    assert again.details["already_loaded"] is True and again.details["load_id"] == load_id
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(3,)]
    [(target, recorded_mode, count, committed)] = ledger(config, load_id)
    assert (target, recorded_mode, count) == (name, mode, 3)
    assert before <= committed <= before + dt.timedelta(minutes=5)
    other = write(config, name, table, mode, keys=keys, load_id=load_id + "-2")
    assert other.rows == 3


def test_racing_writers_create_the_ledger_and_load_once(mariadb_url: str) -> None:
    database = f"hw_race_{uuid.uuid4().hex[:8]}"
    sql(MariadbConfig(url=mariadb_url), f"CREATE DATABASE `{database}`")
    try:
        config = MariadbConfig(url=mariadb_url.rsplit("/", 1)[0] + "/" + database)
        name = unique("race")
        sql(config, f"CREATE TABLE `{name}` (id int, v text)")
        table = pa.table({"id": list(range(100)), "v": ["x"] * 100})
        results: list[WriteResult] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def run(load_id: str) -> None:
            try:
                barrier.wait(10)
                results.append(write(config, name, table, "append", load_id=load_id))
            except BaseException as exc:
                errors.append(exc)

        ids = ["same", "same", "other-1", "other-2"]
        threads = [threading.Thread(target=run, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert sorted(r.details.get("already_loaded", False) for r in results) == [
            False,
            False,
            False,
            True,
        ]
        assert all(r.rows == 100 for r in results)
        assert sql(config, f"SELECT count(*) FROM `{name}`") == [(300,)]
        assert sql(config, f"SELECT load_id FROM {LEDGER} ORDER BY load_id") == [
            ("other-1",),
            ("other-2",),
            ("same",),
        ]
    finally:
        sql(MariadbConfig(url=mariadb_url), f"DROP DATABASE IF EXISTS `{database}`")


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_one_load_id_written_twice_at_once_loads_once(config: MariadbConfig, mode: str) -> None:
    name = unique("twice")
    write(config, name, pa.table({"id": [-1], "v": ["old"]}), "merge", keys=["id"])
    table = pa.table({"id": list(range(20_000)), "v": ["new"] * 20_000})
    keys = ["id"] if mode == "merge" else None
    results: list[WriteResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(10)
            results.append(write(config, name, table, mode, keys=keys, load_id=f"{name}-L"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(bool(r.details.get("already_loaded")) for r in results) == [False, True]
    assert all(r.rows == 20_000 for r in results)
    expected = 20_000 if mode == "overwrite" else 20_001
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(expected,)]
    assert len(ledger(config, f"{name}-L")) == 1


def test_a_failed_write_records_no_load_id(config: MariadbConfig) -> None:
    name = unique("fail")
    table = pa.table({"id": list(range(10)), "v": ["a"] * 10})
    dst = MariadbFactory().destination(config)
    with pytest.raises(Boom):
        dst.write(name, _failing(table, 2), mode="append", load_id="failing-load")
    assert ledger(config, "failing-load") == []
    assert write(config, name, table, "append", load_id="failing-load").rows == 10


# -- schema contracts --------------------------------------------------------------------------


def test_evolve_adds_columns_and_refuses_incompatible_types(config: MariadbConfig) -> None:
    name = unique("ev")
    write(config, name, pa.table({"id": [1], "flag": [True]}))
    write(
        config,
        name,
        pa.table({"id": [2], "flag": [False], "note": ["n"], "day": [dt.date(2024, 1, 2)]}),
    )
    columns = {r[0]: r[1] for r in sql(config, f"SHOW COLUMNS FROM `{name}`")}
    assert columns["note"] == "longtext" and columns["day"] == "date"
    assert rows(config, name) == [(1, 1, None, None), (2, 0, "n", dt.date(2024, 1, 2))]
    with pytest.raises(SchemaContractError) as info:
        write(config, name, pa.table({"id": ["three"]}), load_id="bad-evolve")
    assert info.value.column == "id" and "Nothing was written" in str(info.value)
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(2,)]
    assert ledger(config, "bad-evolve") == []


def test_freeze_refuses_any_change_before_writing(config: MariadbConfig) -> None:
    name = unique("fr")
    write(config, name, pa.table({"id": [1], "v": ["a"]}), "overwrite")
    for mode in ("append", "merge", "overwrite"):
        for bad in (
            pa.table({"id": [2], "v": ["b"], "new": [1]}),
            pa.table({"id": [2], "v": [1.5]}),
        ):
            with pytest.raises(SchemaContractError):
                write(config, name, bad, mode, keys=["id"] if mode == "merge" else None,
                      schema_contract="freeze", load_id=f"frozen-{mode}")  # fmt: skip
            assert ledger(config, f"frozen-{mode}") == []
    assert rows(config, name) == [(1, "a")]
    assert [r[0] for r in sql(config, f"SHOW COLUMNS FROM `{name}`")] == ["id", "v"]
    # a narrower integer that fits is fine under freeze
    write(
        config,
        name,
        pa.table({"id": pa.array([2], pa.int8()), "v": ["b"]}),
        schema_contract="freeze",
    )
    assert rows(config, name) == [(1, "a"), (2, "b")]


def test_discard_row_sends_what_does_not_fit_to_rejects(config: MariadbConfig) -> None:
    name = unique("dr")
    sql(
        config,
        f"CREATE TABLE `{name}` (id int, v varchar(3), f double, ts timestamp(6) NULL, "
        "amount decimal(6,2))",
    )
    utc = dt.UTC
    table = pa.table(
        {
            "id": pa.array([1, 2**40, 3, 4, 5, 6, 7], pa.int64()),
            "v": ["ok", "ok", "toolong", "ok", "ok", "ok", "ok"],
            "f": [1.0, 2.0, 3.0, float("nan"), 5.0, 6.0, float("inf")],
            "ts": pa.array(
                [dt.datetime(2020, 1, 1, tzinfo=utc)] * 4
                + [dt.datetime(2040, 1, 1, tzinfo=utc), dt.datetime(2020, 1, 1, tzinfo=utc), None],
                pa.timestamp("us", "UTC"),
            ),
            "amount": pa.array([1, 2, 3, 4, 5, 10**6, 7], pa.int64()),
            "extra": [None, None, None, None, None, None, "x"],
        }
    )
    sink = ListRejectSink()
    result = write(config, name, table, schema_contract="discard_row", rejects=sink, load_id="dr-1")
    assert result.rows == 1 and result.details["rows_rejected"] == 6
    assert sql(config, f"SELECT id, v, f, amount FROM `{name}`") == [
        (1, "ok", 1.0, Decimal("1.00"))
    ]
    assert len(sink.items) == 6
    by_id = {json.loads(r.raw_record)["id"]: r for r in sink.items}
    assert set(by_id) == {2**40, 3, 4, 5, 6, 7}
    assert "does not fit" in by_id[2**40].error and "discard_row" in by_id[2**40].error
    assert "3 characters" in by_id[3].error
    assert "NaN" in by_id[4].error and by_id[4].column == "f"
    assert "2038" in by_id[5].error
    assert json.loads(by_id[5].raw_record)["v"] == "ok"
    assert "does not fit" in by_id[6].error and "amount" in by_id[6].error
    assert "`extra`" in by_id[7].error  # a value in a column the table does not have
    assert ledger(config, "dr-1")[0][2] == 1
    # the same values fail the whole write under evolve, naming the column
    for bad, column in [
        (pa.table({"id": [9], "v": ["toolong"]}), "v"),
        (pa.table({"id": [9], "f": [float("nan")]}), "f"),
    ]:
        with pytest.raises(SchemaIncompatibleError) as info:
            write(config, name, bad)
        assert info.value.column == column
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(1,)]


def test_overwrite_contracts(config: MariadbConfig) -> None:
    name = unique("ow")
    sql(config, f"CREATE TABLE `{name}` (id int PRIMARY KEY, v varchar(5), n int)")
    sql(config, f"INSERT INTO `{name}` VALUES (1, 'a', 1)")
    # evolve with another schema replaces the table with the input's
    write(config, name, pa.table({"id": [5], "w": [2.5]}), "overwrite")
    assert [r[0] for r in sql(config, f"SHOW COLUMNS FROM `{name}`")] == ["id", "w"]
    # freeze: a new column fails, the table stays
    with pytest.raises(SchemaContractError):
        write(config, name, pa.table({"id": [6], "w": [1.0], "z": [1]}), "overwrite",
              schema_contract="freeze")  # fmt: skip
    assert rows(config, name) == [(5, 2.5)]
    # discard_row keeps the table's columns and types
    sink = ListRejectSink()
    result = write(
        config,
        name,
        pa.table({"id": [7, 8], "w": [1.0, 2.0], "z": [None, 1]}),
        "overwrite",
        schema_contract="discard_row",
        rejects=sink,
    )
    assert result.rows == 1 and result.details["rows_rejected"] == 1
    assert rows(config, name) == [(7, 1.0)]
    assert [r[0] for r in sql(config, f"SHOW COLUMNS FROM `{name}`")] == ["id", "w"]
    assert "`z`" in sink.items[0].error


def test_types_that_arrow_refuses_but_fit(config: MariadbConfig) -> None:
    name = unique("fit")
    sql(config, f"CREATE TABLE `{name}` (id int, amount decimal(12,2), ok tinyint(1), f float)")
    table = pa.table({"id": [1], "amount": [42], "ok": [True], "f": [2**40]})
    write(config, name, table, schema_contract="freeze")
    got = sql(config, f"SELECT id, amount, ok, CAST(f AS DOUBLE) FROM `{name}`")
    assert got == [(1, Decimal("42.00"), 1, float(2**40))]


# -- crash points ------------------------------------------------------------------------------

_CHILD = """
import os, sys
import pyarrow as pa
from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory
cfg = MariadbConfig(url=os.environ["HW_URL"])
table = pa.table({"id": list(range(1000)), "v": ["new"] * 1000})
mode = sys.argv[1]
MariadbFactory().destination(cfg).write(
    os.environ["HW_TABLE"], table.to_reader(), mode=mode, load_id=os.environ["HW_LOAD"],
    keys=["id"] if mode == "merge" else None,
)
print("committed")
"""


def _crash(config: MariadbConfig, table: str, mode: str, point: str, load_id: str) -> None:
    env = dict(os.environ, HW_URL=config.url, HW_TABLE=table, HW_LOAD=load_id)
    env["HEADWATER_CRASH_AT"] = point
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr
    assert "committed" not in done.stdout


@pytest.mark.parametrize(("mode", "point"), CRASH_POINTS)
def test_kill_9_leaves_the_target_unchanged_and_a_rerun_loads_once(
    config: MariadbConfig, mode: str, point: str
) -> None:
    name = unique("crash")
    sql(config, f"CREATE TABLE `{name}` (id int PRIMARY KEY, v varchar(5))")
    sql(config, f"INSERT INTO `{name}` VALUES (-1, 'old')")
    load_id = f"crash-{uuid.uuid4().hex}"
    _crash(config, name, mode, point, load_id)
    assert rows(config, name) == [(-1, "old")]
    assert ledger(config, load_id) == []
    table = pa.table({"id": list(range(1000)), "v": ["new"] * 1000})
    keys = ["id"] if mode == "merge" else None
    assert write(config, name, table, mode, keys=keys, load_id=load_id).rows == 1000
    again = write(config, name, table, mode, keys=keys, load_id=load_id)
    assert again.details["already_loaded"] is True
    expected = 1000 if mode == "overwrite" else 1001
    assert sql(config, f"SELECT count(*) FROM `{name}`") == [(expected,)]
    leftovers = sql(
        config,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND (TABLE_NAME LIKE 'hw\\_stage\\_%%' OR TABLE_NAME LIKE 'hw\\_old\\_%%')",
    )
    assert leftovers == []
