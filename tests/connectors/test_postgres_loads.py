"""postgres destination: exactly-once load ids, schema contracts and crash safety (real server)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import ListRejectSink, WriteResult
from headwater.connectors.contract import SchemaContractError
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.errors import ConfigError, ConnectorError
from tests.connectors.server_cases import CRASH_POINTS, failing, untouchable


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    return PostgresConfig(url=postgres_url)


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def unique(prefix: str = "l") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write(
    config: PostgresConfig, target: str, data: pa.Table | pa.RecordBatchReader, **kw: Any
) -> WriteResult:
    reader = data if isinstance(data, pa.RecordBatchReader) else data.to_reader(max_chunksize=2)
    return PostgresFactory().destination(config).write(target, reader, **kw)


def ledger(url: str, load_id: str, schema: str = "public") -> list[tuple[Any, ...]]:
    exists = sql(url, "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"._headwater_loads',))
    if not exists[0][0]:
        return []
    return sql(
        url,
        f'SELECT target_table, mode, rows FROM "{schema}"._headwater_loads WHERE load_id = %s',
        (load_id,),
    )


class Broken(ConnectorError):
    pass


def _failing(table: pa.Table, after: int) -> pa.RecordBatchReader:
    return failing(table, after, Broken("the source broke"))


DATA = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": ["a", "b", "c"]})


# -- load ids ----------------------------------------------------------------------------------


def test_capabilities() -> None:
    caps = PostgresFactory.capabilities
    assert caps.idempotent and caps.merge and caps.incremental and caps.partitioned


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_a_load_id_is_committed_once(config: PostgresConfig, postgres_url: str, mode: str) -> None:
    name, load_id = unique(), f"run-{uuid.uuid4()}"
    keys = ["id"] if mode == "merge" else None
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first = write(config, name, DATA, mode=mode, keys=keys, load_id=load_id)
    assert first.rows == 3
    assert first.details["load_id"] == load_id and first.details["rows_rejected"] == 0
    assert "already_loaded" not in first.details
    assert ledger(postgres_url, load_id) == [(f"public.{name}", mode, 3)]
    (committed,) = sql(
        postgres_url, "SELECT committed_at FROM _headwater_loads WHERE load_id = %s", (load_id,)
    )[0]
    assert before - dt.timedelta(seconds=5) <= committed <= before + dt.timedelta(seconds=60)
    again = write(config, name, untouchable(DATA.schema), mode=mode, keys=keys, load_id=load_id)
    assert again.rows == 3
    assert again.details == {"already_loaded": True, "load_id": load_id, "mode": mode}
    assert name in (again.location or "")
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(3,)]
    # another load id is another load
    write(config, name, DATA, mode=mode, keys=keys, load_id=load_id + "-2")
    expected = 6 if mode == "append" else 3
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(expected,)]


def test_a_failed_load_leaves_no_ledger_row(config: PostgresConfig, postgres_url: str) -> None:
    name, load_id = unique(), unique("run")
    write(config, name, DATA, mode="append")
    with pytest.raises(Broken):
        write(config, name, _failing(DATA, 1), mode="append", load_id=load_id)
    assert ledger(postgres_url, load_id) == []
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(3,)]
    assert write(config, name, DATA, mode="append", load_id=load_id).rows == 3
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(6,)]


def test_the_ledger_lives_in_the_target_schema(config: PostgresConfig, postgres_url: str) -> None:
    schema, name, load_id = unique("s"), unique(), unique("run")
    sql(postgres_url, f'CREATE SCHEMA "{schema}"')
    write(config, f"{schema}.{name}", DATA, mode="append", load_id=load_id)
    assert ledger(postgres_url, load_id, schema) == [(f"{schema}.{name}", "append", 3)]
    columns = sql(
        postgres_url,
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = '_headwater_loads' ORDER BY ordinal_position",
        (schema,),
    )
    assert columns == [
        ("load_id", "character varying", 128),
        ("target_table", "character varying", 1024),
        ("mode", "character varying", 16),
        ("rows", "bigint", None),
        ("committed_at", "timestamp without time zone", None),
    ]


def test_concurrent_writers_of_one_load_id_load_it_once(
    config: PostgresConfig, postgres_url: str
) -> None:
    name, load_id = unique(), unique("run")
    write(config, name, DATA.slice(0, 0), mode="append")
    results: list[Any] = []
    start = threading.Barrier(3)

    def slow() -> pa.RecordBatchReader:
        def gen() -> Iterator[pa.RecordBatch]:
            for batch in DATA.to_batches(max_chunksize=1):
                time.sleep(0.2)
                yield batch

        return pa.RecordBatchReader.from_batches(DATA.schema, gen())

    def run() -> None:
        start.wait()
        try:
            results.append(write(config, name, slow(), mode="append", load_id=load_id))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(isinstance(r, WriteResult) for r in results), results
    assert sorted(bool(r.details.get("already_loaded")) for r in results) == [False, True, True]
    assert all(r.rows == 3 for r in results)
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(3,)]


def test_racing_to_create_the_ledger_never_fails(config: PostgresConfig, postgres_url: str) -> None:
    schema = unique("race")
    sql(postgres_url, f'CREATE SCHEMA "{schema}"')
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run(i: int) -> None:
        start.wait()
        try:
            write(config, f"{schema}.t{i}", DATA, mode="append", load_id=f"load-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sql(postgres_url, f'SELECT count(*) FROM "{schema}"._headwater_loads') == [(4,)]


def test_bad_load_ids_are_refused(config: PostgresConfig) -> None:
    for bad in ("", "x" * 129):
        with pytest.raises(ConfigError, match="load_id"):
            write(config, unique(), DATA, mode="append", load_id=bad)


# -- schema contracts ----------------------------------------------------------------------


@pytest.fixture
def people(config: PostgresConfig, postgres_url: str) -> str:
    name = unique("people")
    sql(postgres_url, f'CREATE TABLE "{name}" (id int4 PRIMARY KEY, name text, score numeric(5,2))')
    sql(postgres_url, f"INSERT INTO \"{name}\" VALUES (1, 'ann', 1.50)")
    return name


def columns(url: str, table: str) -> list[tuple[str, str]]:
    return sql(
        url,
        "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
        "JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(c.table_name)) "
        "AND a.attname = c.column_name WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    )


def test_evolve_adds_columns_with_mapped_types(
    config: PostgresConfig, postgres_url: str, people: str
) -> None:
    data = pa.table(
        {
            "id": pa.array([2], pa.int64()),
            "seen": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")),
            "price": pa.array([Decimal("1.25")], pa.decimal128(10, 2)),
            "tags": pa.array([["a", "b"]], pa.list_(pa.string())),
            "Ünï 🦆": [True],
        }
    )
    result = write(config, people, data, mode="append", load_id=unique("run"))
    assert result.details["columns_added"] == ["seen", "price", "tags", "Ünï 🦆"]
    assert columns(postgres_url, people) == [
        ("id", "integer"),
        ("name", "text"),
        ("score", "numeric(5,2)"),
        ("seen", "timestamp with time zone"),
        ("price", "numeric(10,2)"),
        ("tags", "text[]"),
        ("Ünï 🦆", "boolean"),
    ]
    got = sql(postgres_url, f'SELECT id, name, price, tags, "Ünï 🦆" FROM "{people}" ORDER BY id')
    assert got == [(1, "ann", None, None, None), (2, None, Decimal("1.25"), ["a", "b"], True)]


def test_evolve_ddl_rolls_back_with_a_failed_load(
    config: PostgresConfig, postgres_url: str, people: str
) -> None:
    data = pa.table({"id": pa.array([2, 3, 4, 5], pa.int32()), "extra": ["x", "y", "z", "w"]})
    with pytest.raises(Broken):
        write(config, people, _failing(data, 1), mode="append")
    assert [c for c, _ in columns(postgres_url, people)] == ["id", "name", "score"]
    assert sql(postgres_url, f'SELECT count(*) FROM "{people}"') == [(1,)]


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_an_incompatible_type_fails_before_writing(
    config: PostgresConfig, postgres_url: str, people: str, contract: str
) -> None:
    load_id = unique("run")
    data = pa.table({"id": pa.array(["two"], pa.string()), "name": ["bob"]})
    with pytest.raises(SchemaContractError) as info:
        write(config, people, data, mode="append", schema_contract=contract, load_id=load_id)
    err = info.value
    assert err.column == "id" and f"public.{people}" in err.message
    assert err.details["old_type"] == "int32" and err.details["new_type"] == "string"
    assert sql(postgres_url, f'SELECT count(*) FROM "{people}"') == [(1,)]
    assert ledger(postgres_url, load_id) == []


@pytest.mark.parametrize("mode", ["append", "merge", "overwrite"])
def test_freeze_refuses_a_new_column(
    config: PostgresConfig, postgres_url: str, people: str, mode: str
) -> None:
    load_id = unique("run")
    data = pa.table({"id": pa.array([9], pa.int64()), "name": ["x"], "new": [1]})
    with pytest.raises(SchemaContractError, match="`new`"):
        write(
            config,
            people,
            data,
            mode=mode,
            keys=["id"] if mode == "merge" else None,
            schema_contract="freeze",
            load_id=load_id,
        )
    assert [c for c, _ in columns(postgres_url, people)] == ["id", "name", "score"]
    assert sql(postgres_url, f'SELECT * FROM "{people}"') == [(1, "ann", Decimal("1.50"))]
    assert ledger(postgres_url, load_id) == []
    # the same data without the new column (and narrower types) goes in
    ok = write(
        config,
        people,
        data.drop_columns(["new"]),
        mode=mode,
        keys=["id"] if mode == "merge" else None,
        schema_contract="freeze",
    )
    assert ok.rows == 1
    assert [c for c, _ in columns(postgres_url, people)] == ["id", "name", "score"]


def test_discard_row_sends_rows_that_do_not_fit_to_rejects(
    config: PostgresConfig, postgres_url: str, people: str
) -> None:
    data = pa.table(
        {
            "id": pa.array([2, 3, 2**40, 5, 6], pa.int64()),
            "name": ["bob", "cat", "big", "dan", "émile 🦆"],
            "score": pa.array(["1.5", "1000", "2", "abc", "-2.25"], pa.string()),
            "extra": [None, None, None, None, "kept?"],
        }
    )
    sink = ListRejectSink()
    result = write(
        config,
        people,
        data,
        mode="append",
        schema_contract="discard_row",
        rejects=sink,
        load_id=unique("run"),
    )
    assert result.rows == 1 and result.details["rows_rejected"] == 4
    assert sql(postgres_url, f'SELECT * FROM "{people}" ORDER BY id') == [
        (1, "ann", Decimal("1.50")),
        (2, "bob", Decimal("1.50")),
    ]
    assert [c for c, _ in columns(postgres_url, people)] == ["id", "name", "score"]
    by_id = {json.loads(r.raw_record)["id"]: r for r in sink.items}
    assert sorted(by_id) == [3, 5, 6, 2**40]
    assert json.loads(by_id[6].raw_record) == {
        "id": 6,
        "name": "émile 🦆",
        "score": "-2.25",
        "extra": "kept?",
    }
    assert "`extra`" in by_id[6].error and "discard_row" in by_id[6].error
    assert "`id`" in by_id[2**40].error
    assert "`score`" in by_id[3].error and "`score`" in by_id[5].error


def test_discard_row_merge_rejects_null_keys(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    write(config, name, DATA, mode="merge", keys=["id"])
    data = pa.table({"id": pa.array([None, 2, 4], pa.int64()), "v": ["n", "B", "d"]})
    sink = ListRejectSink()
    result = write(
        config,
        name,
        data,
        mode="merge",
        keys=["id"],
        schema_contract="discard_row",
        rejects=sink,
    )
    assert result.rows == 2 and result.details["rows_rejected"] == 1
    assert [json.loads(r.raw_record) for r in sink.items] == [{"id": None, "v": "n"}]
    assert "null" in sink.items[0].error
    assert sql(postgres_url, f"SELECT * FROM {name} ORDER BY id") == [
        (1, "a"),
        (2, "B"),
        (3, "c"),
        (4, "d"),
    ]


def test_overwrite_contracts(config: PostgresConfig, postgres_url: str, people: str) -> None:
    data = pa.table({"id": pa.array([7, 8], pa.int64()), "name": ["g", "h"], "extra": [None, 1]})
    sink = ListRejectSink()
    # discard_row keeps the table's columns and types
    result = write(
        config, people, data, mode="overwrite", schema_contract="discard_row", rejects=sink
    )
    assert result.rows == 1 and result.details["rows_rejected"] == 1
    assert columns(postgres_url, people) == [
        ("id", "integer"),
        ("name", "text"),
        ("score", "numeric(5,2)"),
    ]
    assert sql(postgres_url, f'SELECT * FROM "{people}"') == [(7, "g", None)]
    keys = sql(postgres_url, f"SELECT indexdef FROM pg_indexes WHERE tablename = '{people}'")
    assert len(keys) == 1 and "(id)" in keys[0][0]
    # evolve replaces the table with the input's schema when the types no longer fit
    text_ids = pa.table({"id": ["a-1"], "name": ["z"], "score": pa.array([1.5], pa.float64())})
    write(config, people, text_ids, mode="overwrite")
    assert columns(postgres_url, people) == [
        ("id", "text"),
        ("name", "text"),
        ("score", "double precision"),
    ]


def test_unconstrained_numeric_takes_decimals_and_integers(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique("num")
    sql(postgres_url, f"CREATE TABLE {name} (n numeric)")
    write(
        config,
        name,
        pa.table({"n": pa.array([Decimal("1.123456789012345678901")], pa.decimal128(38, 21))}),
        mode="append",
    )
    write(config, name, pa.table({"n": pa.array([2**62], pa.int64())}), mode="append")
    assert sql(postgres_url, f"SELECT n FROM {name} ORDER BY n") == [
        (Decimal("1.123456789012345678901"),),
        (Decimal(2**62),),
    ]


# -- crash points --------------------------------------------------------------------------

CRASHING_WRITE = textwrap.dedent(
    """\
    import sys
    import pyarrow as pa
    from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
    url, target, mode, load_id = sys.argv[1:5]
    data = pa.table({"id": pa.array(range(100, 1100), pa.int64()), "v": ["new"] * 1000})
    result = PostgresFactory().destination(PostgresConfig(url=url)).write(
        target, data.to_reader(max_chunksize=100), mode=mode, load_id=load_id,
        keys=["id"] if mode == "merge" else None,
    )
    print(result.rows, dict(result.details).get("already_loaded", False))
    """
)


def run_write(url: str, target: str, mode: str, load_id: str, crash: str | None) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_CRASH_AT"}
    if crash:
        env["HEADWATER_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, "-c", CRASHING_WRITE, url, target, mode, load_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("mode", "point"), CRASH_POINTS)
def test_a_kill_at_the_crash_point_leaves_the_target_unchanged_then_loads_once(
    postgres_url: str, mode: str, point: str
) -> None:
    name, load_id = unique("crash"), unique("run")
    sql(postgres_url, f"CREATE TABLE {name} (id bigint PRIMARY KEY, v text)")
    sql(postgres_url, f"INSERT INTO {name} VALUES (1, 'old'), (2000, 'old')")
    killed = run_write(postgres_url, name, mode, load_id, point)
    assert killed.returncode == -9, killed.stderr
    before = [(1, "old"), (2000, "old")]
    assert sql(postgres_url, f"SELECT id, v FROM {name} ORDER BY id") == before
    assert ledger(postgres_url, load_id) == []
    leftovers = sql(
        postgres_url,
        "SELECT relname FROM pg_class WHERE relname LIKE 'hw_stage_%%' AND relkind = 'r'",
    )
    assert leftovers == []
    done = run_write(postgres_url, name, mode, load_id, None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000", "False"]
    again = run_write(postgres_url, name, mode, load_id, point)  # never reaches the point
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["1000", "True"]
    expected = 1000 if mode == "overwrite" else 1002
    assert sql(postgres_url, f"SELECT count(*), count(*) FILTER (WHERE v = 'new') FROM {name}") == [
        (expected, 1000)
    ]


def test_a_ledger_created_meanwhile_by_another_writer(
    config: PostgresConfig, postgres_url: str
) -> None:
    """The writer's CREATE TABLE waits on another transaction creating the same ledger, then
    fails on the catalog's unique index when that one commits: the write goes on."""
    import psycopg

    schema = unique("race")
    sql(postgres_url, f'CREATE SCHEMA "{schema}"')
    results: list[Any] = []
    with psycopg.connect(postgres_url) as holder:
        holder.execute(
            f'CREATE TABLE "{schema}"._headwater_loads (load_id varchar(128) PRIMARY KEY, '
            "target_table varchar(1024) NOT NULL, mode varchar(16) NOT NULL, "
            "rows bigint NOT NULL, committed_at timestamp NOT NULL)"
        )

        def run() -> None:
            try:
                results.append(write(config, f"{schema}.t", DATA, mode="append", load_id="x"))
            except BaseException as exc:
                results.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and results == []  # waiting on the uncommitted ledger
        holder.commit()
    thread.join(20)
    assert len(results) == 1 and isinstance(results[0], WriteResult), results
    assert results[0].rows == 3
    assert ledger(postgres_url, "x", schema) == [(f"{schema}.t", "append", 3)]
