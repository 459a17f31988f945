"""Helpers shared by the files connector tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from headwater.connectors import ListRejectSink, get_connector
from headwater.connectors.files.destination import FilesDestination
from headwater.connectors.files.factory import FilesConfig
from headwater.connectors.files.source import FilesSource


def config(path: Path | str, **kwargs: Any) -> FilesConfig:
    return FilesConfig(path=str(path), **kwargs)


def source(path: Path | str, **kwargs: Any) -> FilesSource:
    src = get_connector("files").source(config(path, **kwargs))
    assert isinstance(src, FilesSource)
    return src


def destination(path: Path | str, **kwargs: Any) -> FilesDestination:
    dst = get_connector("files").destination(config(path, **kwargs))
    assert isinstance(dst, FilesDestination)
    return dst


def table(batches: Iterable[pa.RecordBatch]) -> pa.Table:
    batches = list(batches)
    for batch in batches:
        assert isinstance(batch, pa.RecordBatch)
    return pa.Table.from_batches(batches) if batches else pa.table({})


def read(src: FilesSource, stream: str, **kwargs: Any) -> tuple[pa.Table, ListRejectSink]:
    sink = ListRejectSink()
    return table(src.read(stream, rejects=sink, **kwargs)), sink


def reader_of(data: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=3))


def s3_settings(server: dict[str, str]) -> dict[str, Any]:
    return {
        "endpoint_url": server["endpoint_url"],
        "key_id": server["key"],
        "secret": server["secret"],
        "region": server["region"],
    }
