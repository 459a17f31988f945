"""Arrow schemas survive the trip through the metadata field lists."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from headwater.lake.fields import field_from_dict, field_to_dict, fields_to_schema, schema_to_fields
from headwater.lake.schema import normalize_type
from tests.lake.strategies import arrow_types, plain_types


@given(arrow_types, st.booleans())
def test_normalized_fields_round_trip_through_json(type_: pa.DataType, nullable: bool) -> None:
    field = pa.field("col", normalize_type(type_), nullable)
    stored = json.loads(json.dumps(field_to_dict(field)))
    assert field_from_dict(stored).equals(field)


@given(plain_types)
def test_raw_scalar_and_nested_types_round_trip(type_: pa.DataType) -> None:
    schema = pa.schema([pa.field("x", type_)])
    assert fields_to_schema(schema_to_fields(schema)).equals(schema)


def test_field_dict_shape() -> None:
    fields = schema_to_fields(
        pa.schema(
            [
                pa.field("id", pa.int64(), nullable=False),
                ("at", pa.timestamp("us", "UTC")),
                ("tags", pa.list_(pa.field("element", pa.string()))),
            ]
        )
    )
    assert fields[0] == {"name": "id", "type": "int64", "nullable": False}
    assert fields[1]["type"] == "timestamp[us, tz=UTC]"
    assert fields[2]["children"] == [{"name": "element", "type": "string", "nullable": True}]
