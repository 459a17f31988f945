"""Quarantine datasets: ``<dataset>__quarantine`` holds every rejected row with its reason.

Rows land here when a source cannot parse them (rule ``parse``) or when they
fail an ``error`` check (rule = the check's name). The original values are kept
as text (the raw line for parse errors, a JSON object for check failures), with
the source file and line where known and the run that rejected them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

from headwater.connectors.base import Reject
from headwater.lake.names import quarantine_name

__all__ = ["QUARANTINE_SCHEMA", "quarantine_name", "rejects_to_table"]

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("step", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("error", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("column", pa.string()),
        pa.field("raw_record", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC")),
        # the extract chunk or load that rejected the row: a retry of the same chunk
        # replaces its rows instead of adding them twice
        pa.field("load_id", pa.string()),
    ]
)


def rejects_to_table(
    rejects: Sequence[Reject],
    *,
    run_id: str,
    step: str,
    dataset: str,
    rule: str = "parse",
    load_id: str | None = None,
) -> pa.Table:
    """Source rejects as quarantine rows."""
    n = len(rejects)
    now = datetime.now(UTC)
    return pa.table(
        {
            "run_id": [run_id] * n,
            "step": [step] * n,
            "dataset": [dataset] * n,
            "rule": [rule] * n,
            "error": [r.error for r in rejects],
            "source_file": [r.source_file for r in rejects],
            "source_line": [r.source_line for r in rejects],
            "column": [r.column for r in rejects],
            "raw_record": [r.raw_record for r in rejects],
            "quarantined_at": [now] * n,
            "load_id": [load_id] * n,
        },
        schema=QUARANTINE_SCHEMA,
    )
