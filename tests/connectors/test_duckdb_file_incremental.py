"""duckdb: predicate/order_by/column_bounds pushdown, merge, load ids, schema contracts, crashes.

Predicates are checked against DuckDB's evaluation of the same expression on the same Arrow
rows in memory (the file connector must not change their meaning when it re-renders them).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headwater.connectors.base import ListRejectSink
from headwater.connectors.contract import SchemaContractError
from headwater.connectors.duckdb_file.client import DuckdbClient, render_predicate
from headwater.connectors.duckdb_file.factory import DuckdbConfig
from headwater.connectors.registry import get_connector
from headwater.errors import (
    ConfigError,
    ConnectorUnavailableError,
    QueryError,
    SchemaIncompatibleError,
    SourceFormatError,
    SourceNotFoundError,
    Terminal,
    Transient,
)

UTC = dt.UTC


def _client(tmp_path: Path, name: str = "db.duckdb", **kw: Any) -> DuckdbClient:
    config = DuckdbConfig(path=name, base_dir=str(tmp_path), **kw)
    client = get_connector("duckdb").destination(config)
    assert isinstance(client, DuckdbClient)
    return client


def _reader(table: pa.Table, max_rows: int = 2) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=max_rows))


def _read(client: DuckdbClient, stream: str, **kwargs: Any) -> pa.Table:
    return pa.Table.from_batches(list(client.read(stream, **kwargs)))


def _untouchable(schema: pa.Schema) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        raise AssertionError("the input of an already loaded load id was read")
        yield  # pragma: no cover

    return pa.RecordBatchReader.from_batches(schema, batches())


def _connect(db: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    return duckdb.connect(str(db), read_only=read_only, config=config)


def _ledger(db: Path) -> list[tuple[Any, ...]]:
    con = _connect(db)
    try:
        return con.execute(
            'SELECT load_id, target_table, mode, "rows", committed_at FROM _headwater_loads '
            "ORDER BY committed_at"
        ).fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


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
def events(tmp_path: Path) -> DuckdbClient:
    client = _client(tmp_path)
    client.write("events", _reader(EVENTS, 3), mode="overwrite")
    return client


@pytest.mark.parametrize("predicate", PREDICATES)
def test_predicate_filters_exactly_as_duckdb_does(events: DuckdbClient, predicate: str) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", EVENTS)
    expected = sorted(
        r[0] for r in con.execute(f"SELECT id FROM events WHERE {predicate}").fetchall()
    )
    con.close()
    got = _read(events, "events", columns=["id"], predicate=predicate)
    assert sorted(got.column("id").to_pylist()) == expected
    # the same predicate over a query (no declared types: the cast type decides)
    query = _read(
        events,
        "q",
        options={"query": "SELECT id, updated_at, at_tz, amount, day, k FROM events"},
        predicate=predicate,
    )
    assert sorted(query.column("id").to_pylist()) == expected


def test_predicate_rendering_keeps_duckdb_meaning() -> None:
    cases = {
        "\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)": (
            "(\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP))"
        ),
        '"id" >= 100 AND "id" < 200': '("id" >= 100 AND "id" < 200)',
        "(\"at_tz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ))": (
            "((\"at_tz\" >= CAST('2024-01-01 10:00:00+00:00' AS TIMESTAMPTZ)))"
        ),
        "\"k\" > 'abc'": "(\"k\" > 'abc')",
        "\"amount\" >= CAST('12.50' AS DECIMAL(10,2))": (
            "(\"amount\" >= CAST('12.50' AS DECIMAL(10, 2)))"
        ),
        "\"day\" >= CAST('2024-01-01' AS DATE)": "(\"day\" >= CAST('2024-01-01' AS DATE))",
    }
    for predicate, rendered in cases.items():
        assert render_predicate(predicate) == rendered


@pytest.mark.parametrize(
    "predicate",
    [
        "1 = 1; DROP TABLE events",
        "1=1) ; DROP TABLE events; SELECT (1",
        "SELECT 1",
        "id = 1 -- ",
        "\"updated_at\" > CAST('not a time' AS TIMESTAMP)",
    ],
)
def test_predicate_is_one_expression_or_refused(events: DuckdbClient, predicate: str) -> None:
    try:
        rows = _read(events, "events", predicate=predicate).num_rows
    except QueryError as exc:
        # parse errors name the predicate; a bad literal is DuckDB's own conversion error
        assert (exc.field == "predicate" and repr(predicate) in exc.message) or (
            "not a time" in exc.message and "events" in exc.message
        )
    else:
        assert rows == 1  # `id = 1 -- ` is one expression and a comment
    assert _read(events, "events").num_rows == EVENTS.num_rows


# -- order_by ------------------------------------------------------------------------------


def test_order_by_nulls_last_with_predicate_and_limit(events: DuckdbClient) -> None:
    got = _read(events, "events", columns=["id"], order_by=["day", "id"])
    assert got.column("id").to_pylist() == [6, 1, 2, 5, 3, 8, 7, 4]  # NULL day last
    # decimals sort by value, not as text ('-100.00' < '0.00' < '12.49' < '9.99' as text)
    got = _read(events, "events", columns=["amount"], order_by=["amount"])
    values = got.column("amount").to_pylist()
    assert values[:-1] == sorted(v for v in values if v is not None) and values[-1] is None
    got = _read(
        events,
        "events",
        columns=["id", "updated_at"],
        predicate="\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)",
        order_by=["updated_at"],
        limit=2,
    )
    assert got.column("id").to_pylist() == [2, 3]
    got = _read(events, "events", columns=["id"], order_by=["at_tz"], limit=3)
    assert got.column("id").to_pylist() == [6, 4, 1]
    got = _read(events, "q", options={"query": "SELECT id, k FROM events"}, order_by=["k"])
    assert got.column("k").to_pylist()[-1] is None
    with pytest.raises(SourceNotFoundError) as info:
        _read(events, "events", order_by=["nope"])
    assert info.value.column == "nope"


# -- column_bounds -------------------------------------------------------------------------


def test_column_bounds_types_predicates_and_queries(events: DuckdbClient) -> None:
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
    client.write("empty", _reader(EVENTS.slice(0, 0)), mode="overwrite")
    assert b("empty", "updated_at") == (None, None)


# -- merge ---------------------------------------------------------------------------------


def test_merge_upserts_last_occurrence_wins_and_soft_deletes(tmp_path: Path) -> None:
    client = _client(tmp_path)
    base = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "n": [10, 20, 30]})
    first = client.write("m", _reader(base), mode="merge", keys=["id"])
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
        "m", _reader(change), mode="merge", keys=["id"], options={"soft_delete_column": "deleted"}
    )
    d = result.details
    assert (d["inserted"], d["updated"], d["deleted"], d["duplicates"]) == (1, 1, 1, 1)
    assert result.rows == 4
    got = _read(client, "m", order_by=["id"]).to_pylist()
    assert got == [
        {"id": 1, "name": "a", "n": 10},
        {"id": 2, "name": "b2", "n": 22},
        {"id": 4, "name": "d", "n": 40},
    ]
    # composite keys, keys-only input
    client.write("c", _reader(pa.table({"a": [1, 1], "b": ["x", "y"]})), mode="append")
    client.write(
        "c", _reader(pa.table({"a": [1, 2], "b": ["y", "z"]})), mode="merge", keys=["a", "b"]
    )
    assert sorted(map(tuple, (r.values() for r in _read(client, "c").to_pylist()))) == [
        (1, "x"),
        (1, "y"),
        (2, "z"),
    ]


def test_merge_refusals_write_nothing(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("m", _reader(pa.table({"id": [1], "v": ["a"]})), mode="append")
    with pytest.raises(SchemaIncompatibleError, match="null"):
        client.write(
            "m", _reader(pa.table({"id": [2, None], "v": ["b", "c"]}), 1), mode="merge", keys=["id"]
        )
    with pytest.raises(ConfigError, match="keys"):
        client.write("m", _reader(pa.table({"id": [2]})), mode="merge")
    with pytest.raises(ConfigError, match="nope"):
        client.write("m", _reader(pa.table({"id": [2]})), mode="merge", keys=["nope"])
    with pytest.raises(ConfigError, match="boolean"):
        client.write(
            "m",
            _reader(pa.table({"id": [2], "v": ["x"]})),
            mode="merge",
            keys=["id"],
            options={"soft_delete_column": "v"},
        )
    assert _read(client, "m").to_pylist() == [{"id": 1, "v": "a"}]


def test_merge_speed_and_correctness_on_50k_rows(tmp_path: Path) -> None:
    client = _client(tmp_path)
    n = 50_000
    client.write("big", _reader(pa.table({"id": range(n), "v": [0] * n}), 10_000), mode="append")
    change = pa.table({"id": range(n // 2, n + n // 2), "v": [1] * n})
    result = client.write("big", _reader(change, 10_000), mode="merge", keys=["id"])
    assert result.details["inserted"] == n // 2 and result.details["updated"] == n // 2
    con = _connect(tmp_path / "db.duckdb")
    assert con.execute("SELECT count(*), sum(v), count(DISTINCT id) FROM big").fetchone() == (
        n + n // 2,
        n,
        n + n // 2,
    )


# -- load ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_load_id_is_recorded_once_with_the_data(tmp_path: Path, mode: str) -> None:
    client = _client(tmp_path)
    table = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    keys = ["id"] if mode == "merge" else None
    first = client.write("t", _reader(table), mode=mode, keys=keys, load_id="load-1")  # type: ignore[arg-type]
    assert first.rows == 3 and first.details["load_id"] == "load-1"
    assert first.details["rows_rejected"] == 0 and "already_loaded" not in first.details
    again = client.write("t", _untouchable(table.schema), mode=mode, keys=keys, load_id="load-1")  # type: ignore[arg-type]
    assert again.rows == 3 and again.details["already_loaded"] is True
    assert _read(client, "t").num_rows == 3
    (row,) = _ledger(tmp_path / "db.duckdb")
    assert row[:4] == ("load-1", "t", mode, 3)
    stamp = row[4]
    assert abs(dt.datetime.now(UTC).replace(tzinfo=None) - stamp) < dt.timedelta(minutes=5)
    # a new load id loads again
    client.write("t", _reader(table), mode="append", load_id="load-2")
    assert len(_ledger(tmp_path / "db.duckdb")) == 2


def test_failed_write_records_no_load_id(tmp_path: Path) -> None:
    client = _client(tmp_path)

    def broken() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [1]})
        raise RuntimeError("stream broke")

    reader = pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), broken())
    with pytest.raises(RuntimeError, match="stream broke"):
        client.write("t", reader, mode="append", load_id="L")
    assert _ledger(tmp_path / "db.duckdb") == []
    assert client.write("t", _reader(pa.table({"id": [1]})), load_id="L").rows == 1
    assert _ledger(tmp_path / "db.duckdb")[0][0] == "L"


def test_concurrent_writers_with_one_load_id_load_once(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000))})
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(_client(tmp_path).write("t", _reader(table, 100), load_id="same"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(bool(r.details.get("already_loaded")) for r in results) == [False] + [True] * 3
    assert _read(_client(tmp_path), "t").num_rows == 1000


# -- schema contracts ----------------------------------------------------------------------


def test_evolve_adds_columns_inside_the_transaction(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("t", _reader(pa.table({"id": [1]})), mode="append")
    wider = pa.table({"id": pa.array([2], pa.int8()), "note": ["é"], "at": [dt.date(2024, 1, 1)]})
    result = client.write("t", _reader(wider), mode="append")
    assert result.details["columns_added"] == ["note", "at"]
    got = _read(client, "t", order_by=["id"])
    assert got.schema.types == [pa.int64(), pa.string(), pa.date32()]
    assert got.to_pylist()[1] == {"id": 2, "note": "é", "at": dt.date(2024, 1, 1)}

    def broken() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [3], "extra": [1.5]})
        raise RuntimeError("stream broke")

    schema = pa.schema([("id", pa.int64()), ("extra", pa.float64())])
    with pytest.raises(RuntimeError):
        client.write("t", pa.RecordBatchReader.from_batches(schema, broken()), mode="append")
    # the ALTER TABLE rolled back with the rows
    assert _read(client, "t").column_names == ["id", "note", "at"]
    with pytest.raises(SchemaContractError) as info:
        client.write("t", _reader(pa.table({"id": ["x"]})), mode="append")
    assert info.value.column == "id" and "int64" in info.value.message


def test_freeze_refuses_before_writing(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("t", _reader(pa.table({"id": [1], "v": ["a"]})), mode="append")
    before = _read(client, "t")
    for mode in ("append", "merge", "overwrite"):
        with pytest.raises(SchemaContractError) as info:
            client.write(
                "t",
                _reader(pa.table({"id": [2], "v": ["b"], "new": [1]})),
                mode=mode,  # type: ignore[arg-type]
                keys=["id"],
                schema_contract="freeze",
                load_id=f"f-{mode}",
            )
        assert info.value.column == "new" and "`t`" in info.value.message
        with pytest.raises(SchemaContractError):
            client.write(
                "t",
                _reader(pa.table({"id": ["nope"], "v": ["b"]})),
                mode=mode,  # type: ignore[arg-type]
                keys=["id"],
                schema_contract="freeze",
            )
    assert _read(client, "t").equals(before)
    assert _ledger(tmp_path / "db.duckdb") == []
    ok = client.write(
        "t", _reader(pa.table({"v": ["c"], "id": [3]})), mode="append", schema_contract="freeze"
    )
    assert ok.rows == 1


def test_discard_row_sends_rows_that_do_not_fit_to_rejects(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("t", _reader(pa.table({"id": pa.array([1], pa.int64()), "v": ["a"]})))
    sink = ListRejectSink()
    incoming = pa.table(
        {
            "id": pa.array([2, 3, 4, 2**40], pa.int64()),
            "v": ["b", "c", "d", "e"],
            "new": [None, "x", None, None],
        }
    )
    result = client.write("t", _reader(incoming), schema_contract="discard_row", rejects=sink)
    assert result.rows == 3 and result.details["rows_rejected"] == 1
    (reject,) = sink.items
    assert json.loads(reject.raw_record) == {"id": 3, "v": "c", "new": "x"}
    assert "new" in reject.error and "discard_row" in reject.error
    assert _read(client, "t").column_names == ["id", "v"]
    # values that do not cast: text into an integer column
    sink = ListRejectSink()
    bad = pa.table({"id": ["5", "six"], "v": ["f", "g"]})
    result = client.write(
        "t", _reader(bad), mode="merge", keys=["id"], schema_contract="discard_row", rejects=sink
    )
    # text -> integer is cast value by value: "5" fits, "six" is rejected
    assert result.details["rows_rejected"] == 1 and result.rows == 1
    (reject,) = sink.items
    assert json.loads(reject.raw_record) == {"id": "six", "v": "g"}
    assert "id" in reject.error
    assert sorted(_read(client, "t").column("id").to_pylist()) == [1, 2, 4, 5, 2**40]


def test_overwrite_contracts(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("t", _reader(pa.table({"id": [1], "v": ["a"]})), mode="overwrite")
    # evolve replaces the table with the input's schema
    client.write("t", _reader(pa.table({"x": [1.5]})), mode="overwrite")
    assert _read(client, "t").column_names == ["x"]
    # discard_row keeps the table's columns and types
    sink = ListRejectSink()
    result = client.write(
        "t",
        _reader(pa.table({"x": [2, 3], "y": ["no", None]})),
        mode="overwrite",
        schema_contract="discard_row",
        rejects=sink,
    )
    assert result.rows == 1 and len(sink.items) == 1
    got = _read(client, "t")
    assert got.schema.types == [pa.float64()] and got.to_pylist() == [{"x": 3.0}]


# -- crashes -------------------------------------------------------------------------------

_CRASH_SCRIPT = """
import sys, pyarrow as pa
from headwater.connectors.duckdb_file.client import DuckdbClient
from headwater.connectors.duckdb_file.factory import DuckdbConfig
client = DuckdbClient(DuckdbConfig(path=sys.argv[1]))
table = pa.table({"id": list(range(int(sys.argv[3])))})
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
    tmp_path: Path, point: str, mode: str
) -> None:
    db = tmp_path / "db.duckdb"
    _client(tmp_path).write("t", _reader(pa.table({"id": [-1]})), mode="append")

    def run(crash: str | None, rows: int) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "HEADWATER_CRASH_AT"}
        if crash:
            env["HEADWATER_CRASH_AT"] = crash
        return subprocess.run(
            [sys.executable, "-c", _CRASH_SCRIPT, str(db), mode, str(rows)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    killed = run(point, 50)
    assert killed.returncode == -9, killed.stderr
    assert _read(_client(tmp_path), "t").column("id").to_pylist() == [-1]
    assert _ledger(db) == []
    names = [s.name for s in _client(tmp_path).discover()]
    assert names == ["t"]  # no staging table survived
    done = run(None, 50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["50", "False"]
    again = run(None, 50)
    assert again.stdout.split() == ["50", "True"]
    ids = _read(_client(tmp_path), "t").column("id").to_pylist()
    expected = list(range(50)) if mode == "overwrite" else [-1, *range(50)]
    assert sorted(ids) == expected


# -- identifiers ---------------------------------------------------------------------------

NAMES = ['we"ird', "back`tick", "semi;colon", "sp ace", "dot.ted", "é日本😀", "x'quote"]


@pytest.mark.parametrize("name", NAMES)
def test_identifiers_round_trip_through_write_discover_read_merge(
    tmp_path: Path, name: str
) -> None:
    client = _client(tmp_path)
    key, col = f"{name}_key", f"{name} value"
    table = pa.table({key: [1, 2], col: ["a", "b"]})
    client.write(name, _reader(table), mode="append", load_id=f"{name}-1")
    client.write(name, _reader(pa.table({key: [2, 3], col: ["B", "c"]})), mode="merge", keys=[key])
    (stream,) = [s for s in client.discover() if s.name == name]
    assert stream.schema is not None and stream.schema.names == [key, col]
    got = _read(
        client, name, order_by=[key], predicate=f'"{key.replace(chr(34), 2 * chr(34))}" > 1'
    )
    assert got.to_pylist() == [{key: 2, col: "B"}, {key: 3, col: "c"}]
    assert client.column_bounds(name, key) == (1, 3)
    client.write(name, _reader(table), mode="overwrite")
    assert _read(client, name).num_rows == 2


def test_evil_names_do_nothing_evil(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("victim", _reader(pa.table({"id": [1]})))
    evil = 'x"; DROP TABLE victim; --'
    client.write(evil, _reader(pa.table({evil: [1]})), mode="append")
    client.write(evil, _reader(pa.table({evil: [1, 2]})), mode="merge", keys=[evil])
    client.write(evil, _reader(pa.table({evil: [1]})), mode="overwrite")
    assert _read(client, evil).column(evil).to_pylist() == [1]
    assert client.column_bounds(evil, evil, predicate="1 = 1") == (1, 1)
    assert sorted(s.name for s in client.discover()) == sorted(["victim", evil])
    assert _read(client, "victim").num_rows == 1


# -- files ---------------------------------------------------------------------------------


_HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(30)
"""


def test_file_held_by_another_process_is_transient(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.write("t", _reader(pa.table({"id": [1]})))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(tmp_path / "db.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(ConnectorUnavailableError) as info:
            client.write("t", _reader(pa.table({"id": [2]})), load_id="locked")
        assert isinstance(info.value, Transient) and "db.duckdb" in info.value.message
        with pytest.raises(ConnectorUnavailableError):
            _read(client, "t")
    finally:
        holder.kill()
        holder.wait()
    assert client.write("t", _reader(pa.table({"id": [2]})), load_id="locked").rows == 1


def test_corrupted_file_and_missing_directory_give_clear_errors(tmp_path: Path) -> None:
    good = _client(tmp_path, "good.duckdb")
    good.write("t", _reader(pa.table({"id": list(range(5000))}), 1000))
    raw = bytearray((tmp_path / "good.duckdb").read_bytes())
    raw[0:4096] = b"\xff" * 4096  # the main header: garbage
    (tmp_path / "bad.duckdb").write_bytes(bytes(raw))
    (tmp_path / "text.duckdb").write_text("not a database " * 1000)
    for name in ("bad.duckdb", "text.duckdb"):
        bad = _client(tmp_path, name)
        for action in (bad.check, bad.discover, lambda: _read(bad, "t")):  # noqa: B023
            with pytest.raises(SourceFormatError) as info:
                action()
            assert isinstance(info.value, Terminal) and name in info.value.message
            assert info.value.hint
        with pytest.raises(SourceFormatError):
            bad.write("t", _reader(pa.table({"id": [1]})))
    missing = _client(tmp_path, "no/such/dir/x.duckdb")
    with pytest.raises(SourceNotFoundError, match="directory does not exist"):
        _read(missing, "t")
    with pytest.raises(SourceNotFoundError):
        missing.column_bounds("t", "id")
    # a destination creates the directory
    assert missing.write("t", _reader(pa.table({"id": [1]}))).rows == 1
