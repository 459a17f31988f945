"""The mariadb connector against a real MariaDB/MySQL (127.0.0.1:3306, user root)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import WriteResult
from headwater.connectors.mariadb.factory import MariadbConfig, MariadbFactory, redact_url
from headwater.errors import (
    ConfigError,
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

MY_HOST, MY_PORT = "127.0.0.1", 3306


def _admin() -> Any:
    import pymysql  # type: ignore[import-untyped]

    return pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", password="", autocommit=True)


@pytest.fixture
def config(mariadb_url: str) -> MariadbConfig:
    return MariadbConfig(url=mariadb_url)


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{url.rsplit('/', 1)[1]}`")
            cur.execute(statement, params or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def read(config: MariadbConfig, stream: str, **kwargs: Any) -> pa.Table:
    batches = list(MariadbFactory().source(config).read(stream, **kwargs))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def write(config: MariadbConfig, target: str, table: pa.Table, mode: str) -> WriteResult:
    dst = MariadbFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
    return dst.write(target, reader, mode=mode)  # type: ignore[arg-type]


class Boom(Exception):
    pass


def _failing(table: pa.Table, after: int) -> pa.RecordBatchReader:
    return failing(table, after, Boom("the upstream broke"), rows_per_batch=10)


# -- config ----------------------------------------------------------------------------------


def test_config_never_shows_the_password() -> None:
    cfg = MariadbConfig(url="mariadb+pymysql://me:hunter2x@db.example:3307/sales")
    assert "hunter2x" not in repr(cfg) and "hunter2x" not in str(cfg)
    assert cfg.where == "db.example:3307/sales"
    assert redact_url(cfg.url) == "mariadb+pymysql://****@db.example:3307/sales"
    assert cfg.cx_url == "mysql://me:hunter2x@db.example:3307/sales"
    assert (cfg.user, cfg.password, cfg.database) == ("me", "hunter2x", "sales")


def test_config_rejects_other_schemes_without_echoing_the_password() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        MariadbConfig(url="postgresql://me:hunter2x@db/x")
    assert "hunter2x" not in info.value.errors()[0]["msg"]
    with pytest.raises(ValidationError):
        MariadbConfig(url="mysql://me:hunter2x@db")


def test_capabilities() -> None:
    caps = MariadbFactory.capabilities
    assert caps.source and caps.destination and caps.pushdown
    assert caps.incremental and caps.partitioned and caps.idempotent and caps.merge
    assert caps.write_modes == ("append", "overwrite", "merge")


# -- check -----------------------------------------------------------------------------------


def test_check_passes(config: MariadbConfig) -> None:
    MariadbFactory().source(config).check()
    MariadbFactory().destination(config).check()


def test_wrong_password_is_terminal_fast_and_hides_the_password(mariadb_url: str) -> None:
    host_db = mariadb_url.split("@", 1)[1]
    cfg = MariadbConfig(url=f"mysql://root:s3cr3t-pw@{host_db}")
    err = assert_refused_login(MariadbFactory().source(cfg).check, "s3cr3t-pw")
    assert host_db in err.message


def test_unreachable_host_is_transient() -> None:
    cfg = MariadbConfig(url="mysql://me:s3cr3t-pw@127.0.0.1:1/db", connect_timeout=2)
    assert_unreachable_is_transient(
        MariadbFactory().source(cfg).check, "s3cr3t-pw", "127.0.0.1:1/db"
    )


# -- discover and types ----------------------------------------------------------------------


def test_discover_maps_types_and_keys(config: MariadbConfig, mariadb_url: str) -> None:
    name = unique("types")
    sql(
        mariadb_url,
        f"""CREATE TABLE {name} (
            a tinyint, b smallint, c int, d bigint PRIMARY KEY, e bigint unsigned,
            f tinyint(1), g float, h double, i decimal(38, 10), j decimal(65, 5),
            k date, l datetime(6), m timestamp(6) NULL, n time(6), o json, p varchar(20),
            q text, r enum('x', 'y'), s blob, t varbinary(8), u char(2), v year)""",
    )
    stream = {s.name: s for s in MariadbFactory().source(config).discover()}[name]
    assert stream.primary_key == ("d",)
    assert stream.schema is not None
    assert {f.name: f.type for f in stream.schema} == {
        "a": pa.int8(),
        "b": pa.int16(),
        "c": pa.int32(),
        "d": pa.int64(),
        "e": pa.uint64(),
        "f": pa.int8(),
        "g": pa.float32(),
        "h": pa.float64(),
        "i": pa.decimal128(38, 10),
        "j": pa.decimal256(65, 5),
        "k": pa.date32(),
        "l": pa.timestamp("us"),
        "m": pa.timestamp("us", "UTC"),
        "n": pa.time64("us"),
        "o": pa.string(),
        "p": pa.string(),
        "q": pa.string(),
        "r": pa.string(),
        "s": pa.binary(),
        "t": pa.binary(),
        "u": pa.string(),
        "v": pa.int16(),
    }
    sql(
        mariadb_url,
        f"""INSERT INTO {name} VALUES (-1, 2, 3, 4, 18446744073709551615, 1, 1.5, 2.5,
            '123.4560000000', '123456789012345678901234567890123456789012345678901234567890.12345',
            '2020-01-02', '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05.5', '12:00:01.5',
            '{{"a": [1, "é"]}}', 'vä', 'long', 'y', x'00ff', x'01', 'ab', 2024)""",
    )
    got = read(config, name)
    assert got.schema == pa.schema([pa.field(f.name, f.type) for f in stream.schema])
    row = got.to_pylist()[0]
    assert row["e"] == 18446744073709551615
    assert row["j"] == Decimal("123456789012345678901234567890123456789012345678901234567890.12345")
    assert row["m"] == dt.datetime(2020, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC)
    assert row["o"] == '{"a": [1, "é"]}' and row["r"] == "y" and row["s"] == b"\x00\xff"


def _typed_table() -> pa.Table:
    utc = dt.UTC
    return pa.table(
        {
            "i8": pa.array([-128, None, 127], pa.int8()),
            "i16": pa.array([-32768, 0, None], pa.int16()),
            "i32": pa.array([None, -(2**31), 2**31 - 1], pa.int32()),
            "i64": pa.array([-(2**63), None, 2**63 - 1], pa.int64()),
            "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
            "f32": pa.array([1.5, None, -0.25], pa.float32()),
            "f64": pa.array([1e300, -2.5e-300, None], pa.float64()),
            "d38": pa.array(
                [Decimal("9" * 28 + "." + "9" * 10), None, Decimal("-0.0000000001")],
                pa.decimal128(38, 10),
            ),
            "d18": pa.array([Decimal("1.50"), Decimal("-99.99"), None], pa.decimal128(18, 2)),
            "s": pa.array(['a"b,\nc\\N', None, "é 😀 漢字 NULL"], pa.string()),
            "empty": pa.array(["", "NULL", None], pa.string()),
            "b": pa.array([b"\x00\xff\n\"'", None, b""], pa.binary()),
            "day": pa.array([dt.date(1000, 1, 1), None, dt.date(9999, 12, 31)], pa.date32()),
            "ts": pa.array(
                [dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), None],
                pa.timestamp("us"),
            ),
            "tsz": pa.array(
                [
                    dt.datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=utc),
                    None,
                    dt.datetime(2038, 1, 1, tzinfo=utc),
                ],
                pa.timestamp("us", "UTC"),
            ),
            "tod": pa.array([dt.time(0, 0), dt.time(23, 59, 59, 999999), None], pa.time64("us")),
        }
    )


def test_round_trip_of_every_mapped_type(config: MariadbConfig) -> None:
    table = _typed_table()
    for mode in ("overwrite", "append"):
        name = unique("rt")
        result = write(config, name, table, mode)
        assert result.rows == 3 and result.details["method"] == "load data local infile"
        assert read(config, name).equals(table)


def test_round_trip_coercions(config: MariadbConfig) -> None:
    """bool -> tinyint(1) -> int8; large_string -> string; a zone -> UTC; ms -> us."""
    ams = "Europe/Amsterdam"
    table = pa.table(
        {
            "flag": pa.array([True, None, False]),
            "big": pa.array(["x", None, "y"], pa.large_string()),
            "zoned": pa.array([1_600_000_000_123, None, 1_000_000], pa.timestamp("ms", ams)),
        }
    )
    name = unique("co")
    write(config, name, table, "overwrite")
    got = read(config, name)
    assert got.column("flag").to_pylist() == [1, None, 0]
    assert got.schema.field("flag").type == pa.int8()
    assert got.schema.field("big").type == pa.string()
    assert got.column("zoned").equals(table.column("zoned").cast(pa.timestamp("us", "UTC")))


def test_empty_table_round_trip(config: MariadbConfig) -> None:
    name = unique("empty")
    table = pa.table({"id": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    assert write(config, name, table, "overwrite").rows == 0
    assert read(config, name).num_rows == 0
    assert {s.name for s in MariadbFactory().source(config).discover()} >= {name}


def test_nested_types_are_refused_before_connecting() -> None:
    cfg = MariadbConfig(url="mysql://me:pw@127.0.0.1:1/db")
    with pytest.raises(SchemaIncompatibleError) as info:
        write(cfg, "t", pa.table({"l": [[1, 2]]}), "append")
    assert info.value.column == "l"


def test_bad_values_fail_the_append_and_roll_it_back(
    config: MariadbConfig, mariadb_url: str
) -> None:
    name = unique("bad")
    sql(mariadb_url, f"CREATE TABLE {name} (id int, v varchar(3))")
    write(config, name, pa.table({"id": [1], "v": ["ok"]}), "append")
    with pytest.raises(SchemaIncompatibleError):
        write(config, name, pa.table({"id": [2, 3], "v": ["abc", "too long"]}), "append")
    assert sql(mariadb_url, f"SELECT count(*) FROM {name}") == [(1,)]


# -- reads -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numbers(mariadb_url: str) -> str:
    name = unique("numbers")
    cfg = MariadbConfig(url=mariadb_url)
    ids = list(range(1000))
    write(cfg, name, pa.table({"id": ids, "label": [f"n{i}" for i in ids]}), "overwrite")
    return name


def test_pushdown_of_columns_predicate_and_limit(config: MariadbConfig, numbers: str) -> None:
    got = read(config, numbers, columns=["label"], predicate="id >= 990 AND label <> 'n995'")
    assert got.column_names == ["label"]
    assert sorted(got.column("label").to_pylist()) == sorted(
        f"n{i}" for i in range(990, 1000) if i != 995
    )
    assert read(config, numbers, limit=7).num_rows == 7
    assert read(config, numbers, limit=0).num_rows == 0
    assert read(config, f"{config.database}.{numbers}", predicate="id < 3").num_rows == 3


def test_query_option_and_batches(config: MariadbConfig, numbers: str) -> None:
    cfg = MariadbConfig(url=config.url, batch_rows=100)
    batches = list(
        MariadbFactory()
        .source(cfg)
        .read("q", options={"query": f"SELECT id * 2 AS twice FROM {numbers}"})
    )
    assert len(batches) >= 10 and all(b.num_rows <= 100 for b in batches)
    assert sum(b.num_rows for b in batches) == 1000


def test_predicate_cannot_smuggle_a_statement(config: MariadbConfig, numbers: str) -> None:
    for bad in ("1 = 1; DROP TABLE x", "(SELECT 1)"):
        with pytest.raises(ConfigError):
            read(config, numbers, predicate=bad)
    assert read(config, numbers).num_rows == 1000


def test_unknown_table_column_and_option(config: MariadbConfig, numbers: str) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        read(config, numbers + "x")
    assert numbers in (info.value.hint or "")
    with pytest.raises(ConfigError) as col:
        read(config, numbers, columns=["idd"])
    assert col.value.column == "idd"
    with pytest.raises(ConfigError):
        read(config, numbers, options={"qurey": "SELECT 1"})


def test_weird_identifiers_round_trip(config: MariadbConfig, mariadb_url: str) -> None:
    name = "we`ird; DROP TABLE x -- tbl é"
    table = pa.table({"a `b`": [1, 2], "sp ace; --": ["x", "y"], "Ünï": [None, "😀"]})
    write(config, name, table, "overwrite")
    write(config, name, table, "append")
    got = read(config, name, columns=["sp ace; --", "a `b`"], predicate='"a `b`" = 2')
    assert got.to_pylist() == [{"sp ace; --": "y", "a `b`": 2}] * 2
    assert read(config, name).num_rows == 4
    assert name in {s.name for s in MariadbFactory().source(config).discover()}


# -- writes ----------------------------------------------------------------------------------


def test_append_then_overwrite_exact_counts(config: MariadbConfig, mariadb_url: str) -> None:
    name = unique("counts")
    assert write(config, name, pa.table({"id": list(range(10))}), "append").rows == 10
    assert write(config, name, pa.table({"id": list(range(25))}), "append").rows == 25
    assert sql(mariadb_url, f"SELECT count(*) FROM {name}") == [(35,)]
    assert write(config, name, pa.table({"id": list(range(7))}), "overwrite").rows == 7
    assert sql(mariadb_url, f"SELECT count(*), max(id) FROM {name}") == [(7, 6)]


def test_overwrite_keeps_the_table_definition(config: MariadbConfig, mariadb_url: str) -> None:
    name = unique("keep")
    sql(mariadb_url, f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(5), KEY iv (v))")
    write(config, name, pa.table({"id": [1, 2], "v": ["a", "b"]}), "overwrite")
    ddl = sql(mariadb_url, f"SHOW CREATE TABLE {name}")[0][1]
    assert "PRIMARY KEY (`id`)" in ddl and "KEY `iv`" in ddl and "varchar(5)" in ddl


def test_failed_writes_leave_the_old_table_intact(config: MariadbConfig, mariadb_url: str) -> None:
    name = unique("fail")
    dst = MariadbFactory().destination(config)
    new = assert_failed_writes_keep_the_old_table(
        lambda t: write(config, name, t, "overwrite"),
        lambda t, mode: dst.write(name, _failing(t, 5), mode=mode),
        lambda: sql(mariadb_url, f"SELECT count(*), min(v), max(v) FROM {name}"),
        Boom,
    )
    leftovers = sql(
        mariadb_url,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND (TABLE_NAME LIKE 'hw\\_stage\\_%%' OR TABLE_NAME LIKE 'hw\\_old\\_%%')",
    )
    assert leftovers == []
    with pytest.raises(Boom):
        dst.write(name + "_new", _failing(new, 3), mode="overwrite")
    assert sql(mariadb_url, "SHOW TABLES LIKE %s", (name + "_new",)) == []


def test_overwrite_is_atomic_for_concurrent_readers(
    config: MariadbConfig, mariadb_url: str
) -> None:
    name = unique("atomic")

    @contextlib.contextmanager
    def counter() -> Iterator[Callable[[], int]]:
        conn = _admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"USE `{config.database}`")

                def count() -> int:
                    cur.execute(f"SELECT count(*) FROM {name}")
                    return int(cur.fetchone()[0])

                yield count
        finally:
            conn.close()

    assert_overwrite_is_atomic(lambda t: write(config, name, t, "overwrite"), counter)


def test_append_of_an_unknown_column_names_it_under_freeze(
    config: MariadbConfig, mariadb_url: str
) -> None:
    name = unique("cols")
    write(config, name, pa.table({"id": [1]}), "overwrite")
    dst = MariadbFactory().destination(config)
    new = pa.table({"id": [2], "idx": [3]})
    with pytest.raises(SchemaIncompatibleError) as info:
        dst.write(name, new.to_reader(), mode="append", schema_contract="freeze")
    assert info.value.column == "idx"
    assert sql(mariadb_url, f"SELECT * FROM {name}") == [(1,)]
    # evolve (the default) adds the column, nullable, and loads
    write(config, name, new, "append")
    assert sql(mariadb_url, f"SELECT id, idx FROM {name} ORDER BY id") == [(1, None), (2, 3)]


def test_insert_fallback_when_local_infile_is_refused(
    config: MariadbConfig, mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.connectors.mariadb import loading

    def refused(*args: Any, **kwargs: Any) -> None:
        raise destination_error(1148, "The used command is not allowed with this MariaDB version")

    import pymysql

    def destination_error(code: int, msg: str) -> Exception:
        return pymysql.err.OperationalError(code, msg)

    monkeypatch.setattr(loading, "_load_file", refused)
    table = _typed_table()
    name = unique("ins")
    result = write(config, name, table, "overwrite")
    assert result.details["method"] == "insert" and result.rows == 3
    assert read(config, name).equals(table)
