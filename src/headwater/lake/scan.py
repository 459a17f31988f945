"""The pyarrow dataset over a Delta table version, with deltalake's pruning kept correct.

deltalake (1.6.6) turns each file's Delta statistics into a fragment guarantee such as
``note >= "a" and note <= "z"``. A file without statistics for a column (files written
before the column was added by schema evolution, or files whose writer skipped them) gets
``note >= null`` instead, which pyarrow takes as "no row can match": a filter on that column
then silently drops every row of the file, ``note IS NULL`` included. Such guarantees are
dropped here, so those files are always scanned (their Parquet row-group statistics still
prune); every other file keeps its guarantee.
"""

from __future__ import annotations

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.dataset as pads  # type: ignore[import-untyped]
from deltalake import DeltaTable

__all__ = ["scan_dataset"]

_NULL_BOUND = "null["  # how pyarrow prints a typed null literal, e.g. null[string]


def _sound(fragment: pads.Fragment) -> bool:
    return _NULL_BOUND not in str(fragment.partition_expression)


def scan_dataset(table: DeltaTable, schema: pa.Schema) -> pads.Dataset:
    """A pyarrow dataset over the table's current version, read with ``schema``."""
    dataset = table.to_pyarrow_dataset(schema=schema)
    fragments = list(dataset.get_fragments())
    if all(_sound(f) for f in fragments):
        return dataset
    rebuilt = [
        f if _sound(f) else dataset.format.make_fragment(f.path, filesystem=dataset.filesystem)
        for f in fragments
    ]
    return pads.FileSystemDataset(rebuilt, schema, dataset.format, dataset.filesystem)
