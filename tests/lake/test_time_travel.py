"""Versions, time travel by version and by time, and the commit history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from headwater.errors import DatasetError
from headwater.lake import Lake


def rows(ids: list[int], tag: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "tag": [tag] * len(ids)})


def build(lake: Lake) -> list[datetime]:
    """Four commits (append, append, merge, overwrite); the wall-clock time before each."""
    before = []
    steps = [
        (rows([1, 2], "a"), "append", "run-a"),
        (rows([3], "b"), "append", "run-b"),
        (rows([3, 4], "c"), "merge", "run-c"),
        (rows([9], "d"), "overwrite", "run-d"),
    ]
    for data, mode, run_id in steps:
        before.append(datetime.now(UTC))
        time.sleep(0.02)
        lake.write("raw.t", data, mode=mode, keys=["id"], run_id=run_id)  # type: ignore[arg-type]
        time.sleep(0.02)
    return before


def test_history_lists_every_commit_with_rows_and_run_ids(lake: Lake) -> None:
    build(lake)
    history = lake.history("raw.t")
    assert [h.version for h in history] == [3, 2, 1, 0]
    assert [h.operation for h in history] == ["WRITE", "MERGE", "WRITE", "WRITE"]
    assert [h.mode for h in history] == ["overwrite", "merge", "append", "append"]
    assert [h.rows for h in history] == [1, 2, 1, 2]
    assert [h.run_id for h in history] == ["run-d", "run-c", "run-b", "run-a"]
    assert [h.schema_version for h in history] == [1, 1, 1, 1]
    assert all(h.timestamp.tzinfo is UTC for h in history)
    assert history[0].timestamp > history[-1].timestamp
    assert history[1].metrics["num_target_rows_updated"] == 1


def test_read_by_version(lake: Lake) -> None:
    build(lake)
    assert sorted(lake.read("raw.t", version=0).column("id").to_pylist()) == [1, 2]
    assert sorted(lake.read("raw.t", version=1).column("id").to_pylist()) == [1, 2, 3]
    merged = lake.read("raw.t", version=2).sort_by("id").to_pylist()
    assert [(r["id"], r["tag"]) for r in merged] == [(1, "a"), (2, "a"), (3, "c"), (4, "c")]
    assert lake.read("raw.t", version=3).column("id").to_pylist() == [9]
    assert lake.read("raw.t").column("id").to_pylist() == [9]
    assert lake.dataset("raw.t", version=1).count_rows() == 3


def test_read_as_of_a_time(lake: Lake) -> None:
    before = build(lake)
    history = {h.version: h for h in lake.history("raw.t")}
    for version in range(4):
        at = history[version].timestamp
        assert lake.resolve_version("raw.t", at) == version
        assert lake.resolve_version("raw.t", at.isoformat()) == version
    # just before the third commit, the second one was current
    assert lake.resolve_version("raw.t", before[2]) == 1
    assert lake.read("raw.t", as_of=before[2]).num_rows == 3
    naive = before[3].replace(tzinfo=None).isoformat()  # naive ISO strings are UTC
    assert lake.read("raw.t", as_of=naive).num_rows == 4
    assert lake.read("raw.t", as_of=datetime.now(UTC) + timedelta(days=1)).num_rows == 1


def test_times_and_versions_out_of_range_name_the_valid_range(lake: Lake) -> None:
    before = build(lake)
    with pytest.raises(DatasetError) as info:
        lake.read("raw.t", as_of=before[0] - timedelta(seconds=1))
    assert "version 0" in info.value.message
    with pytest.raises(DatasetError) as info:
        lake.resolve_version("raw.t", "2001-01-01T00:00:00Z")
    assert info.value.dataset == "raw.t"
    for bad in (4, 99, -1):
        with pytest.raises(DatasetError) as info:
            lake.read("raw.t", version=bad)
        assert "0 to 3" in info.value.message
    with pytest.raises(DatasetError, match="ISO 8601"):
        lake.read("raw.t", as_of="yesterday")
    with pytest.raises(DatasetError, match="either version or as_of"):
        lake.read("raw.t", version=1, as_of=before[1])
