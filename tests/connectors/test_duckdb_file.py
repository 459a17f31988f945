"""The ``duckdb`` connector against real database files in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from headwater.connectors.base import Destination, Source
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.connectors.registry import get_connector
from headwater.errors import (
    ConfigError,
    QueryError,
    SourceNotFoundError,
)
from headwater.testing import assert_table_equal
from tests.connectors.sql_file_cases import (
    DUCKDB,
    Engine,
    batches_of,
    check_capabilities,
    check_not_a_database,
    failing,
    pushdown_source,
    read_table,
    test_weird_identifiers_round_trip,
)
from tests.connectors.sql_file_cases import SAMPLE as SHARED_SAMPLE

__all__ = ["test_weird_identifiers_round_trip"]  # shared with sqlite (sql_file_cases)


@pytest.fixture
def engine() -> Engine:
    return DUCKDB


def _config(tmp_path: Path, name: str = "db.duckdb", **kw: object) -> DuckdbConfig:
    return DuckdbConfig(path=name, base_dir=str(tmp_path), **kw)  # type: ignore[arg-type]


def _source(tmp_path: Path) -> Source:
    return DUCKDB.source(tmp_path)


def _dest(tmp_path: Path) -> Destination:
    return DUCKDB.destination(tmp_path)


# the shared sample with two types DuckDB keeps and SQLite cannot: int8 and a list
SAMPLE = SHARED_SAMPLE.add_column(
    1, "small", pa.array([1, None, -128, 127], pa.int8())
).append_column("tags", pa.array([["a", "b"], None, [], ["ü"]], pa.list_(pa.string())))


def test_round_trip_types_nulls_unicode_decimals_timestamps(tmp_path: Path) -> None:
    result = _dest(tmp_path).write("t", batches_of(SAMPLE), mode="overwrite")
    assert result.rows == 4 and result.bytes > 0 and result.location and "t" in result.location
    src = _source(tmp_path)
    (stream,) = src.discover()
    assert stream.name == "t" and stream.schema is not None
    got = read_table(src, "t")
    # DuckDB names a list's child field after the column; every other type is kept exactly
    assert got.schema.types[:-1] == SAMPLE.schema.types[:-1]
    assert got.to_pylist() == SAMPLE.to_pylist()


def test_discover_primary_key_and_schemas(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE o (a INTEGER, b VARCHAR, c DECIMAL(10,2), PRIMARY KEY (b, a))")
    con.execute("CREATE SCHEMA s; CREATE TABLE s.x (v DOUBLE)")
    con.close()
    streams = {s.name: s for s in _source(tmp_path).discover()}
    assert set(streams) == {"o", "s.x"}
    assert streams["o"].primary_key == ("b", "a")
    assert streams["o"].schema is not None
    assert streams["o"].schema.types == [pa.int32(), pa.string(), pa.decimal128(10, 2)]
    assert read_table(_source(tmp_path), "s.x").num_rows == 0


def test_pushdown_columns_predicate_limit_and_query(tmp_path: Path) -> None:
    src = pushdown_source(DUCKDB, tmp_path, ordered=False)  # DuckDB scans in parallel
    with pytest.raises(QueryError):
        read_table(src, "t", predicate="no_such_column = 1")


def test_append_creates_then_adds_by_name(tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    table = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    assert dest.write("t", batches_of(table), mode="append").rows == 3
    assert dest.write("t", batches_of(table.select(["v", "id"])), mode="append").rows == 3
    got = read_table(_source(tmp_path), "t")
    assert got.num_rows == 6 and got.column("id").to_pylist() == [1, 2, 3, 1, 2, 3]
    assert dest.write("t", batches_of(table.slice(0, 0)), mode="overwrite").rows == 0
    assert read_table(_source(tmp_path), "t").num_rows == 0


def test_failed_overwrite_leaves_old_table_intact(tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    old = pa.table({"id": [1, 2, 3]})
    dest.write("t", batches_of(old), mode="overwrite")
    with pytest.raises(RuntimeError, match="half-way"):
        dest.write("t", failing(pa.table({"id": [7, 8, 9, 10]})), mode="overwrite")
    assert_table_equal(read_table(_source(tmp_path), "t"), old)
    assert [s.name for s in _source(tmp_path).discover()] == ["t"]  # no staging table left
    with pytest.raises(RuntimeError, match="half-way"):
        dest.write("t", failing(pa.table({"id": [7, 8, 9]})), mode="append")
    assert read_table(_source(tmp_path), "t").num_rows == 3


def test_reader_sees_old_table_until_overwrite_commits(tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    dest.write("t", batches_of(pa.table({"id": [1, 2, 3]})), mode="overwrite")
    seen: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [7]})
        # another connection to the same database during the write
        con = duckdb.connect(
            str(tmp_path / "db.duckdb"),
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
        )
        row = con.execute("SELECT count(*) FROM t").fetchall()[0]
        seen.append(row[0] if row else -1)
        con.close()
        yield pa.record_batch({"id": [8]})

    schema = pa.schema([("id", pa.int64())])
    assert (
        dest.write("t", pa.RecordBatchReader.from_batches(schema, batches()), mode="overwrite").rows
        == 2
    )
    assert seen == [3]
    assert read_table(_source(tmp_path), "t").column("id").to_pylist() == [7, 8]


def test_capabilities_and_read_only_destination(tmp_path: Path) -> None:
    check_capabilities(DUCKDB)
    with pytest.raises(ConfigError, match="read_only"):
        get_connector("duckdb").destination(_config(tmp_path, read_only=True))


def test_check_missing_and_not_a_database(tmp_path: Path) -> None:
    get_connector("duckdb").destination(_config(tmp_path)).check()  # created on first write
    with pytest.raises(SourceNotFoundError):
        _source(tmp_path).check()
    check_not_a_database(DUCKDB, tmp_path, "notes.duckdb")
