"""Spec models: defaults, derived names, equality, round trips, locations."""

from __future__ import annotations

import pytest

import headwater.pipelines as pipelines
from headwater.errors import PipelineError
from headwater.pipelines import (
    CHECK_TYPES,
    STEP_TYPES,
    CheckStep,
    ExtractStep,
    LoadStep,
    NotNullCheck,
    PipelineSpec,
    RangeCheck,
    TransformStep,
    UniqueCheck,
)

DATA = {
    "name": "orders",
    "steps": [
        {"type": "extract", "connection": "landing", "stream": "o.csv", "to": "raw.orders"},
        {
            "type": "transform",
            "sql": "select * from {{ ref('raw.orders') }}\nwhere amount > 0\n",
            "to": "staging.orders",
            "mode": "merge",
            "keys": ["order_id"],
        },
        {
            "type": "check",
            "dataset": "staging.orders",
            "checks": [
                {"type": "not_null", "columns": ["order_id", "customer_id"]},
                {"type": "unique", "column": "order_id"},
                {"type": "row_count", "min": 1},
                {"type": "range", "column": "amount", "max": 10, "min_inclusive": False},
            ],
        },
        {
            "type": "load",
            "from": "staging.orders",
            "connection": "exports",
            "target": "o.parquet",
            "mode": "append",
        },
    ],
}


def test_exported_members() -> None:
    assert sorted(pipelines.__all__) == sorted(
        name for name in pipelines.__all__ if hasattr(pipelines, name)
    )
    assert set(STEP_TYPES) == {
        "extract",
        "transform",
        "map",
        "check",
        "load",
        "replicate",
        "python",
    }
    assert set(CHECK_TYPES) == {
        "not_null",
        "unique",
        "accepted_values",
        "range",
        "regex",
        "length",
        "row_count",
        "expression",
        "schema",
        "freshness",
        "references",
        "reconcile",
        "drift",
    }


def test_defaults_and_derived_names() -> None:
    spec = PipelineSpec.from_dict(DATA)
    extract, transform, check, load = spec.steps
    assert isinstance(extract, ExtractStep) and isinstance(transform, TransformStep)
    assert isinstance(check, CheckStep) and isinstance(load, LoadStep)
    assert spec.step_names == [
        "extract_raw_orders",
        "transform_staging_orders",
        "check_staging_orders",
        "load_staging_orders_to_exports",
    ]
    assert (extract.mode, extract.keys, extract.retries, extract.options) == (
        "overwrite",
        [],
        3,  # extracts and loads retry transient errors by default
        {},
    )
    assert (transform.retries, load.retries) == (0, 3)
    assert transform.refs == ["raw.orders"]
    assert transform.inputs() == ("raw.orders",)
    assert transform.outputs() == ("staging.orders",)
    assert load.from_ == "staging.orders" and load.inputs() == ("staging.orders",)
    names = [c.name for c in check.checks]
    assert names == [
        "not_null_order_id_customer_id",
        "unique_order_id",
        "row_count",
        "range_amount",
    ]
    not_null, unique, _, range_check = check.checks
    assert isinstance(not_null, NotNullCheck) and not_null.columns_checked() == (
        "order_id",
        "customer_id",
    )
    assert isinstance(unique, UniqueCheck) and unique.columns_checked() == ("order_id",)
    assert isinstance(range_check, RangeCheck)
    assert (range_check.min, range_check.min_inclusive, range_check.max_inclusive) == (
        None,
        False,
        True,
    )
    assert not_null.severity == "error"


def test_equality_ignores_where_a_spec_was_read() -> None:
    from_dict = PipelineSpec.from_dict(DATA)
    from_yaml = PipelineSpec.from_yaml(from_dict.to_yaml(), source="p.yaml")
    assert from_yaml == from_dict
    assert from_yaml.source == "p.yaml" and from_dict.source is None
    assert from_yaml.steps[0].location == "p.yaml:3:3"
    assert from_dict.steps[0].location == "steps[0]"
    changed = PipelineSpec.from_dict({**DATA, "description": "other"})
    assert changed != from_dict


def test_to_dict_and_yaml_round_trip() -> None:
    spec = PipelineSpec.from_dict(DATA)
    data = spec.to_dict()
    assert list(data) == ["name", "steps"]
    assert list(data["steps"][0])[:2] == ["name", "type"]
    assert data["steps"][3]["from"] == "staging.orders"
    assert PipelineSpec.from_dict(data) == spec
    text = spec.to_yaml()
    assert "sql: |" in text  # multi-line SQL stays readable
    assert PipelineSpec.from_yaml(text) == spec


def test_locations_without_a_file_are_field_paths() -> None:
    spec = PipelineSpec.from_dict(DATA)
    assert spec.location_of(("steps", 2, "checks", 1)) == "steps[2].checks[1]"
    assert spec.location_of(("steps", "transform_staging_orders", "sql")) == "steps[1].sql"
    assert spec.steps[2].checks[1].location == "steps[2].checks[1]"  # type: ignore[union-attr]
    assert spec.location == "<root>"


def test_locations_from_yaml_point_at_values_keys_and_offsets() -> None:
    text = (
        "name: p\n"
        "steps:\n"
        "  - type: transform\n"
        "    to: raw.b\n"
        "    sql: |\n"
        "      select *\n"
        "        from {{ ref('raw.a') }}\n"
    )
    spec = PipelineSpec.from_yaml(text, source="p.yaml")
    assert spec.location_of(("steps", 0, "sql")) == "p.yaml:5:10"
    assert spec.location_of(("steps", 0, "sql"), key=True) == "p.yaml:5:5"
    sql = spec.steps[0].sql  # type: ignore[union-attr]
    offset = sql.index("{{")
    assert spec.location_of(("steps", 0, "sql"), offset=offset) == "p.yaml:7:14"
    # a field left to its default points at the nearest node present: the step
    assert spec.location_of(("steps", 0, "mode")) == "p.yaml:3:5"


def test_step_lookup_suggests() -> None:
    spec = PipelineSpec.from_dict(DATA)
    assert spec.step("check_staging_orders").type == "check"
    with pytest.raises(PipelineError, match="Did you mean `check_staging_orders`"):
        spec.step("check_staging_order")


def test_direct_construction_uses_python_names() -> None:
    step = LoadStep(type="load", from_="raw.a", connection="c", target="t", mode="overwrite")
    assert step.name == "load_raw_a_to_c"
    assert step.model_dump()["from"] == "raw.a"
