"""Commit records: what a write returns, what history shows, and time-travel resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from headwater.errors import DatasetError
from headwater.lake.fields import fields_to_schema

__all__ = [
    "MODE_KEY",
    "ROWS_KEY",
    "RUN_ID_KEY",
    "SCHEMA_VERSION_KEY",
    "CommitInfo",
    "HistoryEntry",
    "SchemaVersion",
    "parse_as_of",
    "parse_history",
    "version_at",
]

# custom metadata Headwater adds to every Delta commit it makes
RUN_ID_KEY = "headwater.run_id"
ROWS_KEY = "headwater.rows"
SCHEMA_VERSION_KEY = "headwater.schema_version"
MODE_KEY = "headwater.mode"


@dataclass(frozen=True)
class CommitInfo:
    """The outcome of one :meth:`Lake.write`.

    ``operation`` is the write mode (``append``, ``overwrite``, ``merge``); ``rows`` the rows
    written (for a merge: the rows upserted after deduplication); ``bytes`` the Arrow bytes
    that streamed in; ``schema_change`` is ``created``, ``evolved``, ``replaced`` or None.
    """

    dataset: str
    version: int
    operation: str
    rows: int
    bytes: int
    schema_version: int
    schema_change: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a dataset's Delta log.

    ``operation`` is Delta's name (``WRITE``, ``MERGE``, ``CREATE TABLE``, ``OPTIMIZE``...);
    ``mode`` the Headwater write mode when Headwater made the commit; ``rows`` the rows that
    commit wrote; ``metrics`` Delta's own ``operationMetrics``.
    """

    version: int
    timestamp: datetime
    operation: str
    rows: int | None
    run_id: str | None
    schema_version: int | None
    mode: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaVersion:
    """One recorded schema of a dataset (``change``: created, evolved or replaced)."""

    version: int
    fields: list[dict[str, Any]]
    change: str
    table_version: int | None
    run_id: str | None
    created_at: datetime | None

    @property
    def schema(self) -> pa.Schema:
        return fields_to_schema(self.fields)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _to_ms(value: datetime) -> int:
    return (value - _EPOCH) // _MS


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rows(commit: dict[str, Any]) -> int | None:
    recorded = _int(commit.get(ROWS_KEY))
    if recorded is not None:
        return recorded
    metrics = commit.get("operationMetrics") or {}
    for key in ("num_added_rows", "numOutputRows"):
        if key in metrics:
            return _int(metrics[key])
    if "num_target_rows_inserted" in metrics:
        return (_int(metrics["num_target_rows_inserted"]) or 0) + (
            _int(metrics.get("num_target_rows_updated")) or 0
        )
    return None


def parse_history(commits: list[dict[str, Any]]) -> list[HistoryEntry]:
    """Delta's ``DeltaTable.history()`` dicts as entries, newest first."""
    entries = []
    for commit in commits:
        params = commit.get("operationParameters") or {}
        mode = commit.get(MODE_KEY) or (str(params["mode"]).lower() if "mode" in params else None)
        run_id = commit.get(RUN_ID_KEY)
        entries.append(
            HistoryEntry(
                version=int(commit["version"]),
                timestamp=_from_ms(int(commit.get("timestamp", 0))),
                operation=str(commit.get("operation", "UNKNOWN")),
                rows=_rows(commit),
                run_id=str(run_id) if run_id is not None else None,
                schema_version=_int(commit.get(SCHEMA_VERSION_KEY)),
                mode=mode,
                metrics=dict(commit.get("operationMetrics") or {}),
            )
        )
    entries.sort(key=lambda e: e.version, reverse=True)
    return entries


def parse_as_of(value: datetime | str, dataset: str) -> datetime:
    """A point in time as an aware UTC datetime; naive values and strings are taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise DatasetError(
                f"Invalid as_of {value!r} for dataset `{dataset}`: not an ISO 8601 time.",
                dataset=dataset,
                hint="Use e.g. '2024-05-01T12:00:00Z' or a datetime.",
            ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def version_at(entries: list[HistoryEntry], as_of: datetime, dataset: str) -> int:
    """The version current at ``as_of``: the newest commit made at or before it."""
    limit = _to_ms(as_of)
    best: int | None = None
    for entry in entries:
        if _to_ms(entry.timestamp) <= limit and (best is None or entry.version > best):
            best = entry.version
    if best is None:
        first = min(entries, key=lambda e: e.version) if entries else None
        valid = (
            f"from {first.timestamp.isoformat()} (version {first.version}) on"
            if first
            else "none: the dataset has no commits"
        )
        raise DatasetError(
            f"Dataset `{dataset}` did not exist yet at {as_of.isoformat()}; valid times: {valid}.",
            dataset=dataset,
            hint="Pass a later as_of, or a version number.",
        )
    return best
