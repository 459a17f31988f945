"""Test bodies shared by the file-backed SQL connectors (``sqlite``, ``duckdb``).

Each connector's incremental test module supplies an ``engine`` fixture (:data:`SQLITE`
or :data:`DUCKDB`) and collects the tests in ``__all__`` with ``from ... import *``:
predicate, order_by and column_bounds pushdown, merge, load ids, schema contracts,
crashes and identifiers, checked the same way against either database file. Predicates
are checked against DuckDB's own evaluation of the same expression on the same Arrow
rows. The other test modules import what they share by name: source and destination
basics (:func:`test_weird_identifiers_round_trip`, :func:`pushdown_source`, ...) and
the type round trip (:class:`Case`, :func:`check_round_trip`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.connectors.base import Destination, ListRejectSink, Source
from headwater.connectors.contract import SchemaContractError
from headwater.connectors.duckdb_file.client import DuckdbClient
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.connectors.registry import get_connector
from headwater.connectors.sqlite.client import SqliteClient
from headwater.connectors.sqlite.factory import SqliteConfig
from headwater.errors import (
    ConfigError,
    ConnectorError,
    SchemaIncompatibleError,
    SourceFormatError,
    SourceNotFoundError,
    Terminal,
)
from headwater.testing import assert_table_equal

__all__ = [
    "DUCKDB",
    "EVENTS",
    "FILE_DATABASE_CASES",
    "NAMES",
    "ODD_PREDICATES",
    "PREDICATES",
    "SAMPLE",
    "SQLITE",
    "STAMPS",
    "TEXT",
    "WEIRD",
    "ZONED",
    "Case",
    "Client",
    "Engine",
    "batches_of",
    "check_capabilities",
    "check_empty_table",
    "check_missing_directory",
    "check_not_a_database",
    "check_not_readable",
    "check_round_trip",
    "decimals",
    "events",
    "failing",
    "int64s",
    "pushdown_source",
    "read_table",
    "same_type",
    "test_column_bounds_types_predicates_and_queries",
    "test_concurrent_writers_with_one_load_id_load_once",
    "test_discard_row_sends_rows_that_do_not_fit_to_rejects",
    "test_evil_names_do_nothing_evil",
    "test_evolve_adds_columns_inside_the_transaction",
    "test_failed_write_records_no_load_id",
    "test_freeze_refuses_before_writing",
    "test_identifiers_round_trip_through_write_discover_read_merge",
    "test_kill_at_crash_point_leaves_target_unchanged_and_rerun_loads_once",
    "test_load_id_is_recorded_once_with_the_data",
    "test_merge_refusals_write_nothing",
    "test_merge_speed_and_correctness_on_50k_rows",
    "test_merge_upserts_last_occurrence_wins_and_soft_deletes",
    "test_order_by_nulls_last_with_predicate_and_limit",
    "test_overwrite_contracts",
    "test_predicate_filters_exactly_as_duckdb_does",
    "to_utc",
    "untouchable",
    "write_read",
]

UTC = dt.UTC

Client = SqliteClient | DuckdbClient


@dataclass(frozen=True)
class Engine:
    """One file-backed SQL connector as the shared tests drive it."""

    name: str  # the connector name
    suffix: str  # of the database file names
    client_class: type[SqliteClient] | type[DuckdbClient]
    config_class: type[SqliteConfig] | type[DuckdbConfig]
    connect: Callable[[Path], Any]  # a DB-API connection of the database's own library
    no_table: type[Exception]  # what it raises for a query on a missing table
    source_options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    def db(self, tmp_path: Path, stem: str = "db") -> Path:
        return tmp_path / f"{stem}.{self.suffix}"

    def config(self, tmp_path: Path, name: str | None = None, **kw: Any) -> Any:
        return self.config_class(path=name or f"db.{self.suffix}", base_dir=str(tmp_path), **kw)

    def client(self, tmp_path: Path, name: str | None = None, **kw: Any) -> Client:
        client = get_connector(self.name).destination(self.config(tmp_path, name, **kw))
        assert isinstance(client, self.client_class)
        return client

    def source(self, tmp_path: Path, name: str | None = None) -> Source:
        """A source over the file, opened as a reader (DuckDB: ``read_only``)."""
        return get_connector(self.name).source(self.config(tmp_path, name, **self.source_options))

    def destination(self, tmp_path: Path) -> Destination:
        return get_connector(self.name).destination(self.config(tmp_path))

    def ledger(self, db: Path) -> list[tuple[Any, ...]]:
        con = self.connect(db)
        try:
            return list(
                con.execute(
                    'SELECT load_id, target_table, mode, "rows", committed_at '
                    "FROM _headwater_loads ORDER BY committed_at"
                ).fetchall()
            )
        except self.no_table:
            return []
        finally:
            con.close()


def _duckdb_connect(db: Path) -> duckdb.DuckDBPyConnection:
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    return duckdb.connect(str(db), read_only=True, config=config)


SQLITE = Engine(
    "sqlite", "sqlite", SqliteClient, SqliteConfig, sqlite3.connect, sqlite3.OperationalError
)
DUCKDB = Engine(
    "duckdb",
    "duckdb",
    DuckdbClient,
    DuckdbConfig,
    _duckdb_connect,
    duckdb.CatalogException,
    source_options={"read_only": True},
)


def batches_of(table: pa.Table, max_rows: int = 2) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=max_rows))


def read_table(client: Client | Source, stream: str, **kwargs: Any) -> pa.Table:
    return pa.Table.from_batches(list(client.read(stream, **kwargs)))


def untouchable(schema: pa.Schema) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        raise AssertionError("the input of an already loaded load id was read")
        yield  # pragma: no cover

    return pa.RecordBatchReader.from_batches(schema, batches())


def _stamp(value: Any) -> dt.datetime:
    """A ledger timestamp: DuckDB returns a datetime, SQLite its ISO text."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


# -- predicates ----------------------------------------------------------------------------


EVENTS = pa.table(
    {
        "id": pa.array(range(1, 9), pa.int64()),
        "k": pa.array(["aaa", "abc", "abd", "b", None, "ABC", "é", "abc "]),
        "updated_at": pa.array(
            [
                dt.datetime(2024, 1, 1, 9, 59, 59, 999999),
                dt.datetime(2024, 1, 1, 10),
                dt.datetime(2024, 1, 1, 10, 0, 0, 1),
                dt.datetime(2024, 1, 2),
                None,
                dt.datetime(2023, 12, 31, 23, 59, 59),
                dt.datetime(1999, 1, 1),
                dt.datetime(2024, 1, 1, 12),
            ],
            pa.timestamp("us"),
        ),
        "at_tz": pa.array(
            [
                dt.datetime(2024, 1, 1, 9, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 10, 0, 0, 1, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
                None,
                dt.datetime(2024, 1, 1, 7, 59, 59, tzinfo=UTC),
                dt.datetime(2030, 1, 1, tzinfo=UTC),
                dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "amount": pa.array(
            [
                Decimal("12.49"),
                Decimal("12.50"),
                Decimal("12.51"),
                Decimal("-100.00"),
                None,
                Decimal("1000.00"),
                Decimal("0.00"),
                Decimal("9.99"),
            ],
            pa.decimal128(10, 2),
        ),
        "day": pa.array(
            [
                dt.date(2023, 12, 31),
                dt.date(2024, 1, 1),
                dt.date(2024, 1, 2),
                None,
                dt.date(2024, 1, 1),
                dt.date(1, 1, 1),
                dt.date(9999, 12, 31),
                dt.date(2024, 1, 10),
            ]
        ),
    }
)

PREDICATES = [
    "\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"updated_at\" > CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"updated_at\" = CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
    "\"updated_at\" < CAST('2024-01-01 10:00:00.000001' AS TIMESTAMP)",
    "\"updated_at\" >= CAST('2024-01-01' AS DATE)",
    "\"updated_at\" >= TIMESTAMP '2024-01-01 10:00:00' AND \"updated_at\" < '2024-01-02'",
    "(\"at_tz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ))",
    "(\"at_tz\" > CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ))",
    "\"at_tz\" >= CAST('2024-01-01 12:00:00+02:00' AS TIMESTAMPTZ)",
    "\"at_tz\" = CAST('2024-01-01 05:00:00-05:00' AS TIMESTAMPTZ)",
    "\"at_tz\" BETWEEN CAST('2024-01-01 08:00:00Z' AS TIMESTAMPTZ) "
    "AND CAST('2024-01-01 10:00:00Z' AS TIMESTAMPTZ)",
    '"id" >= 3 AND "id" < 6',
    "\"k\" > 'abc'",
    "\"k\" >= 'abc' AND \"k\" < 'abd'",
    "\"amount\" >= CAST('12.50' AS DECIMAL(10,2))",
    "\"amount\" > CAST('12.50' AS DECIMAL(10,2))",
    "\"amount\" < CAST('-99.5' AS DECIMAL(10,2)) OR \"amount\" > CAST('999' AS DECIMAL(10,2))",
    "\"day\" >= CAST('2024-01-01' AS DATE)",
    "\"day\" > CAST('2024-01-01' AS DATE)",
    "\"day\" = DATE '2024-01-01'",
    "\"day\" IN (CAST('0001-01-01' AS DATE), CAST('9999-12-31' AS DATE))",
    '"day" IS NULL OR "updated_at" IS NULL',
]


@pytest.fixture
def events(engine: Engine, tmp_path: Path) -> Client:
    client = engine.client(tmp_path)
    client.write("events", batches_of(EVENTS, 3), mode="overwrite")
    return client


@pytest.mark.parametrize("predicate", PREDICATES)
def test_predicate_filters_exactly_as_duckdb_does(events: Client, predicate: str) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", EVENTS)
    expected = sorted(
        r[0] for r in con.execute(f"SELECT id FROM events WHERE {predicate}").fetchall()
    )
    con.close()
    got = read_table(events, "events", columns=["id"], predicate=predicate)
    assert sorted(got.column("id").to_pylist()) == expected
    # the same predicate over a query (no declared types: the cast type decides)
    query = read_table(
        events,
        "q",
        options={"query": "SELECT id, updated_at, at_tz, amount, day, k FROM events"},
        predicate=predicate,
    )
    assert sorted(query.column("id").to_pylist()) == expected


# -- order_by ------------------------------------------------------------------------------


def test_order_by_nulls_last_with_predicate_and_limit(events: Client) -> None:
    got = read_table(events, "events", columns=["id"], order_by=["day", "id"])
    assert got.column("id").to_pylist() == [6, 1, 2, 5, 3, 8, 7, 4]  # NULL day last
    # decimals sort by value, not as text ('-100.00' < '0.00' < '12.49' < '9.99' as text)
    got = read_table(events, "events", columns=["amount"], order_by=["amount"])
    values = got.column("amount").to_pylist()
    assert values[:-1] == sorted(v for v in values if v is not None) and values[-1] is None
    got = read_table(
        events,
        "events",
        columns=["id", "updated_at"],
        predicate="\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
        order_by=["updated_at"],
        limit=2,
    )
    assert got.column("id").to_pylist() == [2, 3]
    got = read_table(events, "events", columns=["id"], order_by=["at_tz"], limit=3)
    assert got.column("id").to_pylist() == [6, 4, 1]
    got = read_table(events, "q", options={"query": "SELECT id, k FROM events"}, order_by=["k"])
    assert got.column("k").to_pylist()[-1] is None
    with pytest.raises(SourceNotFoundError) as info:
        read_table(events, "events", order_by=["nope"])
    assert info.value.column == "nope"


# -- column_bounds -------------------------------------------------------------------------


def test_column_bounds_types_predicates_and_queries(events: Client) -> None:
    b = events.column_bounds
    assert b("events", "id") == (1, 8)
    assert b("events", "amount") == (Decimal("-100.00"), Decimal("1000.00"))
    assert b("events", "day") == (dt.date(1, 1, 1), dt.date(9999, 12, 31))
    assert b("events", "updated_at") == (dt.datetime(1999, 1, 1), dt.datetime(2024, 1, 2))
    low, high = b("events", "at_tz")
    assert low == dt.datetime(2024, 1, 1, 7, 59, 59, tzinfo=UTC) and low.tzinfo is not None
    assert high == dt.datetime(2030, 1, 1, tzinfo=UTC)
    assert b("events", "k") == ("ABC", "é")
    assert b("events", "id", predicate='"id" > 100') == (None, None)
    assert b("events", "id", predicate="\"day\" >= CAST('2024-01-01' AS DATE)") == (2, 8)
    assert b("events", "amount", predicate='"id" IN (1, 2)') == (
        Decimal("12.49"),
        Decimal("12.50"),
    )
    assert b("x", "n", options={"query": "SELECT id * 2 AS n FROM events"}) == (2, 16)
    with pytest.raises(SourceNotFoundError):
        b("events", "nope")
    client = events
    client.write("empty", batches_of(EVENTS.slice(0, 0)), mode="overwrite")
    assert b("empty", "updated_at") == (None, None)


# -- merge ---------------------------------------------------------------------------------


def test_merge_upserts_last_occurrence_wins_and_soft_deletes(
    engine: Engine, tmp_path: Path
) -> None:
    client = engine.client(tmp_path)
    base = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "n": [10, 20, 30]})
    first = client.write("m", batches_of(base), mode="merge", keys=["id"])
    assert first.rows == 3 and first.details["inserted"] == 3
    change = pa.table(
        {
            "id": [2, 4, 2, 3, 5],
            "name": ["b1", "d", "b2", "gone", "never"],
            "n": [21, 40, 22, 0, 0],
            "deleted": [False, False, None, True, True],
        }
    )
    result = client.write(
        "m",
        batches_of(change),
        mode="merge",
        keys=["id"],
        options={"soft_delete_column": "deleted"},
    )
    d = result.details
    assert (d["inserted"], d["updated"], d["deleted"], d["duplicates"]) == (1, 1, 1, 1)
    assert result.rows == 4
    got = read_table(client, "m", order_by=["id"]).to_pylist()
    assert got == [
        {"id": 1, "name": "a", "n": 10},
        {"id": 2, "name": "b2", "n": 22},
        {"id": 4, "name": "d", "n": 40},
    ]
    # composite keys, keys-only input
    client.write("c", batches_of(pa.table({"a": [1, 1], "b": ["x", "y"]})), mode="append")
    client.write(
        "c", batches_of(pa.table({"a": [1, 2], "b": ["y", "z"]})), mode="merge", keys=["a", "b"]
    )
    assert sorted(map(tuple, (r.values() for r in read_table(client, "c").to_pylist()))) == [
        (1, "x"),
        (1, "y"),
        (2, "z"),
    ]


def test_merge_refusals_write_nothing(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("m", batches_of(pa.table({"id": [1], "v": ["a"]})), mode="append")
    with pytest.raises(SchemaIncompatibleError, match="null"):
        client.write(
            "m",
            batches_of(pa.table({"id": [2, None], "v": ["b", "c"]}), 1),
            mode="merge",
            keys=["id"],
        )
    with pytest.raises(ConfigError, match="keys"):
        client.write("m", batches_of(pa.table({"id": [2]})), mode="merge")
    with pytest.raises(ConfigError, match="nope"):
        client.write("m", batches_of(pa.table({"id": [2]})), mode="merge", keys=["nope"])
    with pytest.raises(ConfigError, match="boolean"):
        client.write(
            "m",
            batches_of(pa.table({"id": [2], "v": ["x"]})),
            mode="merge",
            keys=["id"],
            options={"soft_delete_column": "v"},
        )
    assert read_table(client, "m").to_pylist() == [{"id": 1, "v": "a"}]


def test_merge_speed_and_correctness_on_50k_rows(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    n = 50_000
    client.write("big", batches_of(pa.table({"id": range(n), "v": [0] * n}), 10_000), mode="append")
    change = pa.table({"id": range(n // 2, n + n // 2), "v": [1] * n})
    result = client.write("big", batches_of(change, 10_000), mode="merge", keys=["id"])
    assert result.details["inserted"] == n // 2 and result.details["updated"] == n // 2
    con = engine.connect(engine.db(tmp_path))
    assert con.execute("SELECT count(*), sum(v), count(DISTINCT id) FROM big").fetchone() == (
        n + n // 2,
        n,
        n + n // 2,
    )


# -- load ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_load_id_is_recorded_once_with_the_data(engine: Engine, tmp_path: Path, mode: str) -> None:
    client = engine.client(tmp_path)
    table = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    keys = ["id"] if mode == "merge" else None
    first = client.write("t", batches_of(table), mode=mode, keys=keys, load_id="load-1")  # type: ignore[arg-type]
    assert first.rows == 3 and first.details["load_id"] == "load-1"
    assert first.details["rows_rejected"] == 0 and "already_loaded" not in first.details
    again = client.write("t", untouchable(table.schema), mode=mode, keys=keys, load_id="load-1")  # type: ignore[arg-type]
    assert again.rows == 3 and again.details["already_loaded"] is True
    assert read_table(client, "t").num_rows == 3
    (row,) = engine.ledger(engine.db(tmp_path))
    assert row[:4] == ("load-1", "t", mode, 3)
    stamp = _stamp(row[4])
    assert abs(dt.datetime.now(UTC).replace(tzinfo=None) - stamp) < dt.timedelta(minutes=5)
    # a new load id loads again
    client.write("t", batches_of(table), mode="append", load_id="load-2")
    assert len(engine.ledger(engine.db(tmp_path))) == 2


def test_failed_write_records_no_load_id(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)

    def broken() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [1]})
        raise RuntimeError("stream broke")

    reader = pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), broken())
    with pytest.raises(RuntimeError, match="stream broke"):
        client.write("t", reader, mode="append", load_id="L")
    assert engine.ledger(engine.db(tmp_path)) == []
    assert client.write("t", batches_of(pa.table({"id": [1]})), load_id="L").rows == 1
    assert engine.ledger(engine.db(tmp_path))[0][0] == "L"


def test_concurrent_writers_with_one_load_id_load_once(engine: Engine, tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000))})
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(
                engine.client(tmp_path).write("t", batches_of(table, 100), load_id="same")
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(bool(r.details.get("already_loaded")) for r in results) == [False] + [True] * 3
    assert read_table(engine.client(tmp_path), "t").num_rows == 1000


# -- schema contracts ----------------------------------------------------------------------


def test_evolve_adds_columns_inside_the_transaction(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("t", batches_of(pa.table({"id": [1]})), mode="append")
    wider = pa.table({"id": pa.array([2], pa.int8()), "note": ["é"], "at": [dt.date(2024, 1, 1)]})
    result = client.write("t", batches_of(wider), mode="append")
    assert result.details["columns_added"] == ["note", "at"]
    got = read_table(client, "t", order_by=["id"])
    assert got.schema.types == [pa.int64(), pa.string(), pa.date32()]
    assert got.to_pylist()[1] == {"id": 2, "note": "é", "at": dt.date(2024, 1, 1)}

    def broken() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [3], "extra": [1.5]})
        raise RuntimeError("stream broke")

    schema = pa.schema([("id", pa.int64()), ("extra", pa.float64())])
    with pytest.raises(RuntimeError):
        client.write("t", pa.RecordBatchReader.from_batches(schema, broken()), mode="append")
    # the ALTER TABLE rolled back with the rows
    assert read_table(client, "t").column_names == ["id", "note", "at"]
    with pytest.raises(SchemaContractError) as info:
        client.write("t", batches_of(pa.table({"id": ["x"]})), mode="append")
    assert info.value.column == "id" and "int64" in info.value.message


def test_freeze_refuses_before_writing(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("t", batches_of(pa.table({"id": [1], "v": ["a"]})), mode="append")
    before = read_table(client, "t")
    for mode in ("append", "merge", "overwrite"):
        with pytest.raises(SchemaContractError) as info:
            client.write(
                "t",
                batches_of(pa.table({"id": [2], "v": ["b"], "new": [1]})),
                mode=mode,  # type: ignore[arg-type]
                keys=["id"],
                schema_contract="freeze",
                load_id=f"f-{mode}",
            )
        assert info.value.column == "new" and "`t`" in info.value.message
        with pytest.raises(SchemaContractError):
            client.write(
                "t",
                batches_of(pa.table({"id": ["nope"], "v": ["b"]})),
                mode=mode,  # type: ignore[arg-type]
                keys=["id"],
                schema_contract="freeze",
            )
    assert read_table(client, "t").equals(before)
    assert engine.ledger(engine.db(tmp_path)) == []
    ok = client.write(
        "t", batches_of(pa.table({"v": ["c"], "id": [3]})), mode="append", schema_contract="freeze"
    )
    assert ok.rows == 1


def test_discard_row_sends_rows_that_do_not_fit_to_rejects(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("t", batches_of(pa.table({"id": pa.array([1], pa.int64()), "v": ["a"]})))
    sink = ListRejectSink()
    incoming = pa.table(
        {
            "id": pa.array([2, 3, 4, 2**40], pa.int64()),
            "v": ["b", "c", "d", "e"],
            "new": [None, "x", None, None],
        }
    )
    result = client.write("t", batches_of(incoming), schema_contract="discard_row", rejects=sink)
    assert result.rows == 3 and result.details["rows_rejected"] == 1
    (reject,) = sink.items
    assert json.loads(reject.raw_record) == {"id": 3, "v": "c", "new": "x"}
    assert "new" in reject.error and "discard_row" in reject.error
    assert read_table(client, "t").column_names == ["id", "v"]
    # values that do not cast: text into an integer column
    sink = ListRejectSink()
    bad = pa.table({"id": ["5", "six"], "v": ["f", "g"]})
    result = client.write(
        "t", batches_of(bad), mode="merge", keys=["id"], schema_contract="discard_row", rejects=sink
    )
    # text -> integer is cast value by value: "5" fits, "six" is rejected
    assert result.details["rows_rejected"] == 1 and result.rows == 1
    (reject,) = sink.items
    assert json.loads(reject.raw_record) == {"id": "six", "v": "g"}
    assert "id" in reject.error
    assert sorted(read_table(client, "t").column("id").to_pylist()) == [1, 2, 4, 5, 2**40]


def test_overwrite_contracts(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("t", batches_of(pa.table({"id": [1], "v": ["a"]})), mode="overwrite")
    # evolve replaces the table with the input's schema
    client.write("t", batches_of(pa.table({"x": [1.5]})), mode="overwrite")
    assert read_table(client, "t").column_names == ["x"]
    # discard_row keeps the table's columns and types
    sink = ListRejectSink()
    result = client.write(
        "t",
        batches_of(pa.table({"x": [2, 3], "y": ["no", None]})),
        mode="overwrite",
        schema_contract="discard_row",
        rejects=sink,
    )
    assert result.rows == 1 and len(sink.items) == 1
    got = read_table(client, "t")
    assert got.schema.types == [pa.float64()] and got.to_pylist() == [{"x": 3.0}]


# -- crashes -------------------------------------------------------------------------------


def _crash_script(engine: Engine) -> str:
    """A process that loads ``sys.argv[3]`` rows with ``sys.argv[2]`` into ``t`` of file argv[1]."""
    client, config = engine.client_class, engine.config_class
    return f"""
import sys, pyarrow as pa
from {client.__module__} import {client.__name__}
from {config.__module__} import {config.__name__}
client = {client.__name__}({config.__name__}(path=sys.argv[1]))
table = pa.table({{"id": list(range(int(sys.argv[3])))}})
result = client.write("t", pa.RecordBatchReader.from_batches(table.schema, table.to_batches(10)),
                      mode=sys.argv[2], keys=["id"] if sys.argv[2] == "merge" else None,
                      load_id="crash-load")
print(result.rows, bool(result.details.get("already_loaded")))
"""


@pytest.mark.parametrize(
    ("point", "mode"),
    [("load.before_commit", "append"), ("load.during_swap", "overwrite"),
     ("load.before_commit", "merge")],
)  # fmt: skip
def test_kill_at_crash_point_leaves_target_unchanged_and_rerun_loads_once(
    engine: Engine, tmp_path: Path, point: str, mode: str
) -> None:
    db = engine.db(tmp_path)
    engine.client(tmp_path).write("t", batches_of(pa.table({"id": [-1]})), mode="append")

    def run(crash: str | None, rows: int) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "HEADWATER_CRASH_AT"}
        if crash:
            env["HEADWATER_CRASH_AT"] = crash
        return subprocess.run(
            [sys.executable, "-c", _crash_script(engine), str(db), mode, str(rows)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    killed = run(point, 50)
    assert killed.returncode == -9, killed.stderr
    assert read_table(engine.client(tmp_path), "t").column("id").to_pylist() == [-1]
    assert engine.ledger(db) == []
    names = [s.name for s in engine.client(tmp_path).discover()]
    assert names == ["t"]  # no staging table survived
    done = run(None, 50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["50", "False"]
    again = run(None, 50)
    assert again.stdout.split() == ["50", "True"]
    ids = read_table(engine.client(tmp_path), "t").column("id").to_pylist()
    expected = list(range(50)) if mode == "overwrite" else [-1, *range(50)]
    assert sorted(ids) == expected


# -- identifiers ---------------------------------------------------------------------------

NAMES = ['we"ird', "back`tick", "semi;colon", "sp ace", "dot.ted", "é日本😀", "x'quote"]


@pytest.mark.parametrize("name", NAMES)
def test_identifiers_round_trip_through_write_discover_read_merge(
    engine: Engine, tmp_path: Path, name: str
) -> None:
    client = engine.client(tmp_path)
    key, col = f"{name}_key", f"{name} value"
    table = pa.table({key: [1, 2], col: ["a", "b"]})
    client.write(name, batches_of(table), mode="append", load_id=f"{name}-1")
    client.write(
        name, batches_of(pa.table({key: [2, 3], col: ["B", "c"]})), mode="merge", keys=[key]
    )
    (stream,) = [s for s in client.discover() if s.name == name]
    assert stream.schema is not None and stream.schema.names == [key, col]
    got = read_table(
        client, name, order_by=[key], predicate=f'"{key.replace(chr(34), 2 * chr(34))}" > 1'
    )
    assert got.to_pylist() == [{key: 2, col: "B"}, {key: 3, col: "c"}]
    assert client.column_bounds(name, key) == (1, 3)
    client.write(name, batches_of(table), mode="overwrite")
    assert read_table(client, name).num_rows == 2


def test_evil_names_do_nothing_evil(engine: Engine, tmp_path: Path) -> None:
    client = engine.client(tmp_path)
    client.write("victim", batches_of(pa.table({"id": [1]})))
    evil = 'x"; DROP TABLE victim; --'
    client.write(evil, batches_of(pa.table({evil: [1]})), mode="append")
    client.write(evil, batches_of(pa.table({evil: [1, 2]})), mode="merge", keys=[evil])
    client.write(evil, batches_of(pa.table({evil: [1]})), mode="overwrite")
    assert read_table(client, evil).column(evil).to_pylist() == [1]
    assert client.column_bounds(evil, evil, predicate="1 = 1") == (1, 1)
    assert sorted(s.name for s in client.discover()) == sorted(["victim", evil])
    assert read_table(client, "victim").num_rows == 1


# -- types (the connectors' own CASES say what each Arrow type reads back as) --------------


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Case:
    """An Arrow type, values of it, and what they read back as."""

    type: pa.DataType
    values: st.SearchStrategy[Any]
    read_type: pa.DataType
    expect: Callable[[Any], Any] = _same


def decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Decimals of exactly this precision and scale, the extremes included (built from
    integers: Decimal arithmetic would round at its default 28 digits)."""
    top = 10**precision - 1
    ints = st.one_of(st.sampled_from([top, -top, 0, 1, -1]), st.integers(-top, top))
    return ints.map(lambda i: Decimal(f"{i}E-{scale}"))


def to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(UTC)


def int64s() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([-(2**63), 2**63 - 1, 0, -1]), st.integers(-(2**63), 2**63 - 1)
    )


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["😀👍🏽", "日本語", "é\u0301", "", " ", "'; DROP TABLE t; --", "a\x00b"]
)
STAMPS = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
ZONED = st.datetimes(
    dt.datetime(2, 1, 1),
    dt.datetime(9998, 12, 31),
    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata")]),
)


# the types both connectors store and read back alike (JSON and UUID read back as their
# text, as from postgres, and zoned timestamps as UTC: documented coercions); each
# connector's CASES adds the types it treats its own way
FILE_DATABASE_CASES: dict[str, Case] = {
    "int64": Case(pa.int64(), int64s(), pa.int64()),
    "decimal(38,9)": Case(pa.decimal128(38, 9), decimals(38, 9), pa.decimal128(38, 9)),
    "decimal(38,0)": Case(pa.decimal128(38, 0), decimals(38, 0), pa.decimal128(38, 0)),
    "decimal(10,2)": Case(pa.decimal128(10, 2), decimals(10, 2), pa.decimal128(10, 2)),
    "string": Case(pa.string(), TEXT, pa.string()),
    "large_string": Case(pa.large_string(), TEXT, pa.string()),
    "bool": Case(pa.bool_(), st.booleans(), pa.bool_()),
    "date32": Case(pa.date32(), st.dates(), pa.date32()),
    "timestamp[us]": Case(pa.timestamp("us"), STAMPS, pa.timestamp("us")),
    "timestamp[us, tz]": Case(
        pa.timestamp("us", tz="UTC"), ZONED, pa.timestamp("us", tz="UTC"), to_utc
    ),
    "timestamp[us, Europe/Paris]": Case(
        pa.timestamp("us", tz="Europe/Paris"), ZONED, pa.timestamp("us", tz="UTC"), to_utc
    ),
    "time64[us]": Case(pa.time64("us"), st.times(), pa.time64("us")),
    "binary": Case(pa.binary(), st.binary(max_size=40), pa.binary()),
    "large_binary": Case(pa.large_binary(), st.binary(max_size=40), pa.binary()),
    "uuid": Case(pa.uuid(), st.uuids().map(lambda u: u.bytes), pa.string(), str),
}


def write_read(client: Client, table: pa.Table, name: str) -> pa.Table:
    """``table`` written over table ``name`` in batches of 7 rows and read back by ``row``."""
    batches = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))
    result = client.write(name, batches, mode="overwrite")
    assert result.rows == table.num_rows
    return pa.Table.from_batches(list(client.read(name, order_by=["row"])))


def check_round_trip(client: Client, case: Case, *, max_examples: int, max_size: int) -> None:
    """Lists of ``case``'s values (and nulls) read back as the case says, discover too."""
    counter = iter(range(10**6))

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(st.none() | case.values, max_size=max_size))
    def check(values: list[Any]) -> None:
        table = pa.table(
            {
                "row": pa.array(range(len(values)), pa.int64()),
                "value": pa.array(values, case.type),
            }
        )
        got = write_read(client, table, f"t{next(counter)}")
        assert same_type(got.schema.field("value").type, case.read_type)
        expected = [
            None if v is None else case.expect(v) for v in table.column("value").to_pylist()
        ]
        assert _nan_safe(got.column("value").to_pylist()) == _nan_safe(expected)
        assert got.num_rows == len(values)

    check()
    # discover reports the type the read returns
    streams = {s.name: s for s in client.discover()}
    schema = streams["t0"].schema
    assert schema is not None and same_type(schema.field("value").type, case.read_type)


def check_empty_table(client: Client, cases: dict[str, Case]) -> None:
    """A table of every case's type and no rows reads back with every read type."""
    columns = {n.replace(" ", "_"): pa.array([], c.type) for n, c in cases.items()}
    got = write_read(client, pa.table({"row": pa.array([], pa.int64()), **columns}), "empty")
    assert got.num_rows == 0
    assert got.schema.field("row").type == pa.int64()
    for column, case in zip(list(got.schema)[1:], cases.values(), strict=True):
        assert same_type(column.type, case.read_type), column


def same_type(got: pa.DataType, expected: pa.DataType) -> bool:
    """Equal types; a list's child field may be named differently (DuckDB: after the column)."""
    if pa.types.is_list(got) and pa.types.is_list(expected):
        return same_type(got.value_type, expected.value_type)
    if pa.types.is_struct(got) and pa.types.is_struct(expected):
        return got.num_fields == expected.num_fields and all(
            got.field(i).name == expected.field(i).name
            and same_type(got.field(i).type, expected.field(i).type)
            for i in range(got.num_fields)
        )
    return bool(got == expected)


def _nan_safe(values: list[Any]) -> list[Any]:
    return ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in values]


# -- source and destination basics ---------------------------------------------------------

# values at the edges of the types both connectors store: unicode, exact decimals,
# timestamps naive and zoned, dates, booleans, floats and bytes, with nulls
SAMPLE = pa.table(
    {
        "id": pa.array([1, 2, 3, None], pa.int64()),
        "text": pa.array(["é😀 ünï", None, "", "日本語"], pa.string()),
        "amount": pa.array(
            [Decimal("12345678901234567890.123456789"), None, Decimal("-0.000000001"), Decimal(0)],
            pa.decimal128(38, 9),
        ),
        "at": pa.array(
            [
                dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
                None,
                dt.datetime(1900, 1, 1),
                dt.datetime(2038, 1, 19),
            ],
            pa.timestamp("us"),
        ),
        "at_tz": pa.array(
            [
                dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
                None,
                None,
                dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "day": pa.array([dt.date(2020, 2, 29), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
        "flag": pa.array([True, False, None, True]),
        "ratio": pa.array([1.5, None, float("inf"), -0.0]),
        "blob": pa.array([b"\x00\xff", None, b"", b"abc"]),
    }
)


WEIRD = 'we"ird; name'


def test_weird_identifiers_round_trip(engine: Engine, tmp_path: Path) -> None:
    table = pa.table(
        {'co"l; drop table x; --': [1, 2], "spaced name": ["a", "b"], "ünï": [1.0, 2.0]}
    )
    dest = engine.destination(tmp_path)
    dest.write(WEIRD, batches_of(table), mode="append")
    dest.write(WEIRD, batches_of(table), mode="overwrite")
    src = engine.source(tmp_path)
    assert [s.name for s in src.discover()] == [WEIRD]
    assert_table_equal(read_table(src, WEIRD), table)
    got = read_table(
        src, WEIRD, columns=['co"l; drop table x; --'], predicate="\"spaced name\" = 'b'"
    )
    assert got.to_pylist() == [{'co"l; drop table x; --': 2}]


def pushdown_source(engine: Engine, tmp_path: Path, *, ordered: bool) -> Source:
    """Columns, predicate and limit on a table, a predicate on a query; the source.

    ``ordered``: a scan without ORDER BY returns the rows in the order written.
    """
    table = pa.table({"id": list(range(100)), "grp": [f"g{i % 3}" for i in range(100)]})
    engine.destination(tmp_path).write("t", batches_of(table, 7), mode="append")
    src = engine.source(tmp_path)
    got = read_table(src, "t", columns=["id"], predicate="id >= 90 AND grp = 'g0'", limit=2)
    ids = got.column("id").to_pylist()
    assert got.column_names == ["id"] and (ids if ordered else sorted(ids)) == [90, 93]
    got = read_table(
        src,
        "ignored",
        options={"query": "SELECT grp, count(*) AS n FROM t GROUP BY grp"},
        predicate="n > 33",
    )
    assert got.to_pylist() == [{"grp": "g0", "n": 34}]
    return src


def failing(table: pa.Table, during: Callable[[], None] | None = None) -> pa.RecordBatchReader:
    """The first two rows of ``table``, then (after ``during``) a broken stream."""

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=2)[:1]
        if during is not None:
            during()
        raise RuntimeError("stream broke half-way")

    return pa.RecordBatchReader.from_batches(table.schema, batches())


def check_capabilities(engine: Engine) -> None:
    caps = get_connector(engine.name).capabilities
    assert caps.merge and caps.incremental and caps.partitioned and caps.idempotent
    assert caps.write_modes == ("append", "overwrite", "merge")


def check_not_a_database(engine: Engine, tmp_path: Path, name: str) -> None:
    """File ``name`` (text, not a database) fails clearly; a missing table names the others."""
    (tmp_path / name).write_text("this is not a database, just some text " * 100)
    bad = engine.source(tmp_path, name)
    with pytest.raises(ConnectorError, match=name):
        bad.check()
    with pytest.raises(ConnectorError, match=name):
        list(bad.read("t"))
    engine.destination(tmp_path).write("t", batches_of(pa.table({"id": [1]})), mode="append")
    with pytest.raises(SourceNotFoundError) as info:
        list(engine.source(tmp_path).read("tt"))
    assert info.value.hint and "Did you mean `t`?" in info.value.hint


# -- refusals and broken files -------------------------------------------------------------

# predicates that are not one expression (refused), or one with a bad literal (the
# database's own error); `id = 1 -- ` is one expression and a comment
ODD_PREDICATES = [
    "1 = 1; DROP TABLE events",
    "1=1) ; DROP TABLE events; SELECT (1",
    "SELECT 1",
    "id = 1 -- ",
    "\"updated_at\" > CAST('not a time' AS TIMESTAMP)",
]


def check_not_readable(client: Client, name: str) -> None:
    """Every action on a broken database file fails as a Terminal SourceFormatError."""
    for action in (client.check, client.discover, lambda: read_table(client, "t")):
        with pytest.raises(SourceFormatError) as info:
            action()
        assert isinstance(info.value, Terminal) and name in info.value.message
        assert info.value.hint
    with pytest.raises(SourceFormatError):
        client.write("t", batches_of(pa.table({"id": [1]})))


def check_missing_directory(engine: Engine, tmp_path: Path) -> None:
    """A file in a missing directory: reads say so, a write creates the directory."""
    missing = engine.client(tmp_path, f"no/such/dir/x.{engine.suffix}")
    with pytest.raises(SourceNotFoundError, match="directory does not exist"):
        read_table(missing, "t")
    with pytest.raises(SourceNotFoundError):
        missing.column_bounds("t", "id")
    assert missing.write("t", batches_of(pa.table({"id": [1]}))).rows == 1
