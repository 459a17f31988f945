"""Overwrite is atomic: a concurrent reader sees one complete version or another, never a mix."""

from __future__ import annotations

import threading

import pyarrow as pa

from headwater.lake import Lake

ROWS = 5_000
BATCH = 500


def generation(number: int) -> pa.RecordBatchReader:
    schema = pa.schema([("id", pa.int64()), ("generation", pa.int64())])

    def batches():  # type: ignore[no-untyped-def]
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
