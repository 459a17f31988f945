"""A merge's stream can announce that its keys are distinct (and how many rows it holds).

The load step checks a dataset's keys before it streams the dataset (one DuckDB
``count(*)``/``count(DISTINCT ...)`` over the pinned version) and, when no key repeats,
puts the result in the stream's Arrow schema metadata. A destination that can use it
(``accepts_unique_keys = True``: PostgreSQL, whose rebuild then skips its staging table)
reads it with :func:`announced_rows`; the others never see the check run.
"""

from __future__ import annotations

import json

import pyarrow as pa

__all__ = ["ROWS_METADATA", "UNIQUE_KEYS_METADATA", "announce", "announced_rows"]

UNIQUE_KEYS_METADATA = b"headwater.unique_keys"  # JSON list of the key columns
ROWS_METADATA = b"headwater.rows"  # the stream's exact row count


def announce(reader: pa.RecordBatchReader, keys: list[str], rows: int) -> pa.RecordBatchReader:
    """``reader`` with metadata saying its ``rows`` rows have distinct ``keys``."""
    meta = dict(reader.schema.metadata or {})
    meta[UNIQUE_KEYS_METADATA] = json.dumps(keys).encode()
    meta[ROWS_METADATA] = str(rows).encode()
    return pa.RecordBatchReader.from_batches(reader.schema.with_metadata(meta), reader)


def announced_rows(schema: pa.Schema, keys: tuple[str, ...] | list[str]) -> int | None:
    """The row count announced with distinct ``keys`` (exactly these), else None."""
    meta = schema.metadata or {}
    try:
        if json.loads(meta[UNIQUE_KEYS_METADATA]) != list(keys):
            return None
        rows = int(meta[ROWS_METADATA])
    except (KeyError, ValueError, TypeError):
        return None
    return rows if rows >= 0 else None
