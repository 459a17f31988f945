"""The load step's distinct-key check: its answer, and the session it leaves behind."""

from __future__ import annotations

import pyarrow as pa

from headwater.engine.session import EngineSession
from headwater.pipelines.steps import _unique_rows


def no_datasets(*_: object) -> None:
    return None


def test_distinct_keys_give_the_row_count_and_repeats_give_none() -> None:
    with EngineSession(no_datasets, memory_limit="1GB") as session:  # type: ignore[arg-type]
        session.con.register("distinct_t", pa.table({"a": [1, 2, 2], "b": ["x", "x", "y"]}))
        session.con.register("repeat_t", pa.table({"a": [1, 1], "b": ["x", "x"]}))
        before = session.execute("SELECT current_setting('memory_limit')")[0][0]
        assert _unique_rows(session, "distinct_t", ["a", "b"]) == 3
        assert _unique_rows(session, "distinct_t", ["a"]) is None
        assert _unique_rows(session, "repeat_t", ["a", "b"]) is None
        assert _unique_rows(session, "repeat_t", []) is None
        # the check's own small memory limit is lifted before the load's stream opens
        # (DuckDB prints the limit rounded to 0.1 MiB, so restoring it may move it by that)
        after = session.execute("SELECT current_setting('memory_limit')")[0][0]
        assert before.endswith(" MiB") and after.endswith(" MiB")
        assert abs(float(after[:-4]) - float(before[:-4])) <= 0.5
