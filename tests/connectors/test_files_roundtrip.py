"""Property: a table written as CSV by the destination reads back equal through the source.

Documented coercions the strategies respect: NUL characters are not written (a CSV
holding one is taken for binary), timestamps are microseconds, and with an explicit
schema the types come back exactly. NULL and the empty string stay distinct.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.connectors.files_support import destination, read, reader_of, source

SQL_TYPES = {
    "int": ("BIGINT", pa.int64()),
    "float": ("DOUBLE", pa.float64()),
    "text": ("VARCHAR", pa.string()),
    "bool": ("BOOLEAN", pa.bool_()),
    "date": ("DATE", pa.date32()),
    "ts": ("TIMESTAMP", pa.timestamp("us")),
    "dec": ("DECIMAL(12,2)", pa.decimal128(12, 2)),
}

text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, width=64),
    "text": text,
    "bool": st.booleans(),
    "date": st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    "ts": st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)),
    "dec": st.decimals(
        min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    kinds = draw(st.lists(st.sampled_from(sorted(SQL_TYPES)), min_size=1, max_size=6))
    rows = draw(st.integers(0, 30))
    columns = {}
    for i, kind in enumerate(kinds):
        values = draw(st.lists(st.none() | VALUES[kind], min_size=rows, max_size=rows))
        if kind == "dec":
            values = [None if v is None else Decimal(v).quantize(Decimal("0.01")) for v in values]
        columns[f"c{i}_{kind}"] = pa.array(values, SQL_TYPES[kind][1])
    return pa.table(columns)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_csv_round_trip_with_schema(data: pa.Table, delimiter: str) -> None:
    schema = {name: SQL_TYPES[name.split("_", 1)[1]][0] for name in data.column_names}
    with tempfile.TemporaryDirectory() as tmp:
        destination(tmp).write(
            "t.csv", reader_of(data), mode="overwrite", options={"delimiter": delimiter}
        )
        back, sink = read(source(tmp), "t.csv", options={"schema": schema, "delimiter": delimiter})
    assert sink.items == []
    if data.num_rows:
        assert back.schema == data.schema
    assert back.to_pylist() == data.to_pylist()


@settings(max_examples=60, deadline=None)
@given(
    ints=st.lists(st.none() | st.integers(-(10**15), 10**15), min_size=1, max_size=40),
    words=st.lists(
        st.none() | st.text("abcxyz ,\"'", min_size=1, max_size=8).map(lambda s: "w" + s),
        min_size=40,
        max_size=40,
    ),
)
@example(ints=[None], words=["w'\",a"] + [None] * 39)  # the sniffer took ' for an escape
def test_csv_round_trip_with_inferred_types(
    ints: list[int | None], words: list[str | None]
) -> None:
    """Without a schema, integers come back as BIGINT and words as VARCHAR."""
    data = pa.table(
        {"n": pa.array(ints, pa.int64()), "w": pa.array(words[: len(ints)], pa.string())}
    )
    with tempfile.TemporaryDirectory() as tmp:
        destination(tmp).write("t.csv", reader_of(data), mode="overwrite")
        back, sink = read(source(tmp), "t.csv")
    assert sink.items == []
    expected = data
    if all(v is None for v in ints):  # an all-NULL column carries no type to infer
        expected = expected.set_column(0, "n", pa.array([None] * len(ints), pa.string()))
    if all(v is None for v in expected["w"].to_pylist()):
        expected = expected.set_column(1, "w", pa.array([None] * len(ints), pa.string()))
    assert back.to_pylist() == expected.to_pylist()


def test_round_trip_on_disk_keeps_nothing_else(tmp_path: Path) -> None:
    data = pa.table({"a": [1]})
    destination(tmp_path).write("x.csv", reader_of(data), mode="overwrite")
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]
