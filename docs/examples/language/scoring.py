"""Functions of the `python` step example (docs/examples/language/python_step.yaml).

A workspace keeps such a module next to headwater.yaml; `function: scoring:score_orders`
imports it from there.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc


def score_orders(orders: pa.RecordBatchReader, threshold: float) -> Iterator[pa.RecordBatch]:
    """Flag large orders, one batch at a time (`batches: true` streams the input)."""
    for batch in orders:
        large = pc.greater_equal(batch.column("amount"), threshold)
        yield batch.append_column("large", large)


def publish_stats(scored: pa.Table) -> None:
    """An optional side job: its failure must not fail the run (`on_failure: continue`)."""
    raise ConnectionError("the stats service is down")


def notify(message: str) -> None:
    """The failure handler of `score`: here it only writes a note."""
    with Path("notifications.txt").open("a", encoding="utf-8") as out:
        out.write(message + "\n")
