"""The lineage store on both metadata backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from headwater.lineage import ColumnEdge, downstream, edges, record_edges, upstream
from headwater.metadata import MetadataStore


def test_record_replace_and_walk(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    try:
        first = [
            ColumnEdge("raw.a", "x", "stg.b", "x", "identity"),
            ColumnEdge("raw.a", "y", "stg.b", "z", "derived"),
        ]
        assert (
            record_edges(
                store, run_id="r1", pipeline="p", step="s1", kind="map", column_edges=first
            )
            == 2
        )
        record_edges(
            store,
            run_id="r1",
            pipeline="p",
            step="s2",
            kind="transform",
            column_edges=[ColumnEdge("stg.b", "z", "mart.c", "total", "derived")],
        )
        assert [c.name for c in downstream(store, "raw.a", "y").children] == ["stg.b.z"]
        assert [c.name for c in downstream(store, "raw.a", "y").children[0].children] == [
            "mart.c.total"
        ]
        # a new run of s1 replaces its edges: y no longer flows anywhere
        record_edges(
            store,
            run_id="r2",
            pipeline="p",
            step="s1",
            kind="map",
            column_edges=[ColumnEdge("raw.a", "x", "stg.b", "x", "identity")],
        )
        assert downstream(store, "raw.a", "y").children == []
        assert {(e.step, e.run_id) for e in edges(store)} == {("s1", "r2"), ("s2", "r1")}
        up = upstream(store, "mart.c", "total")
        assert [c.name for c in up.children] == ["stg.b.z"] and up.children[0].children == []
    finally:
        store.close()
