"""Shared helpers for quality tests: a workspace with pipelines written to files."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.testing import workspace_for_test
from headwater.workspace import Workspace


@pytest.fixture
def ws() -> Iterator[Workspace]:
    with workspace_for_test() as workspace:
        yield workspace


def write_pipeline(ws: Workspace, text: str, name: str = "quality.yaml") -> Path:
    path = Path(ws.root) / "pipelines" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path
