"""Hypothesis strategies for Arrow schemas and tables (needs ``hypothesis`` installed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

__all__ = ["arrow_schemas", "arrow_tables", "column_names"]

_TYPES: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (pa.float64(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
    (pa.bool_(), st.booleans()),
    (pa.string(), st.text(max_size=20)),
    (pa.date32(), st.dates(date(1900, 1, 1), date(2200, 12, 31))),
    (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(datetime(1970, 1, 2), datetime(2200, 1, 1), timezones=st.just(UTC)),
    ),
    (
        pa.decimal128(18, 4),
        st.decimals(
            min_value=Decimal("-99999999999999.9999"),
            max_value=Decimal("99999999999999.9999"),
            places=4,
            allow_nan=False,
            allow_infinity=False,
        ),
    ),
]

column_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


@st.composite
def arrow_schemas(draw: st.DrawFn, *, min_columns: int = 1, max_columns: int = 6) -> pa.Schema:
    names = draw(st.lists(column_names, min_size=min_columns, max_size=max_columns, unique=True))
    types = [draw(st.sampled_from([t for t, _ in _TYPES])) for _ in names]
    return pa.schema([pa.field(n, t, nullable=True) for n, t in zip(names, types, strict=True)])


@st.composite
def arrow_tables(
    draw: st.DrawFn, schema: pa.Schema | None = None, *, max_rows: int = 30
) -> pa.Table:
    """Tables with nulls, unicode and extreme values; ``schema`` drawn when not given."""
    schema = schema if schema is not None else draw(arrow_schemas())
    n = draw(st.integers(0, max_rows))
    values = dict(_TYPES)
    columns = {}
    for field in schema:
        strategy = values.get(field.type, st.none())
        columns[field.name] = draw(st.lists(st.one_of(st.none(), strategy), min_size=n, max_size=n))
    return pa.table(columns, schema=schema)
