"""The connector contract, checked for every registered connector, filtered by capability.

Every name in the registry gets the factory checks. Source and destination checks
need a place holding known data: a connector joins them by adding a *harness* to
``HARNESSES`` (a function that returns a config whose source offers ``SAMPLE`` as a
stream and whose destination can write and read back a target). A connector
without a harness is skipped with that reason, never silently.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.connectors import (
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    Destination,
    ListRejectSink,
    Source,
    Stream,
    WriteResult,
    available_connectors,
    get_connector,
)
from headwater.errors import UnsupportedOperationError

SAMPLE = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "name": pa.array(["ann", "bob", None, "dee", "eve"], pa.string()),
        "amount": pa.array([1.5, 2.0, 3.25, None, 5.0], pa.float64()),
    }
)
# modules a factory must not import: drivers load when a source or destination is built
HEAVY_MODULES = ("duckdb", "s3fs", "botocore", "psycopg", "pymysql", "deltalake", "redis", "nats")


@dataclass
class Harness:
    config: ConnectorConfig
    stream: str
    target: str
    read_back: Callable[[str], pa.Table]
    write_options: dict[str, Any] = field(default_factory=dict)


def files_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from headwater.connectors.files.factory import FilesConfig

    pq.write_table(SAMPLE, tmp_path / "sample.parquet")
    config = FilesConfig(path=str(tmp_path))

    def read_back(target: str) -> pa.Table:
        src = get_connector("files").source(config)
        return pa.Table.from_batches(list(src.read(target)))

    return Harness(config, "sample.parquet", "out/", read_back, {"format": "parquet"})


def memory_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from headwater.testing import MemoryConfig, memory_tables

    store = f"conformance-{request.node.name}"
    tables = memory_tables(store)
    tables.clear()
    tables["sample"] = SAMPLE
    return Harness(MemoryConfig(store=store), "sample", "out", lambda target: tables[target])


def postgres_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    import uuid

    from headwater.connectors.postgres.factory import PostgresConfig

    config = PostgresConfig(url=request.getfixturevalue("postgres_url"))
    table = f"conformance_{uuid.uuid4().hex[:8]}"
    dst = get_connector("postgres").destination(config)
    dst.write(table, pa.RecordBatchReader.from_batches(SAMPLE.schema, SAMPLE.to_batches()))

    def read_back(target: str) -> pa.Table:
        return pa.Table.from_batches(list(get_connector("postgres").source(config).read(target)))

    return Harness(config, f"public.{table}", f"{table}_out", read_back)


def _database_file_harness(name: str, config: ConnectorConfig) -> Harness:
    """A harness for a file database (sqlite, duckdb): SAMPLE written as table `sample`."""
    dst = get_connector(name).destination(config)
    dst.write("sample", pa.RecordBatchReader.from_batches(SAMPLE.schema, SAMPLE.to_batches()))

    def read_back(target: str) -> pa.Table:
        return pa.Table.from_batches(list(get_connector(name).source(config).read(target)))

    return Harness(config, "sample", "out", read_back)


def sqlite_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from headwater.connectors.sqlite.factory import SqliteConfig

    return _database_file_harness("sqlite", SqliteConfig(path=str(tmp_path / "c.sqlite")))


def duckdb_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from headwater.connectors.duckdb_file.factory import DuckdbConfig

    return _database_file_harness("duckdb", DuckdbConfig(path=str(tmp_path / "c.duckdb")))


def mariadb_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    import uuid

    from headwater.connectors.mariadb.factory import MariadbConfig

    config = MariadbConfig(url=request.getfixturevalue("mariadb_url"))
    table = f"conformance_{uuid.uuid4().hex[:8]}"
    dst = get_connector("mariadb").destination(config)
    dst.write(table, pa.RecordBatchReader.from_batches(SAMPLE.schema, SAMPLE.to_batches()))

    def read_back(target: str) -> pa.Table:
        return pa.Table.from_batches(list(get_connector("mariadb").source(config).read(target)))

    return Harness(config, table, f"{table}_out", read_back)


HARNESSES: dict[str, Callable[[Path, pytest.FixtureRequest], Harness]] = {
    "duckdb": duckdb_harness,
    "files": files_harness,
    "mariadb": mariadb_harness,
    "sqlite": sqlite_harness,
    "memory": memory_harness,
    "postgres": postgres_harness,
}


def names(capability: str | None = None) -> list[str]:
    out = []
    for name in available_connectors():
        if capability is None or getattr(get_connector(name).capabilities, capability):
            out.append(name)
    return out


def harness(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    if name not in HARNESSES:
        pytest.fail(f"connector `{name}` has no conformance harness in {__name__}.HARNESSES")
    return HARNESSES[name](tmp_path, request)


def by_id(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: row["id"])


# -- every connector ---------------------------------------------------------------------


@pytest.mark.parametrize("name", names())
def test_factory_declares_itself_as_data(name: str) -> None:
    factory = get_connector(name)
    assert isinstance(factory, ConnectorFactory)
    assert factory.name == name
    assert issubclass(factory.config_model, ConnectorConfig)
    caps = factory.capabilities
    assert isinstance(caps, Capabilities)
    assert set(caps.write_modes) <= {"append", "overwrite", "merge"}
    assert caps.merge == ("merge" in caps.write_modes)
    assert caps.destination == bool(caps.write_modes)
    assert caps.source or caps.destination


@pytest.mark.parametrize("name", names())
def test_undeclared_roles_raise_unsupported(name: str) -> None:
    factory = get_connector(name)
    if not factory.capabilities.source:
        with pytest.raises(UnsupportedOperationError):
            factory.source(ConnectorConfig())
    if not factory.capabilities.destination:
        with pytest.raises(UnsupportedOperationError):
            factory.destination(ConnectorConfig())


@pytest.mark.parametrize("name", names())
def test_factory_is_cheap_to_import(name: str) -> None:
    code = (
        "import sys\n"
        "from headwater.connectors import get_connector\n"
        f"get_connector({name!r})\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"importing the `{name}` factory loaded {done.stdout}"


# -- sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names("source"))
def test_source_reads_the_sample(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    h = harness(name, tmp_path, request)
    src = get_connector(name).source(h.config)
    assert isinstance(src, Source)
    src.check()
    streams = src.discover()
    assert all(isinstance(s, Stream) for s in streams)
    assert h.stream in {s.name for s in streams}
    sink = ListRejectSink()
    batches = list(src.read(h.stream, rejects=sink))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert by_id(pa.Table.from_batches(batches)) == by_id(SAMPLE)
    assert sink.items == []


@pytest.mark.parametrize("name", names("pushdown"))
def test_source_applies_pushdowns(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    h = harness(name, tmp_path, request)
    src = get_connector(name).source(h.config)

    def read(**kwargs: Any) -> pa.Table:
        return pa.Table.from_batches(list(src.read(h.stream, **kwargs)))

    assert read(columns=["amount", "id"]).column_names == ["amount", "id"]
    assert sorted(read(predicate="id > 3")["id"].to_pylist()) == [4, 5]
    assert read(limit=2).num_rows == 2
    assert read(columns=["id"], predicate="amount >= 2", limit=10).column_names == ["id"]


# -- destinations --------------------------------------------------------------------------


def reader() -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(SAMPLE.schema, SAMPLE.to_batches(max_chunksize=2))


@pytest.mark.parametrize("name", names("destination"))
def test_destination_write_modes(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    h = harness(name, tmp_path, request)
    factory = get_connector(name)
    dst = factory.destination(h.config)
    assert isinstance(dst, Destination)
    dst.check()
    modes = factory.capabilities.write_modes
    if "overwrite" in modes:
        for _ in range(2):
            result = dst.write(h.target, reader(), mode="overwrite", options=h.write_options)
            assert isinstance(result, WriteResult) and result.rows == SAMPLE.num_rows
        assert by_id(h.read_back(h.target)) == by_id(SAMPLE)
    if "append" in modes:
        dst.write(h.target, reader(), mode="append", options=h.write_options)
        expected = 2 if "overwrite" in modes else 1
        assert h.read_back(h.target).num_rows == expected * SAMPLE.num_rows
    if "merge" in modes:
        result = dst.write(h.target, reader(), mode="merge", keys=["id"], options=h.write_options)
        assert result.rows == SAMPLE.num_rows
    for mode in {"append", "overwrite", "merge"} - set(modes):
        with pytest.raises(UnsupportedOperationError):
            dst.write(h.target, reader(), mode=mode, keys=["id"], options=h.write_options)  # type: ignore[arg-type]
