"""sqlite: predicate/order_by/column_bounds pushdown, merge, load ids, schema contracts, crashes.

The tests both file connectors share live in :mod:`tests.connectors.sql_file_cases`
(run here on SQLite through the ``engine`` fixture); this module keeps what is SQLite's own.

Predicates are checked against DuckDB itself: the same DuckDB expression is evaluated on
the same Arrow rows in memory, and the rows SQLite returns must be exactly those.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from headwater.connectors.sqlite.client import SqliteClient
from headwater.connectors.sqlite.predicate import to_sqlite
from headwater.errors import (
    ConnectorUnavailableError,
    QueryError,
    Transient,
)
from tests.connectors.sql_file_cases import *  # noqa: F403 (the shared tests)
from tests.connectors.sql_file_cases import (
    EVENTS,
    ODD_PREDICATES,
    SQLITE,
    Engine,
    batches_of,
    check_missing_directory,
    check_not_readable,
    read_table,
)


@pytest.fixture
def engine() -> Engine:
    return SQLITE


def test_predicate_rendering_for_sqlite() -> None:
    ts, tz = pa.timestamp("us"), pa.timestamp("us", tz="UTC")
    types = {"updated_at": ts, "at_tz": tz, "day": pa.date32(), "amount": pa.decimal128(10, 2)}
    cases = {
        "\"updated_at\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)": (
            "(\"updated_at\" >= '2024-01-01 10:00:00.000000')"
        ),
        '"id" >= 100 AND "id" < 200': '("id" >= 100 AND "id" < 200)',
        "(\"at_tz\" >= CAST('2024-01-01 10:00:00+02:00' AS TIMESTAMPTZ))": (
            "((\"at_tz\" >= '2024-01-01 08:00:00.000000Z'))"
        ),
        "\"k\" > 'abc'": "(\"k\" > 'abc')",
        "\"amount\" >= CAST('12.50' AS DECIMAL(10,2))": (
            "(\"amount\" >= CAST('12.50' AS REAL(10, 2)))"
        ),
        "\"day\" >= CAST('2024-01-01' AS DATE)": "(\"day\" >= '2024-01-01')",
        # a naive literal against a zoned column is UTC; a date against a timestamp, midnight
        "\"at_tz\" >= CAST('2024-01-01 10:00:00' AS TIMESTAMP)": (
            "(\"at_tz\" >= '2024-01-01 10:00:00.000000Z')"
        ),
        "\"updated_at\" < DATE '2024-01-02'": "(\"updated_at\" < '2024-01-02 00:00:00.000000')",
    }
    for predicate, rendered in cases.items():
        assert to_sqlite(predicate, types) == rendered


@pytest.mark.parametrize("predicate", ODD_PREDICATES)
def test_predicate_is_one_expression_or_refused(events: SqliteClient, predicate: str) -> None:
    try:
        rows = read_table(events, "events", predicate=predicate).num_rows
    except QueryError as exc:
        assert exc.field == "predicate" and repr(predicate) in exc.message
    else:
        assert rows == 1  # `id = 1 -- ` is one expression and a comment
    assert read_table(events, "events").num_rows == EVENTS.num_rows


def test_locked_database_is_transient_and_fails_fast(tmp_path: Path) -> None:
    client = SQLITE.client(tmp_path, timeout=0.2)
    client.write("t", batches_of(pa.table({"id": [1]})))
    # the lock holder uses the driver's SQLite (a second SQLite library in one process
    # would not see its POSIX locks)
    import adbc_driver_sqlite.dbapi as adbc

    holder = adbc.connect(str(tmp_path / "db.sqlite"), autocommit=True)
    cur = holder.cursor()
    cur.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ConnectorUnavailableError) as info:
            client.write("t", batches_of(pa.table({"id": [2]})), load_id="locked")
        assert isinstance(info.value, Transient) and "locked" in info.value.message
        with pytest.raises(ConnectorUnavailableError):
            read_table(client, "t")
    finally:
        cur.execute("ROLLBACK")
        cur.close()
        holder.close()
    assert client.write("t", batches_of(pa.table({"id": [2]})), load_id="locked").rows == 1


def test_corrupted_file_and_missing_directory_give_clear_errors(tmp_path: Path) -> None:
    good = SQLITE.client(tmp_path, "good.sqlite")
    good.write("t", batches_of(pa.table({"id": list(range(5000))}), 1000))
    raw = bytearray((tmp_path / "good.sqlite").read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # the schema page: header intact, content garbage
    (tmp_path / "bad.sqlite").write_bytes(bytes(raw))
    check_not_readable(SQLITE.client(tmp_path, "bad.sqlite"), "bad.sqlite")
    check_missing_directory(SQLITE, tmp_path)
