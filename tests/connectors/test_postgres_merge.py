"""``mode: merge`` of the postgres destination against a real PostgreSQL (``postgres_url``)."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import WriteResult
from headwater.connectors.postgres.factory import PostgresConfig, PostgresFactory
from headwater.errors import (
    ConfigError,
    DatasetConflictError,
    SchemaIncompatibleError,
    UnsupportedOperationError,
)


@pytest.fixture
def config(postgres_url: str) -> PostgresConfig:
    return PostgresConfig(url=postgres_url)


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def unique(prefix: str = "m") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def merge(
    config: PostgresConfig,
    target: str,
    table: pa.Table,
    keys: list[str] | None,
    options: dict[str, Any] | None = None,
) -> WriteResult:
    dst = PostgresFactory().destination(config)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))
    return dst.write(target, reader, mode="merge", keys=keys, options=options)


def rows(url: str, table: str, order: str = "1") -> list[tuple[Any, ...]]:
    return sql(url, f'SELECT * FROM "{table}" ORDER BY {order}')


def test_capabilities_declare_merge() -> None:
    caps = PostgresFactory.capabilities
    assert caps.merge and "merge" in caps.write_modes


def test_merge_into_a_missing_table_creates_it(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    data = pa.table({"id": pa.array([1, 2, 3], pa.int32()), "v": ["a", "b", "c"]})
    result = merge(config, name, data, ["id"])
    assert result.rows == 3
    assert result.details["inserted"] == 3 and result.details["updated"] == 0
    assert rows(postgres_url, name) == [(1, "a"), (2, "b"), (3, "c")]
    types = sql(
        postgres_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position",
        (name,),
    )
    assert types == [("id", "integer"), ("v", "text")]


def test_merge_into_an_empty_table(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    sql(postgres_url, f'CREATE TABLE "{name}" (id bigint, v text, extra int DEFAULT 7)')
    result = merge(config, name, pa.table({"id": [2, 1], "v": ["b", "a"]}), ["id"])
    assert result.rows == 2 and result.details["inserted"] == 2
    assert rows(postgres_url, name) == [(1, "a", 7), (2, "b", 7)]


def test_update_existing_and_insert_new(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    sql(postgres_url, f'CREATE TABLE "{name}" (id bigint, v text, n numeric(10,2), keep text)')
    sql(postgres_url, f"INSERT INTO \"{name}\" VALUES (1, 'a', 1.5, 'k1'), (2, 'b', 2.5, 'k2')")
    data = pa.table(
        {
            "id": [2, 3, 4],
            "v": ["B", None, "d"],
            "n": pa.array([None, Decimal(3), Decimal(4)], pa.decimal128(8, 1)),
        }
    )
    result = merge(config, name, data, ["id"])
    assert result.rows == 3
    assert {k: result.details[k] for k in ("inserted", "updated", "deleted")} == {
        "inserted": 2,
        "updated": 1,
        "deleted": 0,
    }
    assert rows(postgres_url, name) == [
        (1, "a", Decimal("1.50"), "k1"),  # untouched
        (2, "B", None, "k2"),  # updated; a column the data lacks keeps its value
        (3, None, Decimal("3.00"), None),
        (4, "d", Decimal("4.00"), None),
    ]


def test_duplicate_keys_in_one_stream_last_wins(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    merge(config, name, pa.table({"id": [1, 2], "v": ["old1", "old2"]}), ["id"])
    # batches of 2 rows: the duplicates of 1 span several batches
    data = pa.table({"id": [1, 3, 1, 3, 2, 1], "v": ["x", "y", "z", "w", "two", "last"]})
    result = merge(config, name, data, ["id"])
    assert result.rows == 3 and result.details["duplicates"] == 3
    assert result.details["inserted"] == 1 and result.details["updated"] == 2
    assert rows(postgres_url, name) == [(1, "last"), (2, "two"), (3, "w")]


def test_keys_increasing_for_a_while_then_repeating_last_wins(
    config: PostgresConfig, postgres_url: str
) -> None:
    """The keys of increasing batches are not kept: a key repeated after the stream stops
    increasing is still de-duplicated (by PostgreSQL), the last occurrence winning."""
    name = unique()
    merge(config, name, pa.table({"id": [2], "v": ["old2"]}), ["id"])
    # batches of 2: [1, 2] [3, 4] increase; [2, 5] breaks the order and repeats 2; [1, 6]
    data = pa.table({"id": [1, 2, 3, 4, 2, 5, 1, 6], "v": list("abcdefgh")})
    result = merge(config, name, data, ["id"])
    assert result.rows == 6 and result.details["duplicates"] == 2
    assert result.details["inserted"] == 5 and result.details["updated"] == 1
    assert rows(postgres_url, name) == [
        (1, "g"), (2, "e"), (3, "c"), (4, "d"), (5, "f"), (6, "h")
    ]  # fmt: skip


def test_composite_keys(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    first = pa.table({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [10, 20, 30]})
    merge(config, name, first, ["a", "b"])
    second = pa.table({"a": [1, 2, 2], "b": ["y", "x", "y"], "v": [21, 31, 40]})
    result = merge(config, name, second, ["a", "b"])
    assert result.details["inserted"] == 1 and result.details["updated"] == 2
    assert rows(postgres_url, name, "1, 2") == [
        (1, "x", 10),
        (1, "y", 21),
        (2, "x", 31),
        (2, "y", 40),
    ]


def test_weird_identifiers(config: PostgresConfig, postgres_url: str) -> None:
    name = 'we"ird; tab le ✓'
    key, col, flag = 'k"ey; DROP TABLE x', "välue 🎉", 'de"l'
    data = pa.table({key: [1, 2], col: ["a", "b"], "t": [1, 1], "s": [2, 2]})
    merge(config, name, data, [key])
    data2 = pa.table({key: [2, 3, 1], col: ["B", "c", None], "t": [5, 5, 5], "s": [6, 6, 6]})
    data2 = data2.append_column(flag, pa.array([False, None, True]))
    result = merge(config, name, data2, [key], {"soft_delete_column": flag})
    assert result.details == {
        "mode": "merge",
        "strategy": "merge",
        "strategy_reason": "the table holds fewer than 100,000 rows",
        "keys": [key],
        "inserted": 1,
        "updated": 1,
        "deleted": 1,
        "duplicates": 0,
        "changed": 1,
        "rows_rejected": 0,
    }
    got = sql(postgres_url, 'SELECT * FROM "we""ird; tab le ✓" ORDER BY 1')
    assert got == [(2, "B", 5, 6), (3, "c", 5, 6)]


def test_soft_delete(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    merge(config, name, pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}), ["id"])
    data = pa.table(
        {
            "id": [1, 2, 4, 5, 3, 3],
            "v": ["gone", "B", "never", "e", "c-upd", "c-gone"],
            "is_deleted": [True, False, True, None, False, True],  # 3: last occurrence wins
        }
    )
    result = merge(config, name, data, ["id"], {"soft_delete_column": "is_deleted"})
    assert result.rows == 5
    assert {k: result.details[k] for k in ("inserted", "updated", "deleted")} == {
        "inserted": 1,
        "updated": 1,
        "deleted": 2,
    }
    # the flag is not a column of the table: it only steers the merge
    assert rows(postgres_url, name) == [(2, "B"), (5, "e")]


def test_soft_delete_column_kept_when_the_table_has_it(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    opts = {"soft_delete_column": "is_deleted"}
    merge(config, name, pa.table({"id": [1, 2], "is_deleted": [False, False]}), ["id"], opts)
    merge(config, name, pa.table({"id": [1, 3], "is_deleted": [True, None]}), ["id"], opts)
    assert rows(postgres_url, name) == [(2, False), (3, None)]


def test_null_key_is_refused_and_nothing_written(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    merge(config, name, pa.table({"id": [1], "v": ["a"]}), ["id"])
    data = pa.table({"id": [1, 2, 3, None], "v": ["x", "b", "c", "d"]})
    with pytest.raises(SchemaIncompatibleError, match="'id' is null in 1 incoming row"):
        merge(config, name, data, ["id"])
    assert rows(postgres_url, name) == [(1, "a")]


def test_keys_required_and_must_be_columns(config: PostgresConfig) -> None:
    data = pa.table({"id": [1], "value": [2]})
    with pytest.raises(ConfigError) as info:
        merge(config, unique(), data, None)
    assert "keys" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="'idd'") as info:
        merge(config, unique(), data, ["idd"])
    assert "id, value" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="boolean"):
        merge(config, unique(), data, ["id"], {"soft_delete_column": "value"})
    with pytest.raises(ConfigError, match="'nope'"):
        merge(config, unique(), data, ["id"], {"nope": 1})


def test_a_column_the_table_lacks_is_refused_or_added(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    sql(postgres_url, f'CREATE TABLE "{name}" (id bigint, v text)')
    dst = PostgresFactory().destination(config)
    data = pa.table({"id": [1], "extra": [1]})
    with pytest.raises(SchemaIncompatibleError, match="`extra`"):
        dst.write(name, data.to_reader(), mode="merge", keys=["id"], schema_contract="freeze")
    assert rows(postgres_url, name) == []
    # evolve (the default) adds the column in the merge's transaction
    result = merge(config, name, data, ["id"])
    assert result.details["columns_added"] == ["extra"]
    assert rows(postgres_url, name) == [(1, None, 1)]


def test_a_failed_stream_leaves_the_table_unchanged(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    merge(config, name, pa.table({"id": [1, 2], "v": ["a", "b"]}), ["id"])
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])

    def broken() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": [1, 3], "v": ["changed", "new"]}, schema=schema)
        yield pa.record_batch({"id": [2], "v": ["changed"]}, schema=schema)
        raise RuntimeError("source went away")

    dst = PostgresFactory().destination(config)
    with pytest.raises(RuntimeError, match="source went away"):
        dst.write(
            name, pa.RecordBatchReader.from_batches(schema, broken()), mode="merge", keys=["id"]
        )
    assert rows(postgres_url, name) == [(1, "a"), (2, "b")]
    temp = sql(postgres_url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'hw_merge_%'")
    assert temp == [(0,)]


def test_merging_the_same_data_twice_is_idempotent(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    sql(postgres_url, f'CREATE TABLE "{name}" (id bigint, v text)')
    sql(postgres_url, f"INSERT INTO \"{name}\" VALUES (1, 'a'), (5, 'e')")
    data = pa.table({"id": [1, 2, 3, 2], "v": ["A", "b", "c", "B"]})
    first = merge(config, name, data, ["id"])
    after_first = rows(postgres_url, name)
    second = merge(config, name, data, ["id"])
    assert rows(postgres_url, name) == after_first == [(1, "A"), (2, "B"), (3, "c"), (5, "e")]
    assert first.details["inserted"] == 2 and second.details["inserted"] == 0
    assert second.details["updated"] == 3


def test_empty_stream_creates_the_table(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    result = merge(config, name, pa.table({"id": pa.array([], pa.int64())}), ["id"])
    assert result.rows == 0 and rows(postgres_url, name) == []


def test_merge_into_a_schema_qualified_target(config: PostgresConfig, postgres_url: str) -> None:
    schema = unique("s")
    sql(postgres_url, f'CREATE SCHEMA "{schema}"')
    merge(config, f"{schema}.t", pa.table({"id": [1], "v": ["a"]}), ["id"])
    merge(config, f"{schema}.t", pa.table({"id": [1, 2], "v": ["b", "c"]}), ["id"])
    assert sql(postgres_url, f'SELECT * FROM "{schema}".t ORDER BY 1') == [(1, "b"), (2, "c")]


def test_merge_into_jsonb_uuid_enum_columns(config: PostgresConfig, postgres_url: str) -> None:
    name, mood = unique(), unique("mood")
    sql(postgres_url, f"CREATE TYPE \"{mood}\" AS ENUM ('ok', 'sad')")
    sql(postgres_url, f'CREATE TABLE "{name}" (id uuid, doc jsonb, m "{mood}")')
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    merge(config, name, pa.table({"id": [u1], "doc": ['{"a": 1}'], "m": ["ok"]}), ["id"])
    data = pa.table({"id": [u1, u2], "doc": ['{"a": 2}', "[]"], "m": ["sad", "ok"]})
    result = merge(config, name, data, ["id"])
    assert result.details["updated"] == 1 and result.details["inserted"] == 1
    got = sql(postgres_url, f'SELECT id::text, doc::text, m::text FROM "{name}" ORDER BY doc')
    assert sorted(got) == sorted([(u1, '{"a": 2}', "sad"), (u2, "[]", "ok")])


def test_unchanged_rows_are_not_rewritten(config: PostgresConfig, postgres_url: str) -> None:
    """Re-merging the same data writes nothing; only rows whose values differ are updated."""
    name = unique()
    sql(
        postgres_url,
        f'CREATE TABLE "{name}" (id bigint PRIMARY KEY, t text, j json, b jsonb, n numeric, '
        "f float8, ts timestamptz)",
    )
    data = pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "t": ["a", "b", "c", "d", "e", None],
            "j": ['{"a": 1}', "[1]", None, "{}", "2", "3"],
            "b": ['{"a": 1}', "[1]", None, "{}", "2", "3"],
            "n": pa.array(["1.5", "2", None, "4", "5", "6"]).cast(pa.decimal128(10, 2)),
            "f": [1.5, float("nan"), None, 0.0, 5.0, 6.0],
            "ts": pa.array([0, 1, None, 3, 4, 5], pa.timestamp("us", "UTC")),
        }
    )
    merge(config, name, data, ["id"])
    versions = f'SELECT id, xmin::text FROM "{name}" ORDER BY id'
    before = sql(postgres_url, versions)
    again = merge(config, name, data, ["id"])
    assert again.details["updated"] == 6 and again.details["changed"] == 0
    assert sql(postgres_url, versions) == before  # no row was rewritten
    edits = data.set_column(1, "t", pa.array(["A", "b", "c", "d", "e", "x"]))  # case counts
    edits = edits.set_column(2, "j", pa.array(['{"a":1}', "[1]", None, "{}", "2", "3"]))
    edits = edits.set_column(3, "b", pa.array(['{"a": 2}', "[1]", "null", "{}", "2", "3"]))
    result = merge(config, name, edits, ["id"])
    assert result.details["changed"] == 3 and result.details["updated"] == 6
    changed = {row[0] for row in sql(postgres_url, versions) if row not in before}
    assert changed == {1, 3, 6}
    assert sql(postgres_url, f'SELECT t, j::text FROM "{name}" WHERE id = 1') == [("A", '{"a":1}')]


def test_shuffled_keys_with_repeats_keep_the_last(
    config: PostgresConfig, postgres_url: str
) -> None:
    """Keys out of order (the increasing fast path does not apply) still de-duplicate."""
    name = unique()
    ids = [5, 3, 5, 1, 3, 9, 5]
    data = pa.table({"id": ids, "v": [f"v{i}" for i in range(len(ids))]})
    result = merge(config, name, data, ["id"])
    assert result.details["duplicates"] == 3 and result.rows == 4
    assert rows(postgres_url, name, "id") == [(1, "v3"), (3, "v4"), (5, "v6"), (9, "v5")]
    # increasing keys across batches, one repeated at a batch boundary
    data = pa.table({"id": [10, 11, 11, 12], "v": ["a", "b", "c", "d"]})
    result = merge(config, name, data, ["id"])
    assert result.details["duplicates"] == 1
    assert rows(postgres_url, name, "id")[-3:] == [(10, "a"), (11, "c"), (12, "d")]


def test_counts_on_a_partitioned_table(config: PostgresConfig, postgres_url: str) -> None:
    """A partitioned target counts its inserts by its rows (its statistics are per partition)."""
    name = unique()
    sql(postgres_url, f'CREATE TABLE "{name}" (id bigint, v text) PARTITION BY RANGE (id)')
    sql(postgres_url, f'CREATE TABLE "{name}_a" PARTITION OF "{name}" FOR VALUES FROM (0) TO (10)')
    sql(postgres_url, f'CREATE TABLE "{name}_b" PARTITION OF "{name}" FOR VALUES FROM (10) TO (99)')
    merge(config, name, pa.table({"id": [1, 11], "v": ["a", "b"]}), ["id"])
    data = pa.table({"id": [1, 2, 11, 12, 13], "v": ["a", "x", "B", "y", "z"]})
    result = merge(config, name, data, ["id"])
    assert {k: result.details[k] for k in ("inserted", "updated", "changed")} == {
        "inserted": 3,
        "updated": 2,
        "changed": 1,
    }
    assert rows(postgres_url, name, "id") == [(1, "a"), (2, "x"), (11, "B"), (12, "y"), (13, "z")]


def test_counts_with_soft_deletes_on_a_filled_table(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    merge(config, name, pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}), ["id"])
    data = pa.table(
        {"id": [1, 2, 4, 5], "v": ["a", "B", "d", "e"], "gone": [True, False, True, None]}
    )
    result = merge(config, name, data, ["id"], {"soft_delete_column": "gone"})
    assert {k: result.details[k] for k in ("inserted", "updated", "deleted", "changed")} == {
        "inserted": 1,
        "updated": 1,
        "deleted": 1,
        "changed": 1,
    }
    assert rows(postgres_url, name, "id") == [(2, "B"), (3, "c"), (5, "e")]


# --- strategies: rebuild-and-swap gives what the in-place merge gives ---

COUNTS = ("rows", "inserted", "updated", "deleted", "duplicates")


def both(
    config: PostgresConfig,
    postgres_url: str,
    create: str,
    batches: list[tuple[pa.Table, dict[str, Any]]],
    keys: list[str],
) -> tuple[str, str]:
    """Run the same merges into two copies of a table, one per strategy; compare them."""
    names = {s: unique(s[:2]) for s in ("merge", "rebuild")}
    for name in names.values():
        if create:
            sql(postgres_url, create.format(name=f'"{name}"'))
    for data, opts in batches:
        got = {}
        for strategy, name in names.items():
            result = merge(config, name, data, keys, {**opts, "merge_strategy": strategy})
            got[strategy] = {k: result.details.get(k, result.rows) for k in COUNTS}
            assert result.details["strategy"] == strategy or (
                result.details["strategy_reason"] == "the table is empty"
            )
        assert got["merge"] == got["rebuild"]
        merged, rebuilt = (rows(postgres_url, names[s]) for s in ("merge", "rebuild"))
        assert sorted(merged, key=repr) == sorted(rebuilt, key=repr)
    return names["merge"], names["rebuild"]


def test_rebuild_equals_merge_on_updates_inserts_duplicates_and_nulls(
    config: PostgresConfig, postgres_url: str
) -> None:
    first = pa.table({"a": [1, 1, 2, 3], "b": ["x", "y", "x", "x"], "v": [1.5, None, 3.0, 4.0]})
    second = pa.table(
        {
            "a": [1, 2, 2, 4, 1, 5],
            "b": ["y", "x", "x", "x", "x", "z"],
            "v": [None, 30.0, 31.0, None, 10.0, 5.0],  # (2, x) twice: the last wins
        }
    )
    m, _ = both(
        config,
        postgres_url,
        "CREATE TABLE {name} (a int NOT NULL, b text NOT NULL, v float8, PRIMARY KEY (a, b))",
        [(first, {}), (second, {}), (second, {})],
        ["a", "b"],
    )
    assert rows(postgres_url, m, "1, 2") == [
        (1, "x", 10.0),
        (1, "y", None),
        (2, "x", 31.0),
        (3, "x", 4.0),
        (4, "x", None),
        (5, "z", 5.0),
    ]


def test_rebuild_equals_merge_with_soft_deletes(config: PostgresConfig, postgres_url: str) -> None:
    opts = {"soft_delete_column": "gone"}
    first = pa.table({"id": [1, 2, 3, 4], "v": ["a", "b", "c", "d"], "gone": [False] * 4})
    second = pa.table(
        {
            "id": [1, 2, 5, 6, 3, 3],
            "v": ["A", "B", "e", "f", "c1", "c2"],
            "gone": [True, None, True, False, False, True],  # 3: deleted by its last row
        }
    )
    # the flag steers the merge only (the table lacks it) ...
    m, _ = both(config, postgres_url, "", [(first.drop(["gone"]), {}), (second, opts)], ["id"])
    assert rows(postgres_url, m) == [(2, "B"), (4, "d"), (6, "f")]
    # ... or is a column of the table too
    m, _ = both(config, postgres_url, "", [(first, opts), (second, opts)], ["id"])
    assert rows(postgres_url, m) == [(2, "B", None), (4, "d", False), (6, "f", False)]


def test_rebuild_equals_merge_when_a_column_is_added(
    config: PostgresConfig, postgres_url: str
) -> None:
    first = pa.table({"id": [1, 2], "v": ["a", "b"]})
    second = pa.table({"id": [2, 3], "v": ["B", "c"], "extra": [None, 7]})
    _, r = both(config, postgres_url, "", [(first, {}), (second, {})], ["id"])
    assert rows(postgres_url, r) == [(1, "a", None), (2, "B", None), (3, "c", 7)]


def test_rebuild_keeps_indexes_constraints_and_defaults(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    sql(
        postgres_url,
        f"CREATE TABLE \"{name}\" (id bigint PRIMARY KEY, v text CHECK (v <> 'bad'), "
        f"at date DEFAULT '2020-01-01'); "
        f'CREATE INDEX "{name}_v" ON "{name}" (v); '
        f"INSERT INTO \"{name}\" VALUES (1, 'a', '2021-01-01'), (2, 'b', '2021-01-01')",
    )
    shape = (
        "SELECT indexname, regexp_replace(indexdef, ' ON .* USING', ' USING') FROM pg_indexes "
        f"WHERE tablename = '{name}' ORDER BY 1"
    )
    indexes = sql(postgres_url, shape)
    data = pa.table({"id": [2, 3], "v": ["B", "c"], "at": pa.array([None, None], pa.date32())})
    result = merge(config, name, data, ["id"], {"merge_strategy": "rebuild"})
    assert result.details["strategy"] == "rebuild"
    assert (result.details["inserted"], result.details["updated"]) == (1, 1)
    assert sql(postgres_url, shape) == indexes
    assert rows(postgres_url, name) == [
        (1, "a", datetime.date(2021, 1, 1)),
        (2, "B", None),
        (3, "c", None),
    ]
    sql(postgres_url, f"INSERT INTO \"{name}\" (id, v) VALUES (4, 'd')")  # the default lives on
    assert sql(postgres_url, f'SELECT at FROM "{name}" WHERE id = 4')[0][0].year == 2020
    with pytest.raises(Exception, match="check constraint"):
        sql(postgres_url, f"INSERT INTO \"{name}\" (id, v) VALUES (5, 'bad')")
    with pytest.raises(Exception, match="duplicate key"):
        sql(postgres_url, f"INSERT INTO \"{name}\" (id, v) VALUES (1, 'x')")


def big_table(postgres_url: str, name: str, n: int = 120_000) -> None:
    sql(
        postgres_url,
        f'CREATE TABLE "{name}" (id bigint PRIMARY KEY, v bigint); '
        f'INSERT INTO "{name}" SELECT g, 0 FROM generate_series(1, {n}) g; ANALYZE "{name}"',
    )


def test_auto_rebuilds_a_large_share_and_merges_a_small_one(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    big_table(postgres_url, name)
    ids = pa.array(range(60_001, 120_001 + 20_000), pa.int64())  # 60k updates + 20k inserts
    large = pa.table({"id": ids, "v": pa.array([1] * len(ids), pa.int64())})
    result = merge(config, name, large, ["id"])
    assert result.details["strategy"] == "rebuild"
    assert result.details["strategy_reason"] == "the batch is 67% of the table's rows (>= 40%)"
    assert (result.details["inserted"], result.details["updated"]) == (20_000, 60_000)
    small = pa.table({"id": pa.array([1, 200_000], pa.int64()), "v": pa.array([2, 2], pa.int64())})
    result = merge(config, name, small, ["id"])
    assert result.details["strategy"] == "merge"
    assert result.details["strategy_reason"].startswith("the batch is 0% of the table's rows")
    assert sql(postgres_url, f'SELECT count(*), sum(v) FROM "{name}"') == [(140_001, 80_004)]


def test_a_view_or_a_missing_column_keeps_the_merge_in_place(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    big_table(postgres_url, name)
    sql(postgres_url, f'CREATE VIEW "{name}_v" AS SELECT id FROM "{name}"')
    ids = pa.array(range(1, 100_001), pa.int64())
    data = pa.table({"id": ids, "v": pa.array([7] * len(ids), pa.int64())})
    result = merge(config, name, data, ["id"])
    assert result.details["strategy"] == "merge"
    assert f"view {name}_v" in result.details["strategy_reason"]
    with pytest.raises(UnsupportedOperationError, match=f"view {name}_v.*Nothing was written"):
        merge(config, name, data.set_column(1, "v", pa.array([8] * len(ids))), ["id"],
              {"merge_strategy": "rebuild"})  # fmt: skip
    assert sql(postgres_url, f'SELECT sum(v) FROM "{name}"') == [(700_000,)]
    other = unique()
    big_table(postgres_url, other)
    result = merge(config, other, data.select(["id"]), ["id"])
    assert result.details["strategy"] == "merge"
    assert result.details["strategy_reason"] == (
        "rebuild impossible: the data lacks the table's column(s) v"
    )


def test_unknown_merge_strategy_is_refused(config: PostgresConfig) -> None:
    with pytest.raises(ConfigError, match="merge_strategy 'rebiuld'.*rebuild"):
        merge(config, unique(), pa.table({"id": [1]}), ["id"], {"merge_strategy": "rebiuld"})


def test_a_misspelled_merge_strategy_option_names_the_right_one(config: PostgresConfig) -> None:
    with pytest.raises(ConfigError) as info:
        merge(config, unique(), pa.table({"id": [1]}), ["id"], {"merge_stratgy": "rebuild"})
    assert "merge_stratgy" in str(info.value)
    assert "merge_strategy" in (info.value.hint or "")


def test_the_connection_sets_the_default_strategy_and_the_step_overrides_it(
    postgres_url: str,
) -> None:
    config = PostgresConfig(url=postgres_url, merge_strategy="rebuild")
    name = unique()
    merge(config, name, pa.table({"id": [1, 2], "v": ["a", "b"]}), ["id"])
    result = merge(config, name, pa.table({"id": [2], "v": ["B"]}), ["id"])
    assert (result.details["strategy"], result.details["strategy_reason"]) == (
        "rebuild",
        "merge_strategy: rebuild",
    )
    result = merge(
        config, name, pa.table({"id": [3], "v": ["c"]}), ["id"], {"merge_strategy": "merge"}
    )
    assert result.details["strategy"] == "merge"
    assert rows(postgres_url, name) == [(1, "a"), (2, "B"), (3, "c")]


# --- a stream announcing distinct keys is copied straight into the rebuilt table ---


def announced(data: pa.Table, keys: list[str]) -> pa.Table:
    """``data`` the way the load step sends it when it found no repeated key."""
    from headwater.connectors.unique_keys import ROWS_METADATA, UNIQUE_KEYS_METADATA

    meta = {UNIQUE_KEYS_METADATA: json.dumps(keys).encode(), ROWS_METADATA: b"%d" % len(data)}
    return data.replace_schema_metadata(meta)


def load_step_stream(data: pa.Table, keys: list[str]) -> pa.Table:
    """What the load step announces for ``data``: its own check, in DuckDB."""
    from headwater.engine.session import EngineSession
    from headwater.pipelines.steps import _unique_rows

    def no_datasets(*_: object) -> None:
        raise AssertionError("no dataset should be resolved")

    with EngineSession(no_datasets) as session:  # type: ignore[arg-type]
        session.register_arrow("data", data)
        count = _unique_rows(session, "data", keys)
    return announced(data, keys) if count is not None else data


def test_announced_distinct_keys_rebuild_without_staging_like_the_merge(
    config: PostgresConfig, postgres_url: str
) -> None:
    create = (
        "CREATE TABLE {name} (a bigint, b text, v double precision, PRIMARY KEY (a, b)); "
        "INSERT INTO {name} SELECT g, 'x', g FROM generate_series(1, 6) g"
    )
    data = pa.table({"a": [5, 6, 7, 8], "b": ["x", "x", "x", "y"], "v": [None, 60.0, 7.0, 8.0]})
    sent = load_step_stream(data, ["a", "b"])
    assert sent.schema.metadata  # no key repeats: announced
    merged, rebuilt = unique("me"), unique("re")
    for name in (merged, rebuilt):
        sql(postgres_url, create.format(name=f'"{name}"'))
    sql(postgres_url, f"COMMENT ON INDEX \"{rebuilt}_pkey\" IS 'the key'")
    m = merge(config, merged, sent, ["a", "b"], {"merge_strategy": "merge"})
    r = merge(config, rebuilt, sent, ["a", "b"], {"merge_strategy": "rebuild"})
    assert r.details["strategy"] == "rebuild"
    assert {k: r.details.get(k, r.rows) for k in COUNTS} == {
        k: m.details.get(k, m.rows) for k in COUNTS
    }
    assert (r.details["inserted"], r.details["updated"]) == (2, 2)
    assert rows(postgres_url, merged) == rows(postgres_url, rebuilt)
    assert rows(postgres_url, rebuilt, "1, 2")[4:] == [
        (5, "x", None), (6, "x", 60.0), (7, "x", 7.0), (8, "y", 8.0)
    ]  # fmt: skip
    assert sql(postgres_url, f"SELECT obj_description('\"{rebuilt}_pkey\"'::regclass)") == [
        ("the key",)
    ]
    with pytest.raises(Exception, match="duplicate key"):
        sql(postgres_url, f"INSERT INTO \"{rebuilt}\" VALUES (1, 'x', 0)")


def test_repeated_keys_are_not_announced_and_take_the_staging_path(
    config: PostgresConfig, postgres_url: str
) -> None:
    name = unique()
    big_table(postgres_url, name, 1000)
    ids = [*range(500, 1101), 700]  # 700 twice: the last one wins
    values = [*([1] * 601), 2]
    data = pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array(values, pa.int64())})
    sent = load_step_stream(data, ["id"])
    assert not sent.schema.metadata  # a repeated key: nothing announced
    result = merge(config, name, sent, ["id"], {"merge_strategy": "rebuild"})
    assert result.details["strategy"] == "rebuild"
    assert result.details["duplicates"] == 1  # de-duplicated in the staging table
    assert (result.details["inserted"], result.details["updated"]) == (100, 501)
    assert sql(postgres_url, f'SELECT v FROM "{name}" WHERE id = 700') == [(2,)]
    assert sql(postgres_url, f'SELECT count(*), count(DISTINCT id) FROM "{name}"') == [(1100, 1100)]


def test_a_wrong_announcement_writes_nothing(config: PostgresConfig, postgres_url: str) -> None:
    name = unique()
    big_table(postgres_url, name, 1000)
    data = pa.table({"id": pa.array([1, 2, 2], pa.int64()), "v": pa.array([5, 6, 7], pa.int64())})
    lying = data.replace_schema_metadata(announced(data.slice(0, 2), ["id"]).schema.metadata)
    with pytest.raises(DatasetConflictError, match="3 rows where 2 rows with distinct keys"):
        merge(config, name, lying, ["id"], {"merge_strategy": "rebuild"})
    assert sql(postgres_url, f'SELECT count(*), sum(v) FROM "{name}"') == [(1000, 0)]
