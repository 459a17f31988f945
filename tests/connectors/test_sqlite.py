"""The ``sqlite`` connector against real database files in tmp_path."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.connectors.base import Destination, Source
from headwater.connectors.registry import get_connector
from headwater.connectors.sqlite.factory import SqliteConfig, SqliteFactory
from headwater.errors import (
    SourceFormatError,
    SourceNotFoundError,
)
from headwater.testing import assert_table_equal, workspace_for_test
from tests.connectors.sql_file_cases import (
    SAMPLE,
    SQLITE,
    WEIRD,
    Engine,
    batches_of,
    check_capabilities,
    check_not_a_database,
    failing,
    pushdown_source,
    read_table,
    test_weird_identifiers_round_trip,
)

__all__ = ["test_weird_identifiers_round_trip"]  # shared with duckdb (sql_file_cases)


@pytest.fixture
def engine() -> Engine:
    return SQLITE


def _source(tmp_path: Path) -> Source:
    return SQLITE.source(tmp_path)


def _dest(tmp_path: Path) -> Destination:
    return SQLITE.destination(tmp_path)


def test_round_trip_types_nulls_unicode_decimals_timestamps(tmp_path: Path) -> None:
    result = _dest(tmp_path).write("t", batches_of(SAMPLE), mode="overwrite")
    assert result.rows == 4 and result.bytes > 0 and result.location and "t" in result.location
    src = _source(tmp_path)
    (stream,) = src.discover()
    assert stream.name == "t"
    assert stream.schema is not None and stream.schema.types == SAMPLE.schema.types
    assert_table_equal(read_table(src, "t"), SAMPLE)
    # decimals are stored as exact text, timestamps as ISO text, booleans as 0/1
    con = sqlite3.connect(tmp_path / "db.sqlite")
    row = con.execute(
        "SELECT typeof(amount), amount, at, at_tz, flag FROM t WHERE id = 1"
    ).fetchone()
    assert row == (
        "text",
        "12345678901234567890.123456789",
        "2024-02-29 23:59:59.999999",
        "2024-01-01 12:00:00.000000Z",
        1,
    )


def test_narrow_types_widen_on_read(tmp_path: Path) -> None:
    table = pa.table(
        {
            "i": pa.array([1, None], pa.int8()),
            "f": pa.array([0.5, None], pa.float32()),
            "s": pa.array(["a", None], pa.large_string()),
        }
    )
    _dest(tmp_path).write("n", batches_of(table), mode="append")
    got = read_table(_source(tmp_path), "n")
    assert got.schema.types == [pa.int64(), pa.float64(), pa.string()]
    assert got.to_pylist() == table.to_pylist()


def test_discover_declared_types_and_primary_key(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute(
        "CREATE TABLE o (a INTEGER, b VARCHAR(10), c NUMERIC(10, 2), d REAL, e BLOB, f, "
        "g DATETIME, h BOOLEAN, i DATE, PRIMARY KEY (b, a))"
    )
    con.execute(
        "INSERT INTO o VALUES (1, 'x', 1.25, 2, x'00', 7, '2024-01-01T10:00:00', 1, '2024-01-02')"
    )
    con.commit()
    (stream,) = _source(tmp_path).discover()
    assert stream.primary_key == ("b", "a")
    assert stream.schema is not None
    assert stream.schema.types == [
        pa.int64(),
        pa.string(),
        pa.decimal128(10, 2),
        pa.float64(),
        pa.binary(),
        pa.string(),
        pa.timestamp("us"),
        pa.bool_(),
        pa.date32(),
    ]
    row = read_table(_source(tmp_path), "o").to_pylist()[0]
    assert row == {
        "a": 1,
        "b": "x",
        "c": Decimal("1.25"),
        "d": 2.0,
        "e": b"\x00",
        "f": "7",
        "g": dt.datetime(2024, 1, 1, 10),
        "h": True,
        "i": dt.date(2024, 1, 2),
    }


def test_value_not_matching_declared_type_fails_naming_column(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE m (n INTEGER)")
    con.executemany("INSERT INTO m VALUES (?)", [(1,), ("abc",)])
    con.commit()
    with pytest.raises(SourceFormatError) as info:
        read_table(_source(tmp_path), "m")
    assert info.value.column == "n" and "abc" in info.value.message
    assert info.value.hint and "typeof(\"n\") NOT IN ('integer', 'null')" in info.value.hint
    # a custom query with a CAST reads it
    got = read_table(
        _source(tmp_path), "m", options={"query": "SELECT CAST(n AS TEXT) AS n FROM m"}
    )
    assert got.column("n").to_pylist() == ["1", "abc"]


def test_pushdown_columns_predicate_limit_and_query(tmp_path: Path) -> None:
    src = pushdown_source(SQLITE, tmp_path, ordered=True)
    batches = list(src.read("t", options={"batch_rows": 10}))
    assert len(batches) == 10 and all(b.num_rows == 10 for b in batches)


def test_append_creates_then_adds(tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    table = pa.table({"id": [1, 2, 3]})
    assert dest.write("t", batches_of(table), mode="append").rows == 3
    assert dest.write("t", batches_of(table), mode="append").rows == 3
    assert read_table(_source(tmp_path), "t").num_rows == 6
    assert dest.write("t", batches_of(table.slice(0, 0)), mode="overwrite").rows == 0
    assert read_table(_source(tmp_path), "t").num_rows == 0


def _count_t(db: Path, seen: list[int]) -> None:
    """Half-way: another connection still sees the previous table, whole."""
    seen.append(sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone()[0])


def test_failed_overwrite_leaves_old_table_intact(tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    old = pa.table({"id": [1, 2, 3]})
    dest.write("t", batches_of(old), mode="overwrite")
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="half-way"):
        dest.write(
            "t",
            failing(pa.table({"id": [7, 8, 9, 10]}), lambda: _count_t(SQLITE.db(tmp_path), seen)),
            mode="overwrite",
        )
    assert seen == [3]
    assert_table_equal(read_table(_source(tmp_path), "t"), old)
    names = [s.name for s in _source(tmp_path).discover()]
    assert names == ["t"]  # no staging table left behind
    seen.clear()
    with pytest.raises(RuntimeError, match="half-way"):
        dest.write(
            "t",
            failing(pa.table({"id": [7, 8]}), lambda: _count_t(SQLITE.db(tmp_path), seen)),
            mode="append",
        )
    assert read_table(_source(tmp_path), "t").num_rows == 3  # a failed append adds nothing


def test_capabilities_declare_the_incremental_contract() -> None:
    assert SqliteFactory.capabilities is get_connector("sqlite").capabilities
    check_capabilities(SQLITE)


def test_check_missing_and_not_a_database(tmp_path: Path) -> None:
    _source(tmp_path).check()  # missing file in a writable directory: a destination creates it
    with pytest.raises(SourceNotFoundError):
        _source(tmp_path).discover()
    with pytest.raises(SourceNotFoundError):
        get_connector("sqlite").source(
            SqliteConfig(path=str(tmp_path / "no" / "dir" / "x.db"))
        ).check()
    check_not_a_database(SQLITE, tmp_path, "notes.txt")


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    config = SqliteConfig(path="sub/db.sqlite", base_dir=str(tmp_path))
    assert config.file == tmp_path / "sub" / "db.sqlite"


def test_pipeline_sqlite_to_dataset_to_duckdb(tmp_path: Path) -> None:
    connections = {
        "app": {"type": "sqlite", "path": "data/app.sqlite"},
        "warehouse": {"type": "duckdb", "path": "exports/wh.duckdb"},
    }
    with workspace_for_test(tmp_path / "ws", connections=connections) as ws:
        cfg = SqliteConfig(path=str(ws.root / "data" / "app.sqlite"))
        get_connector("sqlite").destination(cfg).write(WEIRD, batches_of(SAMPLE, 3), mode="append")
        (ws.root / "pipelines" / "p.yaml").write_text(
            "name: p\nsteps:\n"
            "  - {name: e, type: extract, connection: app, stream: '"
            + WEIRD.replace("'", "''")
            + "', to: raw.orders}\n"
            "  - {name: l, type: load, from: raw.orders, connection: warehouse, target: orders, mode: overwrite}\n"
        )
        result = ws.run("p")
        assert result.ok, result.error
        assert_table_equal(ws.read("raw.orders"), SAMPLE, sort_by=["id"], check_schema=False)
        import duckdb

        con = duckdb.connect(str(ws.root / "exports" / "wh.duckdb"), read_only=True)
        got = con.sql("SELECT * FROM orders ORDER BY id").to_arrow_table()
        con.close()
        assert got.num_rows == 4
        assert got.to_pylist() == SAMPLE.sort_by([("id", "ascending")]).to_pylist()
