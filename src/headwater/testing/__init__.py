"""Helpers for testing pipelines and connectors built on Headwater.

- :class:`MemoryFactory` — the ``memory`` connector: an in-process source and
  destination keyed by a store name, for tests that need no files or servers.
- :func:`workspace_for_test` — a throw-away workspace in a temporary directory.
- :func:`assert_table_equal` — compare Arrow tables with a readable diff.
- :mod:`headwater.testing.strategies` — hypothesis strategies for Arrow data.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from headwater.connectors.base import (
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    Destination,
    RejectSink,
    SchemaContract,
    Source,
    Stream,
    WriteMode,
    WriteResult,
)
from headwater.errors import SourceNotFoundError, UnsupportedOperationError
from headwater.workspace import Workspace

__all__ = [
    "MemoryConfig",
    "MemoryFactory",
    "assert_table_equal",
    "memory_tables",
    "workspace_for_test",
]

_STORES: dict[str, dict[str, pa.Table]] = {}
_LOCK = threading.Lock()


def memory_tables(store: str = "default") -> dict[str, pa.Table]:
    """The live mapping of table name -> Arrow table behind a ``memory`` connection."""
    with _LOCK:
        return _STORES.setdefault(store, {})


class MemoryConfig(ConnectorConfig):
    store: str = Field("default", description="Name of the in-process table store.")


class _MemoryClient:
    def __init__(self, config: MemoryConfig) -> None:
        self.tables = memory_tables(config.store)

    def check(self) -> None:
        return None

    def discover(self) -> list[Stream]:
        return [Stream(name, schema=t.schema) for name, t in sorted(self.tables.items())]

    def read(
        self,
        stream: str,
        *,
        columns: list[str] | None = None,
        predicate: str | None = None,
        limit: int | None = None,
        state: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        rejects: RejectSink | None = None,
        order_by: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        if stream not in self.tables:
            raise SourceNotFoundError(f"memory table `{stream}` does not exist", connector="memory")
        table = self.tables[stream]
        if predicate:
            import duckdb

            con = duckdb.connect(config={"autoinstall_known_extensions": False})
            try:
                con.register("memory_table", table)
                table = con.sql(f"SELECT * FROM memory_table WHERE {predicate}").to_arrow_table()
            finally:
                con.close()
        if order_by:
            table = table.sort_by([(c, "ascending", "at_end") for c in order_by])
        if columns:
            table = table.select(columns)
        if limit is not None:
            table = table.slice(0, limit)
        yield from table.to_batches(max_chunksize=int((options or {}).get("batch_rows", 65_536)))

    def column_bounds(
        self,
        stream: str,
        column: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        batches = list(self.read(stream, columns=None, predicate=predicate))
        if not batches:
            return None, None
        import pyarrow.compute as pc

        values = pa.Table.from_batches(batches).column(column)
        bounds = pc.min_max(values)
        return bounds["min"].as_py(), bounds["max"].as_py()

    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        load_id: str | None = None,
        schema_contract: SchemaContract = "evolve",
        rejects: RejectSink | None = None,
    ) -> WriteResult:
        if mode == "merge":
            raise UnsupportedOperationError(
                "the memory connector does not merge", connector="memory"
            )
        if schema_contract != "evolve":
            raise UnsupportedOperationError(
                f"the memory connector has no schema contract `{schema_contract}`",
                connector="memory",
            )
        incoming = batches.read_all()
        with _LOCK:
            if mode == "append" and target in self.tables:
                self.tables[target] = pa.concat_tables([self.tables[target], incoming])
            else:
                self.tables[target] = incoming
        return WriteResult(
            rows=incoming.num_rows, bytes=incoming.nbytes, location=f"memory:{target}"
        )


class MemoryFactory(ConnectorFactory):
    """In-process tables: a source and a destination for tests."""

    name: ClassVar[str] = "memory"
    config_model: ClassVar[type[ConnectorConfig]] = MemoryConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        source=True,
        destination=True,
        incremental=True,
        partitioned=True,
        write_modes=("append", "overwrite"),
    )
    description: ClassVar[str] = "In-process Arrow tables (testing)."

    def source(self, config: ConnectorConfig) -> Source:
        assert isinstance(config, MemoryConfig)
        return _MemoryClient(config)

    def destination(self, config: ConnectorConfig) -> Destination:
        assert isinstance(config, MemoryConfig)
        return _MemoryClient(config)


@contextmanager
def workspace_for_test(
    path: str | Path | None = None, *, connections: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Workspace]:
    """A fresh workspace (in a temporary directory unless ``path`` is given)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="headwater-") as tmp:
        root = Path(path) if path is not None else Path(tmp)
        Workspace.init(root).close()
        config = {"name": "test", "connections": dict(connections or {})}
        (root / "headwater.yaml").write_text(yaml.safe_dump(config))
        with Workspace.open(root) as ws:
            yield ws


def assert_table_equal(
    actual: pa.Table,
    expected: pa.Table,
    *,
    sort_by: list[str] | None = None,
    check_schema: bool = True,
) -> None:
    """Assert two Arrow tables hold the same rows (optionally after sorting)."""
    if sort_by:
        actual = actual.sort_by([(c, "ascending") for c in sort_by])
        expected = expected.sort_by([(c, "ascending") for c in sort_by])
    if check_schema and not actual.schema.equals(expected.schema):
        raise AssertionError(
            f"schemas differ:\nactual:   {actual.schema}\nexpected: {expected.schema}"
        )
    if actual.num_rows != expected.num_rows:
        raise AssertionError(f"row counts differ: {actual.num_rows} != {expected.num_rows}")
    a, e = actual.to_pylist(), expected.to_pylist()
    for i, (ra, re) in enumerate(zip(a, e, strict=True)):
        if ra != re:
            raise AssertionError(f"row {i} differs:\nactual:   {ra}\nexpected: {re}")
