"""Parallel range reads: split a stream on a column's range, read the ranges at once.

The ranges cover every value: ``col < b1``, ``b1 <= col < b2``, ..., ``col >= bn``, and
``col IS NULL`` — so a row inserted below the minimum or above the maximum seen when the
bounds were taken is still read by exactly one range. Each range is an ordinary
``Source.read`` with a predicate (its own connection); batches are merged through a
bounded queue, so memory stays at a few batches per range.

A source that can share one snapshot between connections
(:class:`~headwater.connectors.server.snapshot.SnapshotRangeSource`: PostgreSQL) reads
every range in the same snapshot, so the ranges together are exactly one consistent read
(a row updated or deleted meanwhile is seen once, as it was). Such a source may also ask
for a split by itself (a big table with an integer, date or timestamp primary key): see
:func:`range_plan`. Other sources read each range in its own transaction.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from headwater.connectors.base import PartitionedSource, RejectSink, Source
from headwater.connectors.server.snapshot import SnapshotRangeSource
from headwater.errors import ConfigError, Transient, UnsupportedOperationError
from headwater.pipelines.incremental import literal_sql

__all__ = [
    "RangePlan",
    "RangeRead",
    "partitioned_read",
    "range_plan",
    "range_predicates",
    "read_concurrently",
]


@dataclass(frozen=True)
class RangePlan:
    """A read split on ``column`` into ``partitions`` ranges; ``by_default`` when the
    source chose it (the step named no ``partition``)."""

    column: str
    partitions: int
    by_default: bool = False


@dataclass
class RangeRead:
    """The ranges of a split read and one stream of all their batches."""

    ranges: list[str]
    batches: Iterator[pa.RecordBatch]
    shared_snapshot: bool
    plan: RangePlan

    def describe(self) -> dict[str, Any]:
        return {
            "column": self.plan.column,
            "partitions": self.plan.partitions,
            "by_default": self.plan.by_default,
            "shared_snapshot": self.shared_snapshot,
        }


def range_plan(
    source: Source,
    stream: str,
    partition: Any,
    *,
    ordered: bool,
    predicate: str | None,
    options: Mapping[str, Any] | None,
) -> RangePlan | None:
    """How to split a read: the step's ``partition`` (``false`` or ``partitions: 1``: one
    stream), else the source's default for a big read (only a source that shares one
    snapshot between ranges, and never for an ``ordered`` read: chunked cursor reads)."""
    if partition is False:
        return None
    if partition is not None:
        if partition.partitions < 2:
            return None
        return RangePlan(partition.column, partition.partitions)
    if ordered or not isinstance(source, SnapshotRangeSource):
        return None
    split = source.default_split(stream, predicate=predicate, options=options)
    if split is None:
        return None
    return RangePlan(split.column, split.partitions, by_default=True)


_DONE = object()


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def range_predicates(column: str, low: Any, high: Any, partitions: int) -> list[str]:
    """Predicates covering every row of ``column``: ``partitions`` ranges plus NULLs."""
    col = _quoted(column)
    nulls = f"{col} IS NULL"
    if low is None or high is None:
        return [f"{col} IS NOT NULL", nulls]
    cuts = _cuts(low, high, partitions)
    if not cuts:
        return [f"{col} IS NOT NULL", nulls]
    out = [f"{col} < {literal_sql(cuts[0])}"]
    for a, b in itertools.pairwise(cuts):
        out.append(f"{col} >= {literal_sql(a)} AND {col} < {literal_sql(b)}")
    out.append(f"{col} >= {literal_sql(cuts[-1])}")
    out.append(nulls)
    return out


def _cuts(low: Any, high: Any, n: int) -> list[Any]:
    """``n - 1`` increasing inner boundaries between ``low`` and ``high`` (fewer if narrow)."""
    if isinstance(low, bool) or isinstance(high, bool):
        raise ConfigError("Cannot partition a read on a boolean column.", field="partition.column")
    values: list[Any]
    if isinstance(low, int) and isinstance(high, int):
        span = high - low + 1
        step = max(-(-span // n), 1)
        values = [low + i * step for i in range(1, n)]
    elif _both(low, high, (float, int, Decimal)) or _both(low, high, (datetime,)):
        width = (high - low) / n
        values = [low + width * i for i in range(1, n)]
    elif isinstance(low, date) and isinstance(high, date):
        days = (high - low).days
        values = [date.fromordinal(low.toordinal() + (days * i) // n) for i in range(1, n)]
    else:
        raise ConfigError(
            f"Cannot partition a read on values like {low!r}: use a numeric, date or "
            "timestamp column.",
            field="partition.column",
        )
    cuts: list[Any] = []
    for value in values:
        if low < value <= high and (not cuts or value > cuts[-1]):
            cuts.append(value)
    return cuts


def _both(low: Any, high: Any, types: tuple[type, ...]) -> bool:
    return isinstance(low, types) and isinstance(high, types)


def partitioned_read(
    source: Source,
    stream: str,
    *,
    plan: RangePlan,
    predicate: str | None,
    options: Mapping[str, Any] | None,
    rejects: RejectSink | None,
    connector: str,
    resources: ExitStack,
) -> RangeRead | None:
    """The range predicates and one stream of the batches of all ranges, read in parallel.

    A :class:`SnapshotRangeSource` reads every range in one snapshot, held open in
    ``resources`` (the caller closes it once the batches are consumed). When the server
    cannot export one (not a transient failure): ``None`` for a default split (the read is
    then one stream), and ranges in their own transactions for a split the step asked for.
    """
    if not isinstance(source, PartitionedSource):
        raise UnsupportedOperationError(
            f"The `{connector}` connector cannot split a read into ranges.",
            connector=connector,
            field="partition",
            hint="Remove `partition:` from the step.",
        )
    reader: Source = source
    shared = False
    if isinstance(source, SnapshotRangeSource):
        try:
            reader = resources.enter_context(source.shared_snapshot())
            shared = True
        except Exception as exc:
            if isinstance(exc, Transient):
                raise
            if plan.by_default:
                return None
            # the step asked for ranges: read them as before, each in its own transaction
    assert isinstance(reader, PartitionedSource)
    low, high = reader.column_bounds(stream, plan.column, predicate=predicate, options=options)
    ranges = range_predicates(plan.column, low, high, plan.partitions)
    full = [f"({predicate}) AND ({r})" if predicate else r for r in ranges]
    batches = _merge(reader, stream, full, options, rejects, workers=plan.partitions)
    return RangeRead(ranges, batches, shared, plan)


def _merge(
    source: Source,
    stream: str,
    predicates: list[str],
    options: Mapping[str, Any] | None,
    rejects: RejectSink | None,
    *,
    workers: int,
) -> Iterator[pa.RecordBatch]:
    def reader(predicate: str) -> Callable[[], Iterable[pa.RecordBatch]]:
        return lambda: source.read(stream, predicate=predicate, options=options, rejects=rejects)

    return read_concurrently([reader(p) for p in predicates], workers=workers)


def read_concurrently(
    readers: list[Callable[[], Iterable[pa.RecordBatch]]], *, workers: int, depth: int = 0
) -> Iterator[pa.RecordBatch]:
    """The batches of every reader, read by up to ``workers`` threads into a bounded queue
    (``depth`` batches; default two per worker). The first error of any reader is raised to
    the consumer; closing the iterator stops the threads."""
    out: queue.Queue[Any] = queue.Queue(maxsize=depth or max(2 * workers, 4))
    stop = threading.Event()
    todo: queue.Queue[Callable[[], Iterable[pa.RecordBatch]]] = queue.Queue()
    for r in readers:
        todo.put(r)

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    read = todo.get_nowait()
                except queue.Empty:
                    break
                for batch in read():
                    if not put(batch):
                        return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        finally:
            put(_DONE)

    threads = [
        threading.Thread(target=work, name=f"hw-read-{i}", daemon=True)
        for i in range(min(workers, len(readers)))
    ]
    for t in threads:
        t.start()
    finished = 0
    try:
        while finished < len(threads):
            item = out.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
