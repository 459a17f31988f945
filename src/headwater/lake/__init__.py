"""Managed datasets on Delta Lake: write (append/overwrite/merge), read, versions, time
travel, and the schema registry with its evolution rules.

``Lake`` is imported on first use, so that importing a name helper (for example
``quarantine_name`` in the pipeline language) does not load deltalake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.lake.history import CommitInfo, HistoryEntry, SchemaVersion
from headwater.lake.names import DatasetName, parse_name, quarantine_name
from headwater.lake.schema import WritePlan, compatible, merge_type, normalize_type, plan_write

if TYPE_CHECKING:
    from headwater.lake.lake import Lake

__all__ = [
    "CommitInfo",
    "DatasetName",
    "HistoryEntry",
    "Lake",
    "SchemaVersion",
    "WritePlan",
    "compatible",
    "merge_type",
    "normalize_type",
    "parse_name",
    "plan_write",
    "quarantine_name",
]


def __getattr__(name: str) -> Any:
    if name == "Lake":
        from headwater.lake.lake import Lake

        return Lake
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
