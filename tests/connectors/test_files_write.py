"""The files destination on local disk: formats, modes, atomic overwrite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.connectors.files.storage import split_extension
from headwater.errors import ConfigError, ConnectorError, UnsupportedOperationError
from tests.connectors.files_support import destination, read, reader_of, source

DATA = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "name": pa.array(["a", "", None, 'quote " and, comma'], pa.string()),
        "amount": pa.array(
            [Decimal("1.50"), None, Decimal("-2.25"), Decimal("0.00")], pa.decimal128(12, 2)
        ),
        "day": pa.array([dt.date(2024, 1, 1)] * 4, pa.date32()),
        "at": pa.array([dt.datetime(2024, 1, 1, 12, 30, 0, 123456)] * 4, pa.timestamp("us")),
        "ok": pa.array([True, False, None, True]),
        "score": pa.array([0.1, 1e300, None, -0.0], pa.float64()),
    }
)
SCHEMA = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "amount": "DECIMAL(12,2)",
    "day": "DATE",
    "at": "TIMESTAMP",
    "ok": "BOOLEAN",
    "score": "DOUBLE",
}


@pytest.mark.parametrize(
    "target",
    [
        "out/o.parquet",
        "out/o.csv",
        "out/o.jsonl",
        "out/o.csv.gz",
        "out/o.jsonl.zst",
        "out/o.csv.zst",
    ],
)
def test_round_trip_per_format(tmp_path: Path, target: str) -> None:
    result = destination(tmp_path).write(target, reader_of(DATA), mode="overwrite")
    assert result.rows == 4
    assert result.location == str(tmp_path / target)
    assert result.bytes == (tmp_path / target).stat().st_size > 0
    fmt = split_extension(target)[0]
    options = {} if fmt == "parquet" else {"schema": SCHEMA}
    back, sink = read(source(tmp_path), target, options=options)
    assert sink.items == []
    assert back.to_pylist() == DATA.to_pylist()


def test_csv_write_options(tmp_path: Path) -> None:
    destination(tmp_path).write(
        "o.csv",
        reader_of(DATA.select(["id", "name"])),
        mode="overwrite",
        options={"delimiter": ";", "header": False},
    )
    assert (tmp_path / "o.csv").read_text().splitlines()[0] == '1;"a"'


def test_parquet_compression_and_row_groups(tmp_path: Path) -> None:
    big = pa.table({"x": list(range(10_000))})
    destination(tmp_path).write(
        "big.parquet",
        reader_of(big),
        mode="overwrite",
        options={"compression": "gzip", "row_group_rows": 3000},
    )
    meta = pq.ParquetFile(tmp_path / "big.parquet").metadata
    assert meta.num_rows == 10_000 and meta.num_row_groups == 4
    assert meta.row_group(0).column(0).compression == "GZIP"


def test_append_adds_part_files_to_a_directory_target(tmp_path: Path) -> None:
    dst = destination(tmp_path)
    for _ in range(3):
        result = dst.write(
            "exports/orders/", reader_of(DATA), mode="append", options={"format": "parquet"}
        )
        assert result.rows == 4
    parts = sorted(p.name for p in (tmp_path / "exports" / "orders").iterdir())
    assert len(parts) == 3
    assert all(p.startswith("part-") and p.endswith(".parquet") for p in parts)
    back, _ = read(source(tmp_path), "exports/orders")
    assert back.num_rows == 12


def test_directory_target_without_format_uses_the_connection_default(tmp_path: Path) -> None:
    destination(tmp_path, format="jsonl").write("exports/x", reader_of(DATA), mode="append")
    [part] = list((tmp_path / "exports" / "x").iterdir())
    assert part.suffix == ".jsonl"
    with pytest.raises(ConfigError, match="format"):
        destination(tmp_path).write("exports/y/", reader_of(DATA), mode="append")


def test_compressed_parts(tmp_path: Path) -> None:
    destination(tmp_path).write(
        "d/", reader_of(DATA), mode="append", options={"format": "csv", "compression": "gzip"}
    )
    [part] = list((tmp_path / "d").iterdir())
    assert part.name.endswith(".csv.gz")
    back, _ = read(source(tmp_path), "d/", options={"schema": SCHEMA})
    assert back.num_rows == 4


def test_overwrite_replaces_a_directory(tmp_path: Path) -> None:
    dst = destination(tmp_path)
    for _ in range(2):
        dst.write("d/", reader_of(DATA), mode="append", options={"format": "parquet"})
    result = dst.write(
        "d/", reader_of(DATA.slice(0, 1)), mode="overwrite", options={"format": "parquet"}
    )
    assert result.rows == 1
    assert len(list((tmp_path / "d").iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no staging directories left
    back, _ = read(source(tmp_path), "d")
    assert back.num_rows == 1


def test_append_to_a_single_file_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperationError) as err:
        destination(tmp_path).write("exports/orders.parquet", reader_of(DATA), mode="append")
    assert "'exports/orders/'" in (err.value.hint or "")


def test_merge_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperationError, match="merge"):
        destination(tmp_path).write("o.parquet", reader_of(DATA), mode="merge", keys=["id"])


def test_format_and_compression_must_match_the_file_name(tmp_path: Path) -> None:
    dst = destination(tmp_path)
    with pytest.raises(ConfigError, match="contradicts"):
        dst.write("o.csv", reader_of(DATA), mode="overwrite", options={"format": "parquet"})
    with pytest.raises(ConfigError, match=r"o\.csv\.gz"):
        dst.write("o.csv", reader_of(DATA), mode="overwrite", options={"compression": "gzip"})


def test_target_may_not_leave_the_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        destination(tmp_path / "base").write("../x.parquet", reader_of(DATA), mode="overwrite")


def test_nested_columns_cannot_go_to_csv(tmp_path: Path) -> None:
    nested = pa.table({"tags": [["a", "b"]]})
    with pytest.raises(ConnectorError, match="tags"):
        destination(tmp_path).write("n.csv", reader_of(nested), mode="overwrite")
    assert list(tmp_path.iterdir()) == []
    result = destination(tmp_path).write("n.jsonl", reader_of(nested), mode="overwrite")
    assert result.rows == 1


def failing_reader(data: pa.Table, after: int = 2) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(data.to_batches(max_chunksize=1)):
            if i == after:
                raise RuntimeError("upstream died")
            yield batch

    return pa.RecordBatchReader.from_batches(data.schema, batches())


@pytest.mark.parametrize("target", ["o.parquet", "o.csv", "o.jsonl"])
def test_failing_overwrite_leaves_the_old_file_intact(tmp_path: Path, target: str) -> None:
    dst = destination(tmp_path)
    dst.write(target, reader_of(DATA), mode="overwrite")
    before = (tmp_path / target).read_bytes()
    with pytest.raises(ConnectorError, match="upstream died"):
        dst.write(target, failing_reader(DATA), mode="overwrite")
    assert (tmp_path / target).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target]  # the temporary file is gone


def test_failing_directory_writes_leave_nothing_behind(tmp_path: Path) -> None:
    dst = destination(tmp_path)
    dst.write("d/", reader_of(DATA), mode="append", options={"format": "csv"})
    parts = sorted((tmp_path / "d").iterdir())
    for mode in ("append", "overwrite"):
        with pytest.raises(ConnectorError):
            dst.write("d/", failing_reader(DATA), mode=mode, options={"format": "csv"})  # type: ignore[arg-type]
        assert sorted((tmp_path / "d").iterdir()) == parts
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_empty_stream_writes_an_empty_file(tmp_path: Path) -> None:
    empty = pa.RecordBatchReader.from_batches(DATA.schema, [])
    result = destination(tmp_path).write("e.parquet", empty, mode="overwrite")
    assert result.rows == 0
    assert pq.read_table(tmp_path / "e.parquet").schema == DATA.schema


def test_check_accepts_a_base_that_can_be_created(tmp_path: Path) -> None:
    destination(tmp_path / "new" / "dir").check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConnectorError):
        destination(tmp_path / "file" / "sub").check()
