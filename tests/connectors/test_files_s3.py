"""The files connector against S3 (a local moto server): read, write, rejects, check."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import ConnectorError, SourceNotFoundError, Transient
from tests.connectors.files_support import destination, read, reader_of, s3_settings, source

DATA = pa.table({"id": [1, 2, 3], "name": ["a", "b", None], "amount": [1.5, 2.0, 3.25]})


@pytest.fixture
def s3(s3_server: dict[str, str], s3_bucket: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_server["endpoint_url"],
        aws_access_key_id=s3_server["key"],
        aws_secret_access_key=s3_server["secret"],
        region_name=s3_server["region"],
    )
    buf = io.BytesIO()
    pq.write_table(DATA, buf)
    objects = {
        "in/orders-1.csv": b"id,name,amount\n1,a,1.5\n2,b,2.0\n",
        "in/orders-2.csv": b"id,name,amount\n3,,3.25\n4,d,not-a-number\n",
        "in/events.jsonl": b'{"id": 1}\n{oops\n{"id": 3}\n',
        "in/orders.parquet": buf.getvalue(),
    }
    for key, body in objects.items():
        client.put_object(Bucket=s3_bucket, Key=f"base/{key}", Body=body)
    settings = {"path": f"s3://{s3_bucket}/base", **s3_settings(s3_server)}
    yield client, settings


def test_s3_reads_csv_glob_with_rejects(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    data, sink = read(
        source(**settings), "in/orders-*.csv", options={"schema": {"amount": "DOUBLE"}}
    )
    assert sorted(data["id"].to_pylist()) == [1, 2, 3]
    [reject] = sink.items
    assert reject.source_file == f"{settings['path']}/in/orders-2.csv"
    assert reject.source_line == 3 and reject.column == "amount"


def test_s3_reads_jsonl_and_parquet(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    src = source(**settings)
    data, sink = read(src, "in/events.jsonl")
    assert data["id"].to_pylist() == [1, 3]
    assert [r.source_line for r in sink.items] == [2]
    data, _ = read(src, "in/orders.parquet", columns=["id"], predicate="amount > 1.5")
    assert data.to_pydict() == {"id": [2, 3]}


def test_s3_missing_object(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    with pytest.raises(SourceNotFoundError, match="s3://"):
        source(**settings).read("in/nope.csv")


def test_s3_discover(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    streams = {s.name: s for s in source(**settings).discover()}
    assert set(streams) == {
        "in/orders-1.csv",
        "in/orders-2.csv",
        "in/events.jsonl",
        "in/orders.parquet",
    }
    schema = streams["in/orders.parquet"].schema
    assert schema is not None and schema.names == ["id", "name", "amount"]


@pytest.mark.parametrize("target", ["out/o.parquet", "out/o.csv.gz", "out/o.jsonl"])
def test_s3_write_round_trip(s3: tuple[Any, dict[str, Any]], target: str) -> None:
    client, settings = s3
    result = destination(**settings).write(target, reader_of(DATA), mode="overwrite")
    assert result.rows == 3 and result.bytes > 0
    assert result.location == f"{settings['path']}/{target}"
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=settings["path"][5:].split("/")[0])["Contents"]
    ]
    assert f"base/{target}" in keys and not any(".tmp-" in k for k in keys)
    options = (
        {}
        if target.endswith("parquet")
        else {"schema": {"id": "BIGINT", "name": "VARCHAR", "amount": "DOUBLE"}}
    )
    back, _ = read(source(**settings), target, options=options)
    assert back.to_pylist() == DATA.to_pylist()


def test_s3_append_and_overwrite_directory(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    dst, src = destination(**settings), source(**settings)
    for _ in range(2):
        dst.write("parts/", reader_of(DATA), mode="append", options={"format": "parquet"})
    assert read(src, "parts/")[0].num_rows == 6
    dst.write(
        "parts/", reader_of(DATA.slice(0, 1)), mode="overwrite", options={"format": "parquet"}
    )
    assert read(src, "parts/")[0].num_rows == 1


def test_s3_failing_overwrite_keeps_the_old_object(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    dst = destination(**settings)
    dst.write("keep.parquet", reader_of(DATA), mode="overwrite")

    def batches() -> Iterator[pa.RecordBatch]:
        yield DATA.to_batches()[0]
        raise RuntimeError("upstream died")

    with pytest.raises(ConnectorError):
        dst.write(
            "keep.parquet",
            pa.RecordBatchReader.from_batches(DATA.schema, batches()),
            mode="overwrite",
        )
    assert read(source(**settings), "keep.parquet")[0].num_rows == 3
    names = [s.name for s in source(**settings).discover()]
    assert not any(".tmp-" in n for n in names)


def test_s3_check(s3: tuple[Any, dict[str, Any]]) -> None:
    _, settings = s3
    source(**settings).check()
    destination(**settings).check()


def test_s3_wrong_endpoint_fails_fast_with_a_short_error(s3_server: dict[str, str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConnectorError) as err:
        source(
            path="s3://bucket/x",
            endpoint_url=f"http://127.0.0.1:{port}",
            key_id="AKIAEXAMPLE",
            secret="very-secret-value",
            connect_timeout=1,
            read_timeout=1,
        ).check()
    assert time.monotonic() - started < 30
    text = str(err.value)
    assert "very-secret-value" not in text and len(text) < 600
    assert "endpoint_url" in (err.value.hint or "")
    assert isinstance(err.value, Transient)  # an unreachable endpoint is worth a retry


def test_s3_endpoint_credentials_never_reach_the_error(s3_server: dict[str, str]) -> None:
    password = "pw-in-the-url-7731"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectorError) as err:
        source(
            path="s3://bucket/x",
            endpoint_url=f"http://admin:{password}@127.0.0.1:{port}",
            key_id="AKIA-KEY-ID-4410",
            secret="secret-value-9922",
            connect_timeout=1,
            read_timeout=1,
        ).check()
    shown = [str(err.value), err.value.hint or "", repr(err.value.attrs())]
    for text in shown:
        for value in (password, "AKIA-KEY-ID-4410", "secret-value-9922"):
            assert value not in text
    assert f"http://admin:****@127.0.0.1:{port}" in (err.value.hint or "")


def test_s3_silent_endpoint_times_out(s3_server: dict[str, str]) -> None:
    """A server that accepts connections and never answers must not hang check()."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(ConnectorError):
            source(
                path="s3://bucket/x",
                endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
                key_id="k",
                secret="s",
                connect_timeout=1,
                read_timeout=1,
            ).check()
        assert time.monotonic() - started < 30
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_s3_rejects_carry_the_s3_uri(s3: tuple[Any, dict[str, Any]]) -> None:
    client, settings = s3
    bucket = settings["path"][5:].split("/")[0]
    client.put_object(
        Bucket=bucket, Key="base/j/x.jsonl", Body=(json.dumps({"a": 1}) + "\nnope\n").encode()
    )
    _, sink = read(source(**settings), "j/x.jsonl")
    assert [(r.source_file, r.source_line) for r in sink.items] == [
        (f"{settings['path']}/j/x.jsonl", 2)
    ]
