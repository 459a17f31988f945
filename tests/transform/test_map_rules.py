"""Rule behaviours beyond the documented examples, run in DuckDB over small Arrow tables."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headwater.errors import PipelineError
from headwater.transform.mapping import compile_map


def run(tables: dict[str, pa.Table], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    con = duckdb.connect()
    for name, table in tables.items():
        zone, _, short = name.partition(".")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
        con.register(f"t_{zone}_{short}", table)
        con.execute(f'CREATE VIEW "{zone}"."{short}" AS SELECT * FROM t_{zone}_{short}')
    first = next(iter(tables))
    compiled = compile_map(
        first, tables[first].schema, rules, schemas={k: v.schema for k, v in tables.items()}
    )
    rows: list[dict[str, Any]] = con.sql(compiled.sql).to_arrow_table().to_pylist()
    con.close()
    return rows


def test_lookup_with_duplicate_reference_keys_never_doubles_rows() -> None:
    rows = run(
        {
            "raw.o": pa.table({"id": [1, 2, 3], "k": ["a", "b", None]}),
            "ref.r": pa.table({"code": ["a", "a", "b"], "label": ["A2", "A1", "B"]}),
        },
        [{"lookup": {"dataset": "ref.r", "on": {"k": "code"}, "columns": ["label"]}}],
    )
    assert sorted((r["id"], r["label"]) for r in rows) == [(1, "A1"), (2, "B"), (3, None)]


def test_rules_see_the_previous_rules_columns() -> None:
    rows = run(
        {"raw.o": pa.table({"a": [1, 2, 3]})},
        [
            {"rename": {"a": "b"}},
            {"derive": {"c": "b * 10"}},
            {"filter": "c > 10"},
            {"aggregate": {"aggregates": {"total": "sum(c)", "n": "count(*)"}}},
        ],
    )
    assert rows == [{"total": 50, "n": 2}]
    with pytest.raises(PipelineError, match="unknown column `a`; the input has `b`"):
        run({"raw.o": pa.table({"a": [1]})}, [{"rename": {"a": "b"}}, {"filter": "a > 0"}])


def test_rename_onto_an_existing_column_is_refused() -> None:
    with pytest.raises(PipelineError, match="two columns would be called `b`"):
        compile_map(
            "raw.o", pa.schema([("a", pa.int64()), ("b", pa.int64())]), [{"rename": {"a": "b"}}]
        )


def test_dedupe_keeps_the_first_by_order_and_mask_keep_last_on_numbers() -> None:
    rows = run(
        {"raw.o": pa.table({"k": [1, 1, 2], "v": [5, 9, 7], "acct": [123456, 123456, 42]})},
        [{"dedupe": {"keys": ["k"], "order_by": "v desc"}}, {"mask": {"acct": {"keep_last": 2}}}],
    )
    assert sorted((r["k"], r["v"], r["acct"]) for r in rows) == [(1, 9, "****56"), (2, 7, "42")]


def test_union_adds_columns_and_fills_nulls() -> None:
    rows = run(
        {
            "raw.o": pa.table({"id": [1], "a": ["x"]}),
            "raw.p": pa.table({"b": [True], "id": [2]}),
        },
        [{"union": ["raw.p"]}],
    )
    assert sorted(rows, key=lambda r: r["id"]) == [
        {"id": 1, "a": "x", "b": None},
        {"id": 2, "a": None, "b": True},
    ]
