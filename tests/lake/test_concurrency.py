"""Overwrite is atomic: a concurrent reader sees one complete version or another, never a mix."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from headwater.errors import DatasetConflictError, Transient
from headwater.lake import Lake

ROWS = 5_000
BATCH = 500


def generation(number: int) -> pa.RecordBatchReader:
    schema = pa.schema([("id", pa.int64()), ("generation", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, ROWS, BATCH):
            ids = pa.array(range(start, start + BATCH), pa.int64())
            yield pa.record_batch([ids, pa.repeat(pa.scalar(number, pa.int64()), BATCH)], schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def test_concurrent_reads_never_see_a_partial_overwrite(lake: Lake) -> None:
    lake.write("raw.gen", generation(0))
    stop = threading.Event()
    seen: list[tuple[int, frozenset[int]]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                table = lake.read("raw.gen")
                seen.append((table.num_rows, frozenset(table.column("generation").to_pylist())))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(1, 7):
            lake.write("raw.gen", generation(number), mode="overwrite")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert len(seen) > 0
    for count, generations in seen:
        assert count == ROWS
        assert len(generations) == 1
    final = lake.read("raw.gen")
    assert final.num_rows == ROWS
    assert set(final.column("generation").to_pylist()) == {6}
    assert lake.history("raw.gen")[0].version == 6


def test_concurrent_appends_all_commit(lake: Lake) -> None:
    """Threads appending to one dataset, the first two racing to create it: every append
    commits once (Delta rebases a blind append; creation is serialized per table)."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(number: int) -> None:
        try:
            start.wait()
            for step in range(4):
                ids = pa.array([number * 100 + step * 10 + i for i in range(10)], pa.int64())
                streamed = step % 2 == 1  # streamed and in-memory inputs alike
                data = pa.table({"id": ids})
                lake.write(
                    "raw.shared", data.to_reader() if streamed else data, run_id=f"w{number}"
                )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    ids = sorted(lake.read("raw.shared").column("id").to_pylist())
    assert ids == sorted(n * 100 + s * 10 + i for n in (1, 2) for s in range(4) for i in range(10))
    assert len(lake.history("raw.shared")) == 8


def _while_streaming(action: Callable[[], object]) -> Callable[[int], None]:
    """An ``on_batch`` hook that runs ``action`` to completion, once, in another thread while
    the write is in flight (so it commits between this write's start and its commit)."""
    done: list[bool] = []

    def hook(_rows: int) -> None:
        if not done:
            done.append(True)
            thread = threading.Thread(target=action)
            thread.start()
            thread.join(timeout=60)

    return hook


def test_an_overwrite_that_lost_a_race_is_a_transient_conflict(lake: Lake) -> None:
    lake.write("raw.race", pa.table({"id": [0, 1]}))
    rival = pa.table({"id": [7]})
    with pytest.raises(DatasetConflictError) as caught:
        lake.write(
            "raw.race",
            pa.table({"id": [1, 9]}),
            mode="overwrite",
            on_batch=_while_streaming(lambda: lake.write("raw.race", rival, mode="overwrite")),
        )
    assert isinstance(caught.value, Transient)  # a step's retries run it again
    assert "another writer committed to it first" in str(caught.value)
    assert "Nothing was committed" in str(caught.value)
    # the rival's overwrite stands; the losing write committed nothing
    assert lake.read("raw.race").column("id").to_pylist() == [7]
    assert len(lake.history("raw.race")) == 2


def test_a_table_created_elsewhere_during_a_first_append_gets_the_append(lake: Lake) -> None:
    """Another process (here: deltalake itself, outside this lake and its creation lock)
    creates the table while our first append streams: the append lands on top of it, for
    in-memory and streamed input alike, and the metadata records the dataset."""
    rival = pa.table({"id": pa.array([100, 101], pa.int64())})

    def create_elsewhere(name: str) -> Callable[[], object]:
        return lambda: write_deltalake(lake.location(name), rival)

    for name, streamed in (("raw.born", False), ("raw.born_streamed", True)):
        ours = pa.table({"id": pa.array([1, 2, 3], pa.int64())})
        info = lake.write(
            name,
            ours.to_reader() if streamed else ours,
            on_batch=_while_streaming(create_elsewhere(name)),
        )
        assert sorted(lake.read(name).column("id").to_pylist()) == [1, 2, 3, 100, 101]
        assert (info.version, info.rows) == (1, 3)
        assert lake.exists(name)
