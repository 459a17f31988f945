"""Managed datasets on Delta Lake: write (append/overwrite/merge), read, versions, time
travel, and the schema registry with its evolution rules."""

from headwater.lake.history import CommitInfo, HistoryEntry, SchemaVersion
from headwater.lake.lake import Lake
from headwater.lake.names import DatasetName, parse_name, quarantine_name
from headwater.lake.schema import WritePlan, compatible, merge_type, normalize_type, plan_write

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
