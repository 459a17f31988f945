"""Parallel range reads inside one snapshot: the contract a source offers the engine.

A source that can split a read into key ranges (:class:`~headwater.connectors.base.
PartitionedSource`) reads each range over its own connection. By itself each range is
its own transaction, so a row updated between two ranges' starts could be seen by
neither or by both. A :class:`SnapshotRangeSource` lets every range read the *same*
snapshot (PostgreSQL: ``pg_export_snapshot()`` on a coordinator connection, imported
by each range's ``SET TRANSACTION SNAPSHOT``, as ``pg_dump -j`` does), which makes a
parallel read exactly as consistent as a single one. It also tells the engine when a
read is big enough to be split by default (:meth:`SnapshotRangeSource.default_split`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from headwater.connectors.base import Source

__all__ = ["RangeSplit", "SnapshotRangeSource"]


@dataclass(frozen=True)
class RangeSplit:
    """How to split a read by default: on ``column``, into ``partitions`` ranges."""

    column: str
    partitions: int
    estimated_rows: int


@runtime_checkable
class SnapshotRangeSource(Protocol):
    def shared_snapshot(self) -> AbstractContextManager[Source]:
        """A source whose every read (each on its own connection) sees one snapshot, taken
        when the context is entered and held until it exits. Raises the connector's error
        when the server cannot export a snapshot."""

    def default_split(
        self,
        stream: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RangeSplit | None:
        """The split a read of ``stream`` gets when the step names none; ``None`` to read
        it as one stream (too small, no suitable key, a query, or turned off)."""
