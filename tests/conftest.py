"""Shared fixtures: real services on 127.0.0.1, skipped on a laptop without them, failing in CI."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))
PG_HOST, PG_PORT = "127.0.0.1", 5432


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    """Render CLI output like a wide terminal, so assertions never depend on line wrapping
    (the console's width otherwise depends on the environment the module was imported in)."""
    from headwater.cli._state import console, err_console

    old = console.width, err_console.width
    console.width = err_console.width = 200
    yield
    console.width, err_console.width = old


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down on a laptop; fail when CI is set (CI must never skip)."""
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = f"hw_test_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database for this test session, dropped afterwards."""
    require_service("MariaDB", "127.0.0.1", 3306)
    import pymysql

    def admin() -> Any:
        return pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", autocommit=True
        )

    name = f"hw_test_{uuid.uuid4().hex[:10]}"
    with admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        with admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Metadata URL for both backends: SQLite in tmp_path, and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metadata.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    import psycopg

    # one fresh database per test keeps Alembic's version table isolated
    name = f"hw_md_{uuid.uuid4().hex[:10]}"
    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from sqlalchemy import create_engine  # noqa: F401 - engines are disposed by tests

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A local moto S3 server in its own process; yields fsspec/deltalake-style settings.

    A separate process, not moto's threaded server: deltalake's ``DeltaTable.history()``
    waits on S3 while holding the GIL, which deadlocks against an in-process server.
    """
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = "import sys; from moto.server import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
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
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)


@pytest.fixture
def s3_bucket(s3_server: dict[str, str]) -> str:
    """A fresh bucket on the moto server; returns its name."""
    import boto3

    name = f"hw-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name
