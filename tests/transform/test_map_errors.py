"""A mistake in a map rule is reported at the rule, with the columns that exist."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from headwater.errors import PipelineError, PipelineSyntaxError
from headwater.pipelines import PipelineSpec
from headwater.transform.mapping import compile_map
from tests.transform.map_fixtures import map_workspace

PIPELINE = """\
name: bad
steps:
  - type: map
    from: raw.orders
    to: clean.orders
    rules:
      - rename: {cust: customer_id}
      - cast: {amout: "DECIMAL(10,2)"}
"""


def test_unknown_column_names_rule_location_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(PIPELINE)
    with map_workspace(tmp_path / "ws") as ws:
        result = ws.run(PipelineSpec.from_yaml(path))
    (step,) = result.steps
    assert step.status == "failed"
    error = step.details["error"]
    assert error["location"] == f"{path}:8:23"
    assert error["column"] == "amout"
    assert error["message"].startswith("map rule 2 (`cast`): unknown column `amout`; the input has")
    assert "`customer_id`" in error["message"] and "`cust`" not in error["message"]
    assert "Did you mean `amount`?" in error["hint"]


def test_unknown_column_in_expression_points_into_the_text() -> None:
    spec = PipelineSpec.from_yaml(
        "name: x\nsteps:\n  - type: map\n    from: raw.a\n    to: b.c\n    rules:\n"
        '      - derive: {y: "1 + colour"}\n',
        source="p.yaml",
    )
    step = spec.steps[0]
    with pytest.raises(PipelineError) as info:
        compile_map(
            "raw.a",
            pa.schema([("color", pa.string())]),
            [r.as_data() for r in step.rules],  # type: ignore[union-attr]
            locate=lambda path, offset: step.rule_location(path, offset=offset),  # type: ignore[union-attr]
        )
    assert info.value.location == "p.yaml:7:26"  # the `c` of `colour`
    assert "Did you mean `color`?" in (info.value.hint or "")


def test_bad_sql_reports_parse_position() -> None:
    with pytest.raises(PipelineSyntaxError) as info:
        compile_map("raw.a", pa.schema([("x", pa.int64())]), [{"filter": "x = (1 +"}])
    assert info.value.location == "rules[0].filter"
    assert "invalid SQL" in info.value.message


def test_bad_type_and_wrong_column_kinds() -> None:
    schema = pa.schema([("x", pa.int64()), ("s", pa.string())])
    with pytest.raises(PipelineSyntaxError, match="`NUMBERISH` is not a DuckDB type"):
        compile_map("raw.a", schema, [{"cast": {"x": "NUMBERISH"}}])
    with pytest.raises(PipelineError, match="`x` is int64, not a list"):
        compile_map("raw.a", schema, [{"explode": "x"}])
    with pytest.raises(PipelineError, match="needs `fields` with a type each"):
        compile_map("raw.a", schema, [{"flatten": "s"}])
    with pytest.raises(PipelineError, match="is derived in this same rule|unknown column `y`"):
        compile_map("raw.a", schema, [{"derive": {"y": "x + 1", "z": "y * 2"}}])


def test_rule_with_two_keys_is_a_load_error() -> None:
    with pytest.raises(PipelineSyntaxError) as info:
        PipelineSpec.from_yaml(
            "name: x\nsteps:\n  - type: map\n    from: raw.a\n    to: b.c\n    rules:\n"
            "      - {rename: {a: b}, filter: 'a > 1'}\n",
            source="p.yaml",
        )
    assert "exactly one of" in str(info.value)
    assert "p.yaml:7:" in str(info.value)


def test_bad_expression_is_a_load_error_at_its_character() -> None:
    with pytest.raises(PipelineSyntaxError) as info:
        PipelineSpec.from_yaml(
            "name: x\nsteps:\n  - type: map\n    from: raw.a\n    to: b.c\n    rules:\n"
            '      - filter: "a >= 1 and"\n'
            '      - derive: {y: "a + (b"}\n',
            source="p.yaml",
        )
    text = str(info.value)
    assert "2 errors" in text
    assert "p.yaml:7:25: step `map_b_c`: map rule 1 (`filter`): invalid SQL in `expression`" in text
    assert "p.yaml:8:27: step `map_b_c`: map rule 2 (`derive`)" in text  # at `b`


def test_validate_checks_rule_columns_against_the_lake(tmp_path: Path) -> None:
    with map_workspace(tmp_path / "ws") as ws:
        path = tmp_path / "ws" / "pipelines" / "bad.yaml"
        path.write_text(PIPELINE)
        with pytest.raises(PipelineError) as info:
            ws.validate(path)
        assert info.value.location == f"{path}:8:23"
        assert info.value.column == "amout"
        # a map reading a dataset that an earlier step writes is checked when it runs
        path.write_text(
            PIPELINE.replace("from: raw.orders", "from: stage.orders")
            + "  - {type: map, from: raw.orders, to: stage.orders, rules: [{filter: 'true'}]}\n"
        )
        assert len(ws.validate(path)) == 2


def test_lookup_errors_point_into_the_on_mapping(tmp_path: Path) -> None:
    with map_workspace(tmp_path / "ws") as ws:
        path = tmp_path / "ws" / "pipelines" / "lk.yaml"
        path.write_text(
            "name: lk\nsteps:\n  - type: map\n    from: raw.orders\n    to: c.o\n    rules:\n"
            "      - lookup: {dataset: ref.countries, on: {country: cod}, columns: [name]}\n"
        )
        with pytest.raises(PipelineError) as info:
            ws.validate(path)
    assert info.value.location == f"{path}:7:56"  # at `cod`
    assert info.value.message == (
        "map rule 1 (`lookup`): unknown column `cod`; `ref.countries` has `code`, `name`"
    )
