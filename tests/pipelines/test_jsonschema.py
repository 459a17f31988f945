"""The published JSON Schema never rots, and the docs' pipelines are valid."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.errors import PipelineSyntaxError
from headwater.pipelines import PipelineSpec, parse_pipeline, plan
from headwater.pipelines.intervals import intervals
from headwater.pipelines.jsonschema import (
    DOCS_SCHEMA_PATH,
    EXAMPLE_PIPELINE,
    PACKAGE_SCHEMA_PATH,
    pipeline_json_schema,
    render_json_schema,
    write_json_schema,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "pipelines.md"
REGENERATE = "regenerate with `python -m headwater.pipelines.jsonschema`"


def _docs_pipelines() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def _as_json(value: Any) -> Any:
    """YAML 1.1 turns `2020-01-01` into a date; editors (YAML 1.2) keep it as text."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.mark.parametrize("path", [PACKAGE_SCHEMA_PATH, DOCS_SCHEMA_PATH], ids=["package", "docs"])
def test_committed_schema_is_current(path: Path) -> None:
    assert path.is_file(), f"{path} is missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render_json_schema(), f"stale: {REGENERATE}"


def test_write_json_schema(tmp_path: Path) -> None:
    target = write_json_schema(tmp_path / "nested" / "pipeline.schema.json")
    assert json.loads(target.read_text()) == pipeline_json_schema()


def test_schema_shape() -> None:
    schema = pipeline_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Headwater pipeline"
    assert schema["required"] == ["steps"]
    assert schema["additionalProperties"] is False
    step = schema["$defs"]["LoadStep"]
    assert "from" in step["properties"] and "from_" not in step["properties"]
    assert "name" not in step["required"]
    assert "default" not in step["properties"]["name"]


def test_example_and_docs_pipelines_validate() -> None:
    import jsonschema

    schema = pipeline_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(EXAMPLE_PIPELINE)) == []
    PipelineSpec.from_dict(EXAMPLE_PIPELINE)
    blocks = _docs_pipelines()
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        errors = [e.message for e in validator.iter_errors(_as_json(yaml.safe_load(block)))]
        assert errors == [], f"docs/pipelines.md yaml block {i}: {errors}"
        # a backfill pipeline's templates read `interval`: load it as one interval would
        interval = intervals("2024-01-01", "2024-01-02", "day")[0] if "interval." in block else None
        spec = parse_pipeline(block, source=f"docs/pipelines.md#{i}", interval=interval)
        plan(spec, dataset_exists=lambda _: True)


def test_schema_and_loader_agree_on_invalid_input() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(pipeline_json_schema())
    invalid = [
        {"name": "p", "steps": []},
        {"name": "p", "steps": [{"type": "extrct"}]},
        {"name": "p", "steps": [{"type": "transform", "to": "raw.a", "sqll": "select 1"}]},
        {"name": "p", "steps": [{"type": "check", "dataset": "Raw.A", "checks": []}]},
        {"name": "p", "steps": [{"type": "load", "from": "raw.a", "connection": "c"}]},
    ]
    for data in invalid:
        assert list(validator.iter_errors(data)), data
        with pytest.raises(PipelineSyntaxError):
            PipelineSpec.from_dict(data)
