"""Helpers of the merge (upsert) write mode: key checks, source deduplication, predicate."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from headwater.errors import DatasetError

__all__ = ["check_keys", "dedupe_last", "merge_predicate", "quote_identifier"]

_INDEX = "__headwater_row__"


def quote_identifier(name: str) -> str:
    """A SQL identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def merge_predicate(keys: Sequence[str], *, target: str = "t", source: str = "s") -> str:
    """``t."k1" = s."k1" AND ...``: the match condition of an upsert on ``keys``."""
    return " AND ".join(
        f"{target}.{quote_identifier(k)} = {source}.{quote_identifier(k)}" for k in keys
    )


def check_keys(table: pa.Table, keys: Sequence[str], dataset: str) -> None:
    """Refuse null keys: a null never equals anything, so such rows would be inserted again
    on every merge instead of updated, doubling them over time."""
    for key in keys:
        nulls = table.column(key).null_count
        if nulls:
            raise DatasetError(
                f"Cannot merge into dataset `{dataset}`: key column `{key}` has {nulls} null "
                "value(s); a row with a null key can never be matched.",
                dataset=dataset,
                column=key,
                hint="Filter those rows out or fill the key before writing.",
            )


def dedupe_last(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Keep only the last row of ``table`` for each combination of ``keys``.

    The rows kept stay in input order. When no key repeats (the common case) the table is
    returned as is, with no copy.
    """
    if table.num_rows < 2:
        return table
    ones = pa.repeat(pa.scalar(1, pa.int64()), table.num_rows)
    index = pc.subtract(pc.cumulative_sum(ones), 1)
    grouped = (
        table.select(list(keys))
        .append_column(_INDEX, index)
        .group_by(list(keys))
        .aggregate([(_INDEX, "max")])
    )
    if grouped.num_rows == table.num_rows:
        return table
    keep = pc.sort_indices(grouped.column(f"{_INDEX}_max"))
    return table.take(pc.take(grouped.column(f"{_INDEX}_max"), keep))
