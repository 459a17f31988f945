"""Fixtures of the lake tests: a metadata store on both backends and a lake in tmp_path."""

from __future__ import annotations

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
