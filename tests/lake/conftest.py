"""Fixtures of the lake tests: a metadata store on both backends and a lake in tmp_path."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.lake import Lake
from headwater.metadata.store import MetadataStore


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(metadata_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def lake(tmp_path: Path, store: MetadataStore) -> Lake:
    return Lake(str(tmp_path / "lake"), store)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[MetadataStore]:
    """SQLite only, for tests whose subject is not the metadata backend."""
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_lake(tmp_path: Path, sqlite_store: MetadataStore) -> Lake:
    return Lake(str(tmp_path / "lake"), sqlite_store)


@pytest.fixture(scope="session")
def s3_process_server() -> Iterator[dict[str, str]]:
    """A moto S3 server in its own process, with the same settings as ``s3_server``.

    deltalake's ``DeltaTable.history()`` waits on S3 while holding the GIL, which deadlocks
    against the in-process (threaded) moto server of ``s3_server``; a separate process cannot.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = "import sys; from moto.server import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the moto S3 server process did not start")
                time.sleep(0.1)
        yield {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "key": "testing",
            "secret": "testing",
            "region": "us-east-1",
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_process_bucket(s3_process_server: dict[str, str]) -> str:
    import boto3

    name = f"hw-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_process_server["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name
