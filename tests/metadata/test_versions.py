"""Pipeline versions and step outputs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from headwater.metadata import MetadataStore
from headwater.metadata.versions import (
    get_pipeline_version,
    record_pipeline_version,
    record_step_outputs,
    runs_by_trigger,
    spec_hash,
    step_outputs,
)


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    s = MetadataStore(metadata_url)
    yield s
    s.close()


def test_tables_exist(store: MetadataStore) -> None:
    assert {"pipeline_versions", "step_outputs"} <= set(inspect(store.engine).get_table_names())


def test_one_row_per_text_and_outputs_per_step(store: MetadataStore) -> None:
    text = "name: p\nsteps: []\n"
    first = record_pipeline_version(store, "p", text, "pipelines/p.yaml")
    assert first == record_pipeline_version(store, "p", text) == spec_hash(text)
    row = get_pipeline_version(store, first)
    assert row is not None and (row.text, row.source) == (text, "pipelines/p.yaml")
    assert record_pipeline_version(store, "p", text + "# v2\n") != first

    store.start_run("r1", "p", trigger="backfill", params={"spec_hash": first})
    record_step_outputs(store, "r1", "extract", {"raw.a": 3, "raw.a__quarantine": 1})
    record_step_outputs(store, "r1", "extract", {"raw.a": 4})  # a later attempt
    record_step_outputs(store, "r1", "clean", {"staging.a": 0})
    assert step_outputs(store, "r1") == {
        "extract": {"raw.a": 4, "raw.a__quarantine": 1},
        "clean": {"staging.a": 0},
    }
    assert [r.id for r in runs_by_trigger(store, "p", "backfill")] == ["r1"]
    assert runs_by_trigger(store, "p", "manual") == []
