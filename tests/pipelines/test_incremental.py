"""Incremental extracts: cursor boundaries, chunked checkpoints, crash recovery, lookback,
parallel ranges and schema contracts, on the in-process memory connector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from headwater.pipelines.spec import PipelineSpec
from headwater.testing import memory_tables, workspace_for_test
from headwater.workspace import Workspace


def _store() -> str:
    return f"inc-{uuid.uuid4().hex[:8]}"


def _spec(body: str) -> PipelineSpec:
    return PipelineSpec.from_yaml("name: inc\nsteps:\n" + body)


def _extract(extra: str = "", mode: str = "append", keys: str = "") -> PipelineSpec:
    return _spec(
        f"""
  - type: extract
    name: pull
    connection: m
    stream: orders
    to: raw.orders
    mode: {mode}
{keys}
    incremental:
      cursor: cursor
{extra}
"""
    )


def _orders(ids: range, cursor: Any) -> pa.Table:
    values = [cursor(i) for i in ids] if callable(cursor) else [cursor] * len(ids)
    return pa.table({"id": list(ids), "cursor": values, "v": [f"r{i}" for i in ids]})


def _ids(ws: Workspace) -> list[int]:
    return sorted(ws.read("raw.orders").column("id").to_pylist())


def _run_ok(ws: Workspace, spec: PipelineSpec) -> Any:
    result = ws.run(spec)
    assert result.status == "succeeded", result.error
    return result.steps[0]


def test_cursor_reads_only_new_rows_and_rows_at_the_max_are_not_lost() -> None:
    store = _store()
    tables = memory_tables(store)
    tables["orders"] = _orders(range(1, 101), lambda i: i)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract()
        first = _run_ok(ws, spec)
        assert first.rows_out == 100 and first.details["checkpoint"] == 100
        # a row at the current maximum committed after the read, and newer rows
        tables["orders"] = pa.concat_tables(
            [tables["orders"], _orders(range(101, 102), 100), _orders(range(102, 111), lambda i: i)]
        )
        second = _run_ok(ws, spec)
        assert second.rows_out == 10
        assert second.details["rows_already_loaded"] == 1  # row 100, not loaded twice
        assert second.balanced
        assert _ids(ws) == list(range(1, 111))
        third = _run_ok(ws, spec)  # nothing new: no commit, nothing doubled
        assert third.rows_out == 0
        assert _ids(ws) == list(range(1, 111))


def _drop_first_read(
    monkeypatch: pytest.MonkeyPatch, *, after_rows: int, batch_rows: int
) -> list[str | None]:
    """Make the memory source's first read fail (a dropped connection) once ``after_rows``
    rows were sent, in batches of ``batch_rows``; returns the predicate of each read."""
    from headwater.errors import ConnectorUnavailableError
    from headwater.testing import _MemoryClient

    original = _MemoryClient.read
    reads: list[str | None] = []

    def read(self: _MemoryClient, stream: str, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        reads.append(kwargs.get("predicate"))
        first, sent = len(reads) == 1, 0
        for batch in original(self, stream, **{**kwargs, "options": {"batch_rows": batch_rows}}):
            if first and sent >= after_rows:
                raise ConnectorUnavailableError("server closed the connection unexpectedly")
            sent += batch.num_rows
            yield batch

    monkeypatch.setattr(_MemoryClient, "read", read)
    return reads


def test_rows_sharing_cursor_values_survive_a_failure_after_a_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30,000 rows on 3 cursor values, checkpoint every 10,000, the read dies after the
    first checkpoint; the re-run resumes: the dataset holds all 30,000, once each."""
    store = _store()
    memory_tables(store)["orders"] = _orders(range(30_000), lambda i: i // 10_000)
    _drop_first_read(monkeypatch, after_rows=15_000, batch_rows=2_500)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract("    checkpoint_every: 10000\n    retries: 0")
        failed = ws.run(spec)
        assert failed.status == "failed", failed
        assert len(_ids(ws)) == 10_000  # the first chunk committed and checkpointed
        saved = ws.store.get_checkpoint("inc", "pull")
        assert saved is not None and saved["committed"]["seq"] == 1
        step = _run_ok(ws, spec)
        # chunk 1 held exactly the 10,000 rows of value 0: they are re-read (>=) and skipped
        assert step.details["rows_already_loaded"] == 10_000
        ids = _ids(ws)
        assert len(ids) == 30_000 and ids == list(range(30_000))


def test_a_chunk_boundary_inside_one_cursor_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint lands in the middle of a run of equal cursor values."""
    store = _store()
    memory_tables(store)["orders"] = _orders(range(3_000), lambda i: i // 2_000)
    _drop_first_read(monkeypatch, after_rows=1_500, batch_rows=250)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract("    checkpoint_every: 1000\n    retries: 0")
        assert ws.run(spec).status == "failed"
        assert len(_ids(ws)) == 1_000
        step = _run_ok(ws, spec)
        assert step.details["rows_already_loaded"] == 1_000  # value 0 rows, recognized
        assert _ids(ws) == list(range(3_000))


def test_a_dropped_connection_is_retried_from_the_last_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _store()
    memory_tables(store)["orders"] = _orders(range(20_000), lambda i: i // 7)
    reads = _drop_first_read(monkeypatch, after_rows=12_000, batch_rows=1_000)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract("    checkpoint_every: 5000\n    retry_delay: 0.01")
        step = _run_ok(ws, spec)
        # the second attempt read on from the checkpoint of the two chunks the first committed
        assert step.rows_out == 10_000 and step.balanced
        assert len(reads) == 2 and reads[0] is None
        assert reads[1] is not None and reads[1].startswith('"cursor" >= ')  # resumed
        assert _ids(ws) == list(range(20_000))


class _Crash(BaseException):
    """Stands for the process dying at a crash point (the runner records a failure)."""


def test_crash_between_commit_and_checkpoint_recovers_the_pending_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import headwater.pipelines.extract as extract

    store = _store()
    tables = memory_tables(store)
    tables["orders"] = _orders(range(1, 1001), lambda i: i)
    armed = [True]

    def crash_point(name: str) -> None:
        if name == "extract.after_commit" and armed[0]:
            armed[0] = False
            raise _Crash(name)

    monkeypatch.setattr(extract, "crash_point", crash_point)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract()
        assert ws.run(spec).status == "failed"
        assert len(_ids(ws)) == 1000  # committed, but the checkpoint was not confirmed
        saved = ws.store.get_checkpoint("inc", "pull")
        assert saved is not None and saved["pending"]["seq"] == 1
        tables["orders"] = pa.concat_tables(
            [tables["orders"], _orders(range(1001, 1011), lambda i: i)]
        )
        step = _run_ok(ws, spec)
        assert step.rows_out == 10
        assert any("recovered" in n for n in step.details["notes"])
        assert _ids(ws) == list(range(1, 1011))


def test_crash_before_the_commit_drops_the_pending_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import headwater.pipelines.extract as extract

    store = _store()
    memory_tables(store)["orders"] = _orders(range(1, 501), lambda i: i)
    armed = [True]

    def crash_point(name: str) -> None:
        if name == "extract.after_read" and armed[0]:
            armed[0] = False
            raise _Crash(name)

    monkeypatch.setattr(extract, "crash_point", crash_point)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract()
        assert ws.run(spec).status == "failed"
        assert not ws.lake.exists("raw.orders")
        _run_ok(ws, spec)
        assert _ids(ws) == list(range(1, 501))


def test_lookback_rereads_a_window_and_merge_keeps_one_row_per_key() -> None:
    store = _store()
    tables = memory_tables(store)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    tables["orders"] = pa.table(
        {
            "id": [1, 2, 3],
            "cursor": [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)],
            "v": ["a", "b", "c"],
        }
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _extract("      lookback: 90m", mode="merge", keys="    keys: [id]")
        _run_ok(ws, spec)
        # a row committed late, 1h behind the checkpoint, and an update of id 3
        tables["orders"] = pa.table(
            {
                "id": [1, 2, 3, 4],
                "cursor": [
                    t0,
                    t0 + timedelta(hours=1),
                    t0 + timedelta(hours=3),
                    t0 + timedelta(hours=1, minutes=30),
                ],
                "v": ["a", "b", "c2", "late"],
            }
        )
        step = _run_ok(ws, spec)
        assert step.balanced
        rows = {r["id"]: r["v"] for r in ws.read("raw.orders").to_pylist()}
        assert rows == {1: "a", 2: "b", 3: "c2", 4: "late"}


def test_initial_bound_and_a_missing_cursor_column() -> None:
    store = _store()
    memory_tables(store)["orders"] = _orders(range(1, 21), lambda i: i)
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        _run_ok(ws, _extract("      initial: 11"))
        assert _ids(ws) == list(range(11, 21))
        bad = _spec(
            """
  - type: extract
    name: pull
    connection: m
    stream: orders
    to: raw.other
    mode: append
    incremental: {cursor: updated_at}
"""
        )
        result = ws.run(bad)
        assert result.status == "failed"
        assert "cursor `updated_at` is not a column" in (result.steps[0].error or "")


def test_incremental_needs_a_connector_that_can_filter(tmp_path: Any) -> None:
    (tmp_path / "a.csv").write_text("id,cursor\n1,1\n")
    with workspace_for_test(connections={"f": {"type": "files", "path": str(tmp_path)}}) as ws:
        spec = _spec(
            """
  - type: extract
    connection: f
    stream: a.csv
    to: raw.a
    mode: append
    incremental: {cursor: cursor}
"""
        )
        result = ws.run(spec)
        assert result.status == "failed"
        assert "cannot read incrementally" in (result.steps[0].error or "")


def test_partitioned_read_covers_every_row_including_null_keys() -> None:
    store = _store()
    ids = list(range(10_000))
    memory_tables(store)["orders"] = pa.table(
        {"id": ids, "k": [None if i % 97 == 0 else i * 3 for i in ids]}
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: extract
    connection: m
    stream: orders
    to: raw.orders
    partition: {column: k, partitions: 4}
"""
        )
        step = _run_ok(ws, spec)
        assert len(step.details["ranges"]) == 5  # four ranges and NULLs
        assert _ids(ws) == ids


def test_partitioned_read_on_timestamps() -> None:
    store = _store()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    memory_tables(store)["orders"] = pa.table(
        {"id": list(range(1000)), "at": [t0 + timedelta(minutes=i) for i in range(1000)]}
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: extract
    connection: m
    stream: orders
    to: raw.orders
    partition: {column: at, partitions: 3}
"""
        )
        _run_ok(ws, spec)
        assert _ids(ws) == list(range(1000))


def test_freeze_refuses_a_new_column_before_writing() -> None:
    store = _store()
    tables = memory_tables(store)
    tables["orders"] = pa.table({"id": [1, 2]})
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: extract
    connection: m
    stream: orders
    to: raw.orders
    mode: append
    on_schema_change: freeze
"""
        )
        _run_ok(ws, spec)
        tables["orders"] = pa.table({"id": [3], "extra": ["x"]})
        result = ws.run(spec)
        assert result.status == "failed"
        error = result.steps[0].error or ""
        assert "no column `extra`" in error and "freeze" in error
        assert _ids(ws) == [1, 2]


def test_discard_row_quarantines_rows_that_do_not_fit() -> None:
    store = _store()
    tables = memory_tables(store)
    tables["orders"] = pa.table({"id": pa.array([1, 2], pa.int32())})
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: extract
    connection: m
    stream: orders
    to: raw.orders
    mode: append
    on_schema_change: discard_row
"""
        )
        _run_ok(ws, spec)
        tables["orders"] = pa.table(
            {"id": pa.array([3, 2**40, 5], pa.int64()), "extra": [None, None, "x"]}
        )
        step = _run_ok(ws, spec)
        assert (step.rows_in, step.rows_out, step.rows_quarantined) == (3, 1, 2)
        assert step.balanced
        assert _ids(ws) == [1, 2, 3]
        quarantine = ws.read("raw.orders__quarantine")
        errors = sorted(quarantine.column("error").to_pylist())
        assert "column `extra`" in errors[0] and "does not fit int32" in errors[1]


def test_replicate_copies_every_table_in_parallel() -> None:
    store = _store()
    tables = memory_tables(store)
    tables["orders"] = pa.table({"id": [1, 2, 3]})
    tables["Customers"] = pa.table({"id": [1], "name": ["é"]})
    tables["tmp_scratch"] = pa.table({"x": [0]})
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: replicate
    connection: m
    tables: "*"
    exclude: ["tmp_*"]
    to: raw
  - type: transform
    sql: select count(*) as n from {{ ref('raw.orders') }}
    to: mart.n
"""
        )
        result = ws.run(spec)
        assert result.status == "succeeded", result.error
        assert [s.name for s in result.steps] == ["replicate_m_to_raw", "transform_mart_n"]
        assert ws.read("raw.customers").to_pylist() == [{"id": 1, "name": "é"}]
        assert ws.read("mart.n").to_pylist() == [{"n": 3}]
        assert not ws.lake.exists("raw.tmp_scratch")
        assert result.steps[0].rows_out == 4


def test_replicate_merge_needs_primary_keys() -> None:
    store = _store()
    memory_tables(store)["orders"] = pa.table({"id": [1]})
    with workspace_for_test(connections={"m": {"type": "memory", "store": store}}) as ws:
        spec = _spec(
            """
  - type: replicate
    connection: m
    tables: [orders]
    to: raw
    mode: merge
"""
        )
        result = ws.run(spec)
        assert result.status == "failed"
        assert "have none: orders" in (result.steps[0].error or "")


def test_spec_rules_for_incremental() -> None:
    from headwater.errors import PipelineSyntaxError

    cases = {
        "    mode: overwrite\n    incremental: {cursor: c}": "needs `mode: append` or `mode: merge`",
        "    mode: append\n    incremental: {cursor: c, lookback: 1h}": "needs `mode: merge`",
        "    mode: append\n    checkpoint_every: 10": "`checkpoint_every` needs `incremental`",
        "    mode: append\n    incremental: {cursor: c, lookback: soon}": "should be a duration",
    }
    for body, message in cases.items():
        with pytest.raises(PipelineSyntaxError) as info:
            _spec(f"  - type: extract\n    connection: m\n    stream: s\n    to: raw.s\n{body}\n")
        assert message in str(info.value), (body, str(info.value))


def test_cursor_state_round_trips_typed_values() -> None:
    from decimal import Decimal

    from headwater.pipelines.incremental import CursorState, cursor_predicate, literal_sql

    for value in [
        7,
        2.5,
        Decimal("12.50"),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 2),
        "o'k",
    ]:
        state = CursorState("c", value=value, seen={"ab"}, seq=3, rows=9)
        again = CursorState.from_json(state.to_json())
        assert again.value == value and type(again.value) is type(value)
    assert literal_sql("o'k") == "'o''k'"
    assert cursor_predicate('we"ird', 5) == '"we""ird" >= 5'
    assert "TIMESTAMPTZ" in literal_sql(datetime(2026, 1, 1, tzinfo=UTC))
    assert cursor_predicate("c", datetime(2026, 1, 1, 3), lookback="2h") == (
        "\"c\" >= CAST('2026-01-01 01:00:00' AS TIMESTAMP)"
    )
