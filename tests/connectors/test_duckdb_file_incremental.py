"""duckdb: predicate/order_by/column_bounds pushdown, merge, load ids, schema contracts, crashes.

The tests both file connectors share live in :mod:`tests.connectors.sql_file_cases`
(run here on DuckDB through the ``engine`` fixture); this module keeps what is DuckDB's own.

Predicates are checked against DuckDB's evaluation of the same expression on the same Arrow
rows in memory (the file connector must not change their meaning when it re-renders them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.connectors.duckdb_file.client import DuckdbClient, render_predicate
from headwater.errors import (
    ConnectorUnavailableError,
    QueryError,
    Transient,
)
from tests.connectors.sql_file_cases import *  # noqa: F403 (the shared tests)
from tests.connectors.sql_file_cases import (
    DUCKDB,
    EVENTS,
    ODD_PREDICATES,
    Engine,
    batches_of,
    check_missing_directory,
    check_not_readable,
    read_table,
)


@pytest.fixture
def engine() -> Engine:
    return DUCKDB


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


@pytest.mark.parametrize("predicate", ODD_PREDICATES)
def test_predicate_is_one_expression_or_refused(events: DuckdbClient, predicate: str) -> None:
    try:
        rows = read_table(events, "events", predicate=predicate).num_rows
    except QueryError as exc:
        # parse errors name the predicate; a bad literal is DuckDB's own conversion error
        assert (exc.field == "predicate" and repr(predicate) in exc.message) or (
            "not a time" in exc.message and "events" in exc.message
        )
    else:
        assert rows == 1  # `id = 1 -- ` is one expression and a comment
    assert read_table(events, "events").num_rows == EVENTS.num_rows


_HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(30)
"""


def test_file_held_by_another_process_is_transient(tmp_path: Path) -> None:
    client = DUCKDB.client(tmp_path)
    client.write("t", batches_of(pa.table({"id": [1]})))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(tmp_path / "db.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(ConnectorUnavailableError) as info:
            client.write("t", batches_of(pa.table({"id": [2]})), load_id="locked")
        assert isinstance(info.value, Transient) and "db.duckdb" in info.value.message
        with pytest.raises(ConnectorUnavailableError):
            read_table(client, "t")
    finally:
        holder.kill()
        holder.wait()
    assert client.write("t", batches_of(pa.table({"id": [2]})), load_id="locked").rows == 1


def test_corrupted_file_and_missing_directory_give_clear_errors(tmp_path: Path) -> None:
    good = DUCKDB.client(tmp_path, "good.duckdb")
    good.write("t", batches_of(pa.table({"id": list(range(5000))}), 1000))
    raw = bytearray((tmp_path / "good.duckdb").read_bytes())
    raw[0:4096] = b"\xff" * 4096  # the main header: garbage
    (tmp_path / "bad.duckdb").write_bytes(bytes(raw))
    (tmp_path / "text.duckdb").write_text("not a database " * 1000)
    for name in ("bad.duckdb", "text.duckdb"):
        check_not_readable(DUCKDB.client(tmp_path, name), name)
    check_missing_directory(DUCKDB, tmp_path)
