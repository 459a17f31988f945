"""DuckDB sessions: datasets as zone.name views with pushdown, and clear query errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from headwater.engine.session import EngineSession, referenced_tables
from headwater.errors import QueryError


def test_referenced_tables_skips_ctes_and_unqualified() -> None:
    sql = """
        with recent as (select * from raw.orders where ts > now() - interval 1 day)
        select * from recent r join staging.customers c using (id), plain_table
    """
    assert sorted(referenced_tables(sql)) == ["raw.orders", "staging.customers"]
    assert referenced_tables("selec nonsense ((") == []


@pytest.fixture
def session(tmp_path: Path) -> EngineSession:
    pq.write_table(
        pa.table({"id": list(range(100)), "v": [str(i) for i in range(100)]}),
        tmp_path / "a.parquet",
    )
    calls: list[tuple[str, object, object]] = []

    def resolve(name: str, version: object, as_of: object) -> pads.Dataset:
        calls.append((name, version, as_of))
        return pads.dataset(tmp_path / "a.parquet")

    s = EngineSession(resolve)
    s.calls = calls  # type: ignore[attr-defined]
    return s


def test_attach_exposes_a_view_with_pushdown(session: EngineSession) -> None:
    with session:
        session.attach("raw.orders")
        session.attach("raw.orders")  # idempotent
        assert session.table("select count(*) as n from raw.orders where id >= 90").to_pylist() == [
            {"n": 10}
        ]
        plan = "\n".join(
            r[1] for r in session.execute("explain select v from raw.orders where id > 5")
        )
        assert "Filters" in plan and "id" in plan  # the filter reaches the Arrow scan
        assert session.calls == [("raw.orders", None, None)]  # type: ignore[attr-defined]
        reader = session.reader("select * from raw.orders", batch_rows=10)
        assert sum(b.num_rows for b in reader) == 100


def test_query_errors_are_headwater_errors(session: EngineSession) -> None:
    with session:
        with pytest.raises(QueryError, match="syntax error") as info:
            session.table("selec 1")
        assert "LINE 1" in info.value.message
        with pytest.raises(QueryError, match="does not exist") as info:
            session.table("select * from raw.missing")
        assert info.value.hint and "headwater datasets list" in info.value.hint
        with pytest.raises(QueryError, match="Binder Error"):
            session.table("select nope from (select 1 as a)")


def test_extensions_are_never_downloaded(session: EngineSession) -> None:
    with session, pytest.raises(QueryError):
        session.table("select * from read_csv('https://example.com/x.csv')")
