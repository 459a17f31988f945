"""The postgres connector against a real PostgreSQL (fixture ``postgres_url``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import WriteResult
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory, redact_url
from headwater.errors import (
    ConfigError,
    ConnectorError,
    SchemaIncompatibleError,
    SourceNotFoundError,
)
from tests.connectors.server_cases import (
    assert_failed_writes_keep_the_old_table,
    assert_overwrite_is_atomic,
    assert_refused_login,
    assert_unreachable_is_transient,
    failing,
    unique,
)


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    return PostgresConfig(url=postgres_url)


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def read(config: PostgresConfig, stream: str, **kwargs: Any) -> pa.Table:
    src = PostgresFactory().source(config)
    batches = list(src.read(stream, **kwargs))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


def write(config: PostgresConfig, target: str, table: pa.Table, mode: str) -> WriteResult:
    dst = PostgresFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
    return dst.write(target, reader, mode=mode)  # type: ignore[arg-type]


# -- config ----------------------------------------------------------------------------------


def test_config_never_shows_the_password() -> None:
    cfg = PostgresConfig(url="postgresql+psycopg://me:hunter2x@db.example:6543/sales")
    assert "hunter2x" not in repr(cfg) and "hunter2x" not in str(cfg)
    assert cfg.where == "db.example:6543/sales"
    assert redact_url(cfg.url) == "postgresql+psycopg://****@db.example:6543/sales"
    assert cfg.libpq_url.startswith("postgresql://me:hunter2x@db.example:6543/sales?")
    assert "connect_timeout=5" in cfg.libpq_url
    assert PostgresConfig(url=cfg.url, schema="raw").schema_name == "raw"


def test_config_rejects_other_schemes_without_echoing_the_password() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        PostgresConfig(url="mysql://me:hunter2x@db/x")
    assert "hunter2x" not in info.value.errors()[0]["msg"]


# -- check -----------------------------------------------------------------------------------


def test_check_passes(config: PostgresConfig) -> None:
    PostgresFactory().source(config).check()
    PostgresFactory().destination(config).check()


def test_refused_login_is_terminal_and_hides_the_password(postgres_url: str) -> None:
    host_db = postgres_url.split("@", 1)[1]
    cfg = PostgresConfig(url=f"postgresql://no_such_role:s3cr3t-pw@{host_db}")
    err = assert_refused_login(PostgresFactory().source(cfg).check, "s3cr3t-pw")
    assert host_db.split("/")[0] in err.message and host_db.split("/")[1] in err.message


def test_a_refused_login_fails_the_step_once_without_the_password(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.testing import workspace_for_test

    monkeypatch.setenv("HW_PG_TEST_PASSWORD", "pw-from-env-9x")
    host_db = postgres_url.split("@", 1)[1]
    url = "postgresql://no_such_role:${HW_PG_TEST_PASSWORD}@" + host_db
    pipeline = textwrap.dedent(
        """\
        name: badpw
        steps:
          - {name: e, type: extract, connection: pg, stream: t, to: raw.t, retries: 2,
             retry_delay: 0.01}
        """
    )
    with workspace_for_test(connections={"pg": {"type": "postgres", "url": url}}) as ws:
        (ws.root / "pipelines" / "badpw.yaml").write_text(pipeline)
        result = ws.run("badpw")
        assert not result.ok
        step = ws.get_run(result.run_id).steps[0]
        assert step.attempt == 1  # terminal: not retried
        assert "pw-from-env-9x" not in (result.error or "") + (step.error or "")
        assert host_db in (step.error or "")


def test_unreachable_host_is_transient(postgres_url: str) -> None:
    cfg = PostgresConfig(url="postgresql://me:s3cr3t-pw@127.0.0.1:1/db", connect_timeout=2)
    assert_unreachable_is_transient(
        PostgresFactory().source(cfg).check, "s3cr3t-pw", "127.0.0.1:1/db"
    )


# -- discover and types ----------------------------------------------------------------------


def test_discover_maps_types_and_keys(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("types")
    enum = unique("mood")
    sql(postgres_url, f"CREATE TYPE {enum} AS ENUM ('sad', 'ok')")
    sql(
        postgres_url,
        f"""CREATE TABLE {name} (
            a int2, b int4, c int8 PRIMARY KEY, d numeric(38, 10), e numeric, f float4,
            g float8, h bool, i text, j varchar(5), k char(3), l date, m timestamp,
            n timestamptz, o json, p jsonb, q uuid, r bytea, s int4[], t text[], u {enum},
            v numeric(50, 5))""",
    )
    streams = {s.name: s for s in PostgresFactory().source(config).discover()}
    stream = streams[f"public.{name}"]
    assert stream.primary_key == ("c",)
    assert stream.schema is not None
    types = {f.name: f.type for f in stream.schema}
    assert types == {
        "a": pa.int16(),
        "b": pa.int32(),
        "c": pa.int64(),
        "d": pa.decimal128(38, 10),
        "e": pa.string(),
        "f": pa.float32(),
        "g": pa.float64(),
        "h": pa.bool_(),
        "i": pa.string(),
        "j": pa.string(),
        "k": pa.string(),
        "l": pa.date32(),
        "m": pa.timestamp("us"),
        "n": pa.timestamp("us", tz="UTC"),
        "o": pa.string(),
        "p": pa.string(),
        "q": pa.string(),
        "r": pa.binary(),
        "s": pa.list_(pa.int32()),
        "t": pa.list_(pa.string()),
        "u": pa.string(),
        "v": pa.decimal256(50, 5),
    }
    assert not stream.schema.field("c").nullable
    # reading gives the same schema as discover says
    sql(
        postgres_url,
        f"""INSERT INTO {name} VALUES (1, 2, 3, 12345678901234567890.0123456789, 1.5, 1.5, 2.5,
            true, 'x', 'y', 'z', '2020-01-01', '2020-01-01 01:02:03.456789',
            '2020-01-01 01:02:03+02', '{{"a": 1}}', '{{"b": 2}}',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0102', '{{1,2}}', '{{a,NULL}}', 'ok', 7),
            (NULL, NULL, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
    )
    table = read(config, name)
    assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in stream.schema]
    first, second = sorted(table.to_pylist(), key=lambda r: r["c"])
    assert first["d"] == Decimal("12345678901234567890.0123456789")
    assert first["e"] == "1.5"
    assert first["k"] == "z  "
    assert first["n"] == dt.datetime(2019, 12, 31, 23, 2, 3, tzinfo=dt.UTC)
    assert first["o"] == '{"a": 1}' and first["p"] == '{"b": 2}'
    assert first["q"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert first["r"] == b"\x01\x02" and first["s"] == [1, 2] and first["t"] == ["a", None]
    assert first["u"] == "ok" and first["v"] == Decimal("7")
    assert all(v is None for k, v in second.items() if k != "c")


ROUND_TRIP = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "i16": pa.array([1, None, -32768, 32767], pa.int16()),
        "i32": pa.array([1, None, -(2**31), 2**31 - 1], pa.int32()),
        "f32": pa.array([1.5, None, -0.0, 3.25], pa.float32()),
        "f64": pa.array([1.5, None, 1e300, -2.5], pa.float64()),
        "flag": pa.array([True, None, False, True]),
        "text": pa.array(["plain", None, "üñíçødé ✓", "emoji 🦆🚀 \"quoted\" 'single'"]),
        "dec": pa.array(
            [Decimal("1.5"), None, Decimal("9" * 28 + "." + "9" * 10), Decimal("-0.0000000001")],
            pa.decimal128(38, 10),
        ),
        "day": pa.array([dt.date(2020, 1, 1), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
        "ts": pa.array(
            [dt.datetime(2020, 1, 1, 1, 2, 3, 456789), None, dt.datetime(1970, 1, 1), None],
            pa.timestamp("us"),
        ),
        "tstz": pa.array(
            [
                dt.datetime(2020, 6, 1, 12, 0, tzinfo=dt.UTC),
                None,
                dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
                dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "blob": pa.array([b"\x00\x01", None, b"", b"\xff" * 10], pa.binary()),
        "ints": pa.array([[1, 2], None, [], [None, 3]], pa.list_(pa.int64())),
        "words": pa.array([["a", "ü"], None, [], [None]], pa.list_(pa.string())),
    }
)


def test_round_trip_of_every_mapped_type(config: PostgresConfig) -> None:
    name = unique("rt")
    result = write(config, name, ROUND_TRIP, "append")
    assert result.rows == 4 and result.bytes > 0 and name in (result.location or "")
    back = read(config, name).sort_by("id")
    assert back.schema == ROUND_TRIP.schema
    assert back.to_pylist() == ROUND_TRIP.to_pylist()


def test_round_trip_coercions(config: PostgresConfig) -> None:
    """Arrow types PostgreSQL lacks are widened (documented in the types module)."""
    name = unique("co")
    table = pa.table(
        {
            "u8": pa.array([1, 255], pa.uint8()),
            "u64": pa.array([0, 2**64 - 1], pa.uint64()),
            "big": pa.array(["x", "y"], pa.large_string()),
            "tz": pa.array([0, 1_000_000], pa.timestamp("ms", tz="Europe/Paris")),
        }
    )
    write(config, name, table, "append")
    back = read(config, name)
    assert back.schema.types == [
        pa.int16(),
        pa.decimal128(20, 0),
        pa.string(),
        pa.timestamp("us", tz="UTC"),
    ]
    assert back.column("u64").to_pylist() == [Decimal(0), Decimal(2**64 - 1)]
    assert back.column("tz").cast(pa.int64()).to_pylist() == [0, 1_000_000_000]


def test_empty_table_round_trip(config: PostgresConfig) -> None:
    name = unique("empty")
    empty = ROUND_TRIP.slice(0, 0)
    assert write(config, name, empty, "overwrite").rows == 0
    src = PostgresFactory().source(config)
    batches = list(src.read(name))
    assert sum(b.num_rows for b in batches) == 0
    stream = next(s for s in src.discover() if s.name == f"public.{name}")
    assert stream.schema == ROUND_TRIP.schema


def test_append_into_existing_jsonb_uuid_enum_table(
    config: PostgresConfig, postgres_url: str
) -> None:
    """Columns whose binary form differs from Arrow's go through a temporary table."""
    name, enum = unique("typed"), unique("state")
    sql(postgres_url, f"CREATE TYPE {enum} AS ENUM ('new', 'done')")
    sql(postgres_url, f"CREATE TABLE {name} (id int4, doc jsonb, ref uuid, st {enum}, n numeric)")
    data = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "doc": ['{"a": [1, 2]}', None],
            "ref": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None],
            "st": ["done", "new"],
            "n": ["123456789012345678901234567890.123456789", None],
        }
    )
    assert write(config, name, data, "append").rows == 2
    rows = sql(postgres_url, f"SELECT id, doc->'a', ref::text, st::text, n FROM {name} ORDER BY 1")
    assert rows[0] == (
        1,
        [1, 2],
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "done",
        Decimal("123456789012345678901234567890.123456789"),
    )
    assert rows[1][1:3] == (None, None)


# -- reads -----------------------------------------------------------------------------------


@pytest.fixture
def numbers(config: PostgresConfig, postgres_url: str) -> str:
    name = unique("nums")
    sql(
        postgres_url,
        f"CREATE TABLE {name} AS SELECT g AS id, g * 1.5 AS amount, 'n' || g AS label "
        "FROM generate_series(1, 1000) AS g",
    )
    return name


def test_pushdown_of_columns_predicate_and_limit(config: PostgresConfig, numbers: str) -> None:
    got = read(config, numbers, columns=["label", "id"], predicate="id > 990 AND label <> 'n995'")
    assert got.column_names == ["label", "id"]
    assert sorted(got.column("id").to_pylist()) == [991, 992, 993, 994, 996, 997, 998, 999, 1000]
    assert read(config, f"public.{numbers}", limit=7).num_rows == 7
    assert read(config, numbers, predicate="label LIKE 'n1%' AND id < 11", limit=5).num_rows == 2


def test_query_option_and_batches(config: PostgresConfig, numbers: str) -> None:
    cfg = config.model_copy(update={"batch_rows": 100})
    src = PostgresFactory().source(cfg)
    query = f"SELECT id, gen_random_uuid() AS u FROM {numbers} WHERE id <= 250"
    batches = list(src.read("q", options={"query": query}, predicate="id % 2 = 0"))
    assert all(b.num_rows <= 100 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 125 and table.schema.field("u").type == pa.string()
    assert len(table.column("u")[0].as_py()) == 36


def test_predicate_cannot_smuggle_a_statement(config: PostgresConfig, numbers: str) -> None:
    with pytest.raises(ConfigError):
        read(config, numbers, predicate=f"true; DROP TABLE {numbers}")
    assert read(config, numbers, limit=1).num_rows == 1


def test_unknown_table_and_column(config: PostgresConfig, numbers: str) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        read(config, numbers + "x")
    assert numbers in (info.value.hint or "")
    with pytest.raises(ConfigError, match="no column 'nope'"):
        read(config, numbers, columns=["nope"])


def test_weird_identifiers_round_trip(config: PostgresConfig, postgres_url: str) -> None:
    name = f'we"ird; name {uuid.uuid4().hex[:6]} ü'
    schema = f'sch"ema {uuid.uuid4().hex[:6]}'
    sql(postgres_url, 'CREATE SCHEMA "' + schema.replace('"', '""') + '"')
    table = pa.table({'co"l; drop': [1, 2], "Mixed Case": ["a", "b"], "🦆": [True, False]})
    write(config, name, table, "overwrite")
    write(config, name, table, "append")
    back = read(config, name, columns=['co"l; drop', "🦆"], predicate="\"Mixed Case\" = 'a'")
    assert back.to_pylist() == [{'co"l; drop': 1, "🦆": True}] * 2
    assert write(config, f"{schema}.{name}", table, "overwrite").rows == 2
    assert read(config, f"{schema}.{name}").num_rows == 2
    streams = {s.name for s in PostgresFactory().source(config).discover()}
    assert {f"public.{name}", f"{schema}.{name}"} <= streams


# -- writes ----------------------------------------------------------------------------------


def test_append_then_overwrite_exact_counts(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("ao")
    data = pa.table({"id": list(range(10)), "v": [str(i) for i in range(10)]})
    assert write(config, name, data, "append").rows == 10
    assert write(config, name, data, "append").rows == 10
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(20,)]
    assert write(config, name, data.slice(0, 4), "overwrite").rows == 4
    assert sql(postgres_url, f"SELECT count(*) FROM {name}") == [(4,)]
    assert write(config, name, data, "append").rows == 10
    assert sql(postgres_url, f"SELECT count(*), count(DISTINCT id) FROM {name}") == [(14, 10)]


def test_overwrite_keeps_types_keys_and_indexes(config: PostgresConfig, postgres_url: str) -> None:
    name = unique("keep")
    sql(postgres_url, f"CREATE TABLE {name} (id int4 PRIMARY KEY, doc jsonb, v varchar(3))")
    sql(postgres_url, f"CREATE INDEX my_v_index ON {name} (v)")
    sql(postgres_url, f"CREATE UNIQUE INDEX my_lower_v ON {name} (lower(v)) WHERE id > 0")
    names = f"SELECT indexname FROM pg_indexes WHERE tablename = '{name}' ORDER BY 1"
    before = sql(postgres_url, names)
    data = pa.table({"v": ["a", "b"], "id": [1, 2], "doc": ['{"x": 1}', "[]"]})
    write(config, name, data, "overwrite")
    write(config, name, data, "overwrite")
    assert sql(postgres_url, names) == before  # the indexes keep their names
    stream = next(
        s for s in PostgresFactory().source(config).discover() if s.name == f"public.{name}"
    )
    assert stream.primary_key == ("id",)
    assert sql(postgres_url, f"SELECT count(*) FROM pg_indexes WHERE tablename = '{name}'") == [
        (3,)
    ]
    assert sql(postgres_url, f"SELECT doc->>'x' FROM {name} WHERE id = 1") == [("1",)]


class Boom(ConnectorError):
    pass


def _failing(table: pa.Table, after: int) -> pa.RecordBatchReader:
    return failing(table, after, Boom("the source broke half-way"), rows_per_batch=100)


def test_failed_writes_leave_the_old_table_intact(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique("fail")
    dst = PostgresFactory().destination(config)
    new = assert_failed_writes_keep_the_old_table(
        lambda t: write(config, name, t, "overwrite"),
        lambda t, mode: dst.write(name, _failing(t, 5), mode=mode),
        lambda: sql(postgres_url, f"SELECT count(*), min(v), max(v) FROM {name}"),
        Boom,
    )
    leftovers = sql(
        postgres_url,
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'hw_stage_%'",
    )
    assert leftovers == []
    # a failed first write creates nothing
    with pytest.raises(Boom):
        dst.write(name + "_new", _failing(new, 3), mode="overwrite")
    assert sql(postgres_url, "SELECT to_regclass(%s) IS NULL", (name + "_new",)) == [(True,)]


def test_overwrite_is_atomic_for_concurrent_readers(
    config: PostgresConfig, postgres_url: str
) -> None:
    import psycopg

    name = unique("atomic")

    @contextlib.contextmanager
    def counter() -> Iterator[Callable[[], int]]:
        with psycopg.connect(postgres_url, autocommit=True) as conn:

            def count() -> int:
                row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
                assert row is not None
                return int(row[0])

            yield count

    assert_overwrite_is_atomic(lambda t: write(config, name, t, "overwrite"), counter)


def test_a_reader_waiting_on_the_swap_reads_the_new_table(
    config: PostgresConfig, postgres_url: str
) -> None:
    """A query queued behind the overwrite's swap resolves the new table, without an error."""
    import psycopg

    name = unique("swap")
    write(config, name, pa.table({"id": list(range(10))}), "overwrite")
    results: list[Any] = []

    def count() -> None:
        try:
            with psycopg.connect(postgres_url) as conn:
                results.append(conn.execute(f"SELECT count(*) FROM {name}").fetchone())
        except Exception as exc:
            results.append(exc)

    with psycopg.connect(postgres_url) as holder:
        holder.execute(f"SELECT count(*) FROM {name}")  # holds a lock the swap must wait for
        writer = threading.Thread(
            target=write, args=(config, name, pa.table({"id": list(range(20))}), "overwrite")
        )
        writer.start()
        time.sleep(0.3)
        reader = threading.Thread(target=count)
        reader.start()
        time.sleep(0.3)
        assert writer.is_alive() and results == []  # both wait on the old table
        holder.commit()
    writer.join(10)
    reader.join(10)
    assert results == [(20,)]


def test_append_of_an_unknown_column_names_it(config: PostgresConfig) -> None:
    name = unique("cols")
    write(config, name, pa.table({"id": [1]}), "append")
    dst = PostgresFactory().destination(config)
    extra = pa.table({"id": [1], "extra": [2]})
    with pytest.raises(SchemaIncompatibleError, match="`extra`"):
        dst.write(name, extra.to_reader(), mode="append", schema_contract="freeze")
    # the default contract (evolve) adds it
    dst.write(name, extra.to_reader(), mode="append")
    assert read(config, name).sort_by("id").to_pylist() == [
        {"id": 1, "extra": None},
        {"id": 1, "extra": 2},
    ]


# -- pipelines -------------------------------------------------------------------------------


def test_pipeline_extract_and_load(postgres_url: str, numbers: str) -> None:
    from headwater.testing import workspace_for_test

    out = unique("copy")
    pipeline = textwrap.dedent(
        f"""\
        name: pgcopy
        steps:
          - {{name: e, type: extract, connection: pg, stream: "public.{numbers}", to: raw.nums}}
          - {{name: t, type: transform, to: mart.big,
              sql: "select id, amount from {{{{ ref('raw.nums') }}}} where id > 900"}}
          - {{name: l, type: load, from: mart.big, connection: pg, target: {out},
              mode: overwrite}}
        """
    )
    with workspace_for_test(connections={"pg": {"type": "postgres", "url": postgres_url}}) as ws:
        (ws.root / "pipelines" / "pgcopy.yaml").write_text(pipeline)
        result = ws.run("pgcopy")
        assert result.ok, result.error
        assert ws.read("raw.nums").num_rows == 1000
    assert sql(postgres_url, f"SELECT count(*), min(id), max(id) FROM {out}") == [(100, 901, 1000)]


def test_integers_append_into_a_numeric_column(config: PostgresConfig, postgres_url: str) -> None:
    """Arrow refuses int64 -> decimal128(12, 2) directly; values that fit must still load."""
    name = unique("num")
    sql(postgres_url, f'CREATE TABLE public."{name}" (id bigint, amount numeric(12,2))')
    write(
        config, name, pa.table({"id": [1, 2], "amount": pa.array([5, None], pa.int64())}), "append"
    )
    rows = sorted(read(config, name).to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], None if r["amount"] is None else str(r["amount"])) for r in rows] == [
        (1, "5.00"),
        (2, None),
    ]
    too_big = pa.table({"id": [3], "amount": pa.array([10**12], pa.int64())})
    with pytest.raises(SchemaIncompatibleError, match="precision"):
        write(config, name, too_big, "append")
    assert len(read(config, name)) == 2  # the failed append wrote nothing
