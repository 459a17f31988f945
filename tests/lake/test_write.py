"""Writes: append, overwrite, merge; reads with projection and filter; registry; errors."""

from __future__ import annotations

import os
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater.errors import (
    DatasetError,
    DatasetNotFoundError,
    InvalidDatasetNameError,
    SchemaIncompatibleError,
)
from headwater.lake import CommitInfo, Lake

ORDERS = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64())])


def orders(ids: list[int], customer: str = "c", amount: float = 1.0) -> pa.Table:
    return pa.table(
        {
            "id": ids,
            "customer": [f"{customer}{i}" for i in ids],
            "amount": [amount * i for i in ids],
        },
        schema=ORDERS,
    )


def sorted_rows(table: pa.Table, key: str = "id") -> list[dict[str, object]]:
    return table.sort_by(key).to_pylist()


def test_append_writes_exact_rows_and_registers_the_dataset(lake: Lake) -> None:
    first = lake.write("raw.orders", orders([1, 2, 3]), run_id="run-1")
    assert first == CommitInfo(
        dataset="raw.orders",
        version=0,
        operation="append",
        rows=3,
        bytes=orders([1, 2, 3]).nbytes,
        schema_version=1,
        schema_change="created",
    )
    second = lake.write("raw.orders", orders([4, 5]), run_id="run-2")
    assert (second.version, second.rows, second.schema_change) == (1, 2, None)
    assert sorted_rows(lake.read("raw.orders")) == sorted_rows(orders([1, 2, 3, 4, 5]))
    assert lake.list() == ["raw.orders"]
    assert lake.exists("raw.orders") and not lake.exists("raw.other")
    assert lake.location("raw.orders").endswith("/lake/raw/orders")
    assert os.path.isdir(os.path.join(lake.location("raw.orders"), "_delta_log"))
    assert lake.store.get_dataset("raw.orders").zone == "raw"  # type: ignore[union-attr]


def test_streams_a_generator_and_reports_each_batch(lake: Lake) -> None:
    consumed: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, 1000, 100):
            consumed.append(start)
            yield orders(list(range(start, start + 100))).to_batches()[0]

    seen: list[int] = []
    commit = lake.write("raw.orders", batches(), on_batch=seen.append)
    assert commit.rows == 1000
    assert seen == [100] * 10
    assert lake.read("raw.orders").num_rows == 1000


def test_accepts_readers_and_arrow_streams(lake: Lake) -> None:
    table = orders([1, 2])
    lake.write("raw.orders", pa.RecordBatchReader.from_batches(ORDERS, table.to_batches()))
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    relation = con.sql("select 3::BIGINT as id, 'x' as customer, 1.5::DOUBLE as amount")
    lake.write("raw.orders", relation)
    assert sorted(lake.read("raw.orders", columns=["id"]).column("id").to_pylist()) == [1, 2, 3]


def test_empty_input_creates_the_table_with_its_schema(lake: Lake) -> None:
    commit = lake.write("raw.empty", pa.RecordBatchReader.from_batches(ORDERS, []))
    assert (commit.version, commit.rows, commit.schema_change) == (0, 0, "created")
    assert lake.read("raw.empty").num_rows == 0
    assert lake.schema("raw.empty") == ORDERS
    # an empty iterator carries no schema: fine for an existing dataset, not for a new one
    assert lake.write("raw.empty", iter([])).version == 1
    with pytest.raises(DatasetError, match="no schema"):
        lake.write("raw.nothing", iter([]))
    assert not lake.exists("raw.nothing")


def test_overwrite_replaces_every_row(lake: Lake) -> None:
    lake.write("raw.orders", orders([1, 2, 3]))
    commit = lake.write("raw.orders", orders([7, 8], amount=2.0), mode="overwrite")
    assert (commit.version, commit.operation, commit.rows) == (1, "overwrite", 2)
    assert sorted_rows(lake.read("raw.orders")) == sorted_rows(orders([7, 8], amount=2.0))


def test_merge_updates_matches_and_inserts_the_rest(lake: Lake) -> None:
    lake.write("raw.orders", orders([1, 2, 3]), mode="merge", keys=["id"])
    commit = lake.write("raw.orders", orders([3, 4], customer="new", amount=10.0), mode="merge")
    assert (commit.operation, commit.rows) == ("merge", 2)
    assert sorted_rows(lake.read("raw.orders")) == [
        {"id": 1, "customer": "c1", "amount": 1.0},
        {"id": 2, "customer": "c2", "amount": 2.0},
        {"id": 3, "customer": "new3", "amount": 30.0},
        {"id": 4, "customer": "new4", "amount": 40.0},
    ]
    assert lake.store.get_dataset("raw.orders").keys == ["id"]  # type: ignore[union-attr]


def test_merge_keeps_the_last_row_of_a_repeated_key(lake: Lake) -> None:
    lake.write("raw.orders", orders([1]), mode="merge", keys=["id"])
    source = pa.table(
        {"id": [1, 2, 1, 2, 3], "customer": ["a", "b", "c", "d", "e"], "amount": [1.0] * 5},
        schema=ORDERS,
    )
    commit = lake.write("raw.orders", source, mode="merge")
    assert commit.rows == 3
    result = lake.read("raw.orders")
    assert sorted_rows(result) == [
        {"id": 1, "customer": "c", "amount": 1.0},
        {"id": 2, "customer": "d", "amount": 1.0},
        {"id": 3, "customer": "e", "amount": 1.0},
    ]
    # a new dataset created by a merge is deduplicated as well
    lake.write("raw.fresh", source, mode="merge", keys=["id"])
    assert lake.read("raw.fresh").num_rows == 3


def test_merge_on_composite_quoted_keys(lake: Lake) -> None:
    schema = pa.schema([("Order ID", pa.int64()), ("line", pa.int32()), ("qty", pa.int64())])
    first = pa.table({"Order ID": [1, 1, 2], "line": [1, 2, 1], "qty": [5, 6, 7]}, schema=schema)
    lake.write("raw.lines", first, mode="merge", keys=["Order ID", "line"])
    update = pa.table({"Order ID": [1, 2], "line": [2, 2], "qty": [60, 8]}, schema=schema)
    lake.write("raw.lines", update, mode="merge")
    rows = lake.read("raw.lines").sort_by([("Order ID", "ascending"), ("line", "ascending")])
    assert rows.column("qty").to_pylist() == [5, 60, 7, 8]


def test_merge_key_rules(lake: Lake) -> None:
    with pytest.raises(DatasetError, match="needs key columns"):
        lake.write("raw.orders", orders([1]), mode="merge")
    lake.write("raw.orders", orders([1]), mode="merge", keys=["id"])
    with pytest.raises(DatasetError, match="keyed on"):
        lake.write("raw.orders", orders([2]), mode="merge", keys=["customer"])
    nulls = pa.table({"id": [None, 5], "customer": ["x", "y"], "amount": [1.0, 2.0]}, ORDERS)
    with pytest.raises(DatasetError) as info:
        lake.write("raw.orders", nulls, mode="merge")
    assert info.value.column == "id"
    assert lake.history("raw.orders")[0].version == 0


def test_projection_and_filter(lake: Lake) -> None:
    lake.write("raw.orders", orders(list(range(1, 101))))
    result = lake.read("raw.orders", columns=["amount", "id"], filter=pc.field("id") > 95)
    assert result.column_names == ["amount", "id"]
    assert sorted(result.column("id").to_pylist()) == [96, 97, 98, 99, 100]
    with pytest.raises(DatasetError) as info:
        lake.read("raw.orders", columns=["ammount"])
    assert info.value.column == "ammount"
    assert "amount" in (info.value.hint or "")
    with pytest.raises(DatasetError):
        lake.read("raw.orders", filter=pc.field("nope") > 1)


def test_dataset_scans_from_duckdb_with_pushdown(lake: Lake) -> None:
    lake.write("raw.orders", orders(list(range(1, 11))))
    orders_ds = lake.dataset("raw.orders")  # noqa: F841 - scanned by DuckDB below
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    total = con.execute("select sum(amount) from orders_ds where id <= 4").fetchall()
    assert total == [(10.0,)]


def test_missing_dataset_and_bad_names(lake: Lake) -> None:
    lake.write("raw.orders", orders([1]))
    with pytest.raises(DatasetNotFoundError) as info:
        lake.read("raw.order")
    assert "raw.orders" in (info.value.hint or "")
    with pytest.raises(InvalidDatasetNameError):
        lake.write("Raw.Orders", orders([1]))
    with pytest.raises(InvalidDatasetNameError):
        lake.read("orders")
    with pytest.raises(DatasetError, match="Unknown write mode"):
        lake.write("raw.orders", orders([1]), mode="upsert")  # type: ignore[arg-type]


def test_delete_removes_data_and_registration(lake: Lake) -> None:
    lake.write("raw.orders", orders([1]))
    lake.write("raw.orders__quarantine", orders([2]))
    lake.delete("raw.orders")
    assert lake.list() == ["raw.orders__quarantine"]
    assert not os.path.exists(lake.location("raw.orders"))
    with pytest.raises(DatasetNotFoundError):
        lake.delete("raw.orders")
    lake.write("raw.orders", orders([9]))  # the name can be used again from scratch
    assert [s.change for s in lake.schema_history("raw.orders")] == ["created"]
    assert lake.read("raw.orders").column("id").to_pylist() == [9]


def test_failing_progress_callback_commits_nothing(lake: Lake) -> None:
    lake.write("raw.orders", orders([1]))

    def stop(_rows: int) -> None:
        raise KeyError("stop")

    batches = orders([2, 3, 4]).to_batches(max_chunksize=1)
    with pytest.raises(KeyError, match="stop"):
        lake.write("raw.orders", batches, on_batch=stop)
    assert lake.history("raw.orders")[0].version == 0
    assert lake.read("raw.orders").num_rows == 1


def test_a_value_that_does_not_fit_aborts_the_write(lake: Lake) -> None:
    lake.write("raw.counts", pa.table({"n": pa.array([1], pa.uint64())}))
    assert lake.schema("raw.counts").field("n").type == pa.int64()
    too_big = pa.table({"n": pa.array([2, 2**64 - 1], pa.uint64())})
    with pytest.raises(SchemaIncompatibleError) as info:
        lake.write("raw.counts", too_big)
    assert info.value.column == "n"
    assert lake.history("raw.counts")[0].version == 0


def test_string_filters_work_after_a_merge(lake: Lake) -> None:
    """Merge output must stay filterable by pyarrow and by DuckDB scans."""
    lake.write("raw.orders", orders([1, 2, 3]), mode="merge", keys=["id"])
    lake.write("raw.orders", orders([3, 4], customer="new"), mode="merge")
    lake.write("raw.orders", orders([5]))
    hits = lake.read("raw.orders", filter=pc.field("customer").isin(["new3", "c1", "c5"]))
    assert sorted(hits.column("id").to_pylist()) == [1, 3, 5]
    ranged = lake.read("raw.orders", filter=pc.field("customer") >= "new")
    assert sorted(ranged.column("id").to_pylist()) == [3, 4]
    orders_ds = lake.dataset("raw.orders")  # noqa: F841 - scanned by DuckDB below
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    found = con.execute("select id from orders_ds where customer = 'new4'").fetchall()
    assert found == [(4,)]


def test_delete_rows_by_equality(lake: Lake) -> None:
    import pyarrow as pa

    lake.write("raw.q", pa.table({"run_id": ["a", "a", "b"], "step": ["s", "t", "s"]}))
    before = lake.history("raw.q")[0].version
    assert lake.delete_rows("raw.q", {"run_id": "zzz"}) == 0
    assert lake.history("raw.q")[0].version == before  # nothing matched: no commit
    assert lake.delete_rows("raw.q", {"run_id": "a", "step": "s"}, run_id="r9") == 1
    assert sorted(lake.read("raw.q").to_pylist(), key=str) == [
        {"run_id": "a", "step": "t"},
        {"run_id": "b", "step": "s"},
    ]
    assert lake.delete_rows("raw.q", {"step": "it's"}) == 0  # quoting is safe
