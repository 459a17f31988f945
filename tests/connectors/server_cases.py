"""Test helpers and bodies shared by the postgres and mariadb connector tests.

What a test checks is the same for both servers; what differs (how to connect, how to
count rows from another session) is passed in by the connector's test module.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa
import pytest

from headwater.connectors.base import WriteMode
from headwater.errors import ConnectorError, ConnectorUnavailableError, Terminal, Transient

#: kill points of a write, by mode: before the commit, or during an overwrite's swap
CRASH_POINTS = [
    ("append", "load.before_commit"),
    ("merge", "load.before_commit"),
    ("overwrite", "load.during_swap"),
]


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def untouchable(schema: pa.Schema) -> pa.RecordBatchReader:
    """A stream that fails the test if anything reads it."""

    def gen() -> Iterator[pa.RecordBatch]:
        raise AssertionError("a stream that should not be read was read")
        yield  # pragma: no cover

    return pa.RecordBatchReader.from_batches(schema, gen())


def failing(
    table: pa.Table, after: int, error: BaseException, *, rows_per_batch: int = 2
) -> pa.RecordBatchReader:
    """``table`` in batches of ``rows_per_batch``; raises ``error`` instead of batch ``after``."""

    def gen() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(table.to_batches(max_chunksize=rows_per_batch)):
            if i == after:
                raise error
            yield batch

    return pa.RecordBatchReader.from_batches(table.schema, gen())


def assert_refused_login(check: Callable[[], None], secret: str) -> ConnectorError:
    """``check`` fails fast with a terminal error that never shows ``secret``; returns it."""
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        check()
    assert time.monotonic() - started < 5
    err = info.value
    assert isinstance(err, Terminal) and not isinstance(err, Transient)
    text = str(err) + repr(err.attrs()) + repr(pickle.loads(pickle.dumps(err)).attrs())
    assert secret not in text
    return err


def assert_unreachable_is_transient(check: Callable[[], None], secret: str, where: str) -> None:
    """``check`` fails fast as unavailable, naming ``where`` and never ``secret``."""
    started = time.monotonic()
    with pytest.raises(ConnectorUnavailableError) as info:
        check()
    assert time.monotonic() - started < 5
    assert secret not in str(info.value) and where in str(info.value)


def assert_overwrite_is_atomic(
    overwrite: Callable[[pa.Table], Any],
    counter: Callable[[], AbstractContextManager[Callable[[], int]]],
) -> None:
    """Readers in other sessions never see the table missing or empty while it is overwritten.

    ``counter()`` opens a session and gives a function counting the table's rows in it.
    """
    overwrite(pa.table({"id": list(range(1000))}))
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with counter() as count:
                while not stop.is_set():
                    seen.append(count())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in (2000, 500, 3000, 1000):
            overwrite(pa.table({"id": list(range(n))}))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert seen and 0 not in seen
    assert set(seen) <= {1000, 2000, 500, 3000}


def assert_failed_writes_keep_the_old_table(
    overwrite: Callable[[pa.Table], Any],
    write_failing: Callable[[pa.Table, WriteMode], Any],
    summary: Callable[[], list[tuple[Any, ...]]],
    error: type[BaseException],
) -> pa.Table:
    """An overwrite or an append whose stream breaks leaves the old 50 rows as they were.

    ``write_failing(table, mode)`` writes ``table`` through a stream that raises ``error``
    part-way; ``summary()`` is ``count(*), min(v), max(v)`` of the table. Returns the new
    data, for the connector's own checks.
    """
    overwrite(pa.table({"id": list(range(50)), "v": ["old"] * 50}))
    new = pa.table({"id": list(range(1000)), "v": ["new"] * 1000})
    modes: tuple[WriteMode, ...] = ("overwrite", "append")
    for mode in modes:
        with pytest.raises(error):
            write_failing(new, mode)
        assert summary() == [(50, "old", "old")]
    return new
