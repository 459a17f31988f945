"""Reading stored run events and connection checks back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from headwater.metadata.models import ConnectionCheckRow, RunEventRow
from headwater.monitoring.records import EventRecord

if TYPE_CHECKING:
    from headwater.metadata.store import MetadataStore

__all__ = ["add_connection_check", "connection_checks", "events_after", "run_events"]


def _record(row: RunEventRow) -> EventRecord:
    from headwater.metadata.store import MetadataStore

    ts = MetadataStore.as_utc(row.ts)
    assert ts is not None
    return EventRecord(row.run_id, row.seq, ts, row.type, row.step, dict(row.payload or {}))


def run_events(store: MetadataStore, run_id: str, *, after_seq: int = 0) -> list[EventRecord]:
    """The events of one run with ``seq > after_seq``, in order."""
    with store.session() as s:
        rows = s.scalars(
            select(RunEventRow)
            .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
            .order_by(RunEventRow.seq)
        )
        return [_record(r) for r in rows]


def events_after(
    store: MetadataStore, after_id: int = 0, *, limit: int = 10_000
) -> tuple[list[EventRecord], int]:
    """Events of every run stored after row id ``after_id``, and the last id read."""
    with store.session() as s:
        rows = list(
            s.scalars(
                select(RunEventRow)
                .where(RunEventRow.id > after_id)
                .order_by(RunEventRow.id)
                .limit(limit)
            )
        )
        last = rows[-1].id if rows else after_id
        return [_record(r) for r in rows], last


def add_connection_check(
    store: MetadataStore, connection: str, status: str, latency_ms: float, error: str | None
) -> ConnectionCheckRow:
    with store.session() as s:
        row = ConnectionCheckRow(
            connection=connection, status=status, latency_ms=latency_ms, error=error
        )
        s.add(row)
        s.flush()
        return row


def connection_checks(
    store: MetadataStore, connection: str | None = None, *, limit: int = 20
) -> Sequence[ConnectionCheckRow]:
    """Recent checks, newest first (of one connection, or of all)."""
    with store.session() as s:
        query = select(ConnectionCheckRow).order_by(ConnectionCheckRow.id.desc()).limit(limit)
        if connection:
            query = query.where(ConnectionCheckRow.connection == connection)
        return list(s.scalars(query))
