"""The metadata store on SQLite and PostgreSQL: migrations, runs, checkpoints, schema versions."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from headwater.errors import MetadataError
from headwater.metadata import MetadataStore
from headwater.metadata.models import CheckResultRow


@pytest.fixture
def store(metadata_url: str) -> MetadataStore:
    s = MetadataStore(metadata_url)
    yield s
    s.close()


def test_migrations_create_every_table(store: MetadataStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "datasets",
        "schema_versions",
        "connections",
        "secrets",
        "runs",
        "step_runs",
        "checkpoints",
        "check_results",
        "alembic_version",
    } <= tables


def test_migrate_is_idempotent(metadata_url: str) -> None:
    MetadataStore(metadata_url).close()
    again = MetadataStore(metadata_url)  # second open applies nothing and does not fail
    assert again.list_runs() == []
    again.close()


def test_run_and_steps_round_trip(store: MetadataStore) -> None:
    store.start_run("run-1", "orders", pipeline_file="pipelines/orders.yaml")
    sid = store.add_step_run("run-1", "extract", "extract")
    store.update_step_run(sid, status="succeeded", rows_in=10, rows_out=8, rows_quarantined=2)
    store.finish_run("run-1", "succeeded")
    run = store.get_run("run-1")
    assert run is not None
    assert run.status == "succeeded" and run.ended_at is not None
    assert [(s.step, s.rows_in, s.rows_out, s.rows_quarantined) for s in run.steps] == [
        ("extract", 10, 8, 2)
    ]
    assert store.get_run("run-") is not None  # unique prefix
    assert [r.id for r in store.list_runs(pipeline="orders")] == ["run-1"]
    assert store.list_runs(pipeline="other") == []


def test_checkpoints_upsert(store: MetadataStore) -> None:
    assert store.get_checkpoint("p", "s") is None
    store.save_checkpoint("p", "s", {"cursor": 1}, run_id="r1")
    store.save_checkpoint("p", "s", {"cursor": 5}, run_id="r2")
    assert store.get_checkpoint("p", "s") == {"cursor": 5}


def test_schema_versions_increment(store: MetadataStore) -> None:
    store.upsert_dataset("raw.orders", zone="raw", location="/lake/raw/orders")
    store.add_schema_version("raw.orders", [{"name": "id", "type": "int64"}], change="created")
    store.add_schema_version(
        "raw.orders",
        [{"name": "id", "type": "int64"}, {"name": "x", "type": "string"}],
        change="evolved",
        table_version=3,
    )
    versions = store.schema_versions("raw.orders")
    assert [(v.version, v.change, v.table_version) for v in versions] == [
        (1, "created", None),
        (2, "evolved", 3),
    ]
    ds = store.get_dataset("raw.orders")
    assert ds is not None and ds.schema_version == 2
    with pytest.raises(MetadataError, match="not registered"):
        store.add_schema_version("raw.missing", [], change="created")


def test_connections_and_secrets(store: MetadataStore) -> None:
    store.save_connection("pg", "postgres", {"url": "postgresql://h/db"})
    store.put_secret("connection.pg.password", b"cipher")
    store.put_secret("connection.pg.password", b"cipher2")
    assert store.get_secret("connection.pg.password") == b"cipher2"
    assert [c.name for c in store.list_connections()] == ["pg"]
    assert store.delete_connection("pg") is True
    assert store.delete_connection("pg") is False


def test_check_results(store: MetadataStore) -> None:
    store.add_check_results(
        [
            CheckResultRow(
                run_id="r",
                dataset="a.b",
                check="c",
                kind="not_null",
                severity="error",
                passed=False,
                rows_checked=10,
                rows_failed=3,
            )
        ]
    )
    [row] = store.check_results(run_id="r")
    assert (row.check, row.passed, row.rows_failed) == ("c", False, 3)


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(MetadataError, match="Cannot reach metadata store") as info:
        MetadataStore("postgresql://nobody:secretpw@127.0.0.1:1/nowhere")
    assert "secretpw" not in str(info.value)


def test_concurrent_writers_of_one_dataset(store: MetadataStore) -> None:
    """Two writers creating and evolving the same dataset: no crash, no duplicate version."""
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def create_then_evolve(i: int) -> None:
        try:
            barrier.wait()
            store.upsert_dataset("raw.t", zone="raw", location="/lake/raw/t")
            store.add_schema_version("raw.t", [{"name": "a"}], change="created")
            barrier.wait()
            store.add_schema_version("raw.t", [{"name": "a"}, {"name": f"c{i}"}], change="evolved")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create_then_evolve, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = store.schema_versions("raw.t")
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert sum(1 for v in versions if v.fields == [{"name": "a"}]) == 1  # one "created"
    assert len(versions) == 5  # created once, then each distinct evolution
