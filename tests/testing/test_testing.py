"""headwater.testing: the memory connector, workspace_for_test and assert_table_equal."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings

from headwater.testing import assert_table_equal, memory_tables, workspace_for_test
from headwater.testing.strategies import arrow_tables


def test_memory_round_trip_through_a_pipeline() -> None:
    source = memory_tables("t1")
    source["orders"] = pa.table({"id": [1, 2, 3], "amount": [1.5, None, 3.0]})
    pipeline = """
name: mem
steps:
  - {name: e, type: extract, connection: mem, stream: orders, to: raw.orders}
  - {name: l, type: load, from: raw.orders, connection: mem, target: copy, mode: overwrite}
"""
    with workspace_for_test(connections={"mem": {"type": "memory", "store": "t1"}}) as ws:
        (ws.root / "pipelines" / "mem.yaml").write_text(pipeline)
        result = ws.run("mem")
        assert result.ok, result.error
        assert_table_equal(source["copy"], source["orders"], sort_by=["id"])


def test_assert_table_equal_reports_the_row() -> None:
    a = pa.table({"x": [1, 2]})
    with pytest.raises(AssertionError, match="row 1 differs"):
        assert_table_equal(a, pa.table({"x": [1, 3]}))
    with pytest.raises(AssertionError, match="row counts differ"):
        assert_table_equal(a, pa.table({"x": [1]}))


@settings(max_examples=25, deadline=None)
@given(arrow_tables())
def test_strategy_tables_are_valid(table: pa.Table) -> None:
    assert table.validate(full=True) is None
