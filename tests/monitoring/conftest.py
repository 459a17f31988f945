"""Workspaces for the monitoring tests: the docs' orders pipeline on SQLite and PostgreSQL
metadata, and a pipeline whose source is down (a transient error, retried)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from headwater.workspace import Workspace
from tests.docs.test_examples import ORDERS_CSV

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DOWN = """\
name: down
steps:
  - name: pull
    type: extract
    connection: down
    stream: public.t
    to: raw.t
    retries: 2
    retry_delay: 0.01
"""


def make_workspace(root: Path, metadata_url: str | None = None) -> Path:
    Workspace.init(root).close()
    config: dict[str, object] = {
        "name": "mon",
        "connections": {
            "landing": {"type": "files", "path": "data"},
            "exports": {"type": "files", "path": "exports"},
            "down": {"type": "postgres", "url": f"postgresql://u@127.0.0.1:{closed_port()}/db"},
        },
    }
    if metadata_url:
        config["metadata_url"] = metadata_url
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    (root / "data" / "orders.csv").write_text(ORDERS_CSV)
    shutil.copy(
        ROOT / "docs" / "examples" / "orders_pipeline.yaml", root / "pipelines" / "orders.yaml"
    )
    (root / "pipelines" / "down.yaml").write_text(DOWN)
    return root


@pytest.fixture
def ws(tmp_path: Path, metadata_url: str) -> Iterator[Workspace]:
    root = make_workspace(tmp_path / "ws", metadata_url)
    with Workspace.open(root) as workspace:
        yield workspace
