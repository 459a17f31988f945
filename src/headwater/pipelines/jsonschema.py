"""The JSON Schema of pipeline files, generated from the spec models.

Editors use it to complete and validate ``pipelines/*.yaml`` (for example the YAML
language server with ``# yaml-language-server: $schema=<path>``). The schema ships in
the package (``headwater/pipelines/pipeline.schema.json``) and in the docs
(``docs/reference/pipeline.schema.json``); a test keeps both equal to what this module
generates. Regenerate them with::

    python -m headwater.pipelines.jsonschema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from headwater.pipelines.spec import PipelineSpec

__all__ = [
    "DOCS_SCHEMA_PATH",
    "EXAMPLE_PIPELINE",
    "PACKAGE_SCHEMA_PATH",
    "SCHEMA_DIALECT",
    "pipeline_json_schema",
    "render_json_schema",
    "write_json_schema",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
PACKAGE_SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")
#: Where the docs copy lives in a source checkout (``src/headwater/pipelines`` -> repo root).
DOCS_SCHEMA_PATH = (
    Path(__file__).resolve().parents[3] / "docs" / "reference" / "pipeline.schema.json"
)

EXAMPLE_PIPELINE: dict[str, Any] = {
    "name": "orders",
    "description": "Daily orders: land the CSV files, clean, check, export.",
    "steps": [
        {
            "name": "extract_orders",
            "type": "extract",
            "connection": "landing",
            "stream": "orders/*.csv",
            "options": {"format": "csv", "delimiter": ","},
            "to": "raw.orders",
            "mode": "merge",
            "keys": ["order_id"],
            "retries": 2,
        },
        {
            "name": "clean_orders",
            "type": "transform",
            "sql": "select * from {{ ref('raw.orders') }} where order_id is not null\n",
            "to": "staging.orders",
        },
        {
            "name": "check_orders",
            "type": "check",
            "dataset": "staging.orders",
            "checks": [
                {"type": "not_null", "columns": ["order_id", "customer_id"]},
                {"type": "unique", "column": "order_id"},
                {"type": "range", "column": "amount", "min": 0},
                {
                    "type": "accepted_values",
                    "column": "status",
                    "values": ["placed", "shipped"],
                    "severity": "warn",
                },
            ],
        },
        {
            "name": "export_orders",
            "type": "load",
            "from": "staging.orders",
            "connection": "exports",
            "target": "orders.parquet",
            "mode": "overwrite",
        },
    ],
}


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline file."""
    generated = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": "Headwater pipeline",
        "description": (
            "A Headwater pipeline: a name and a list of steps (extract, transform, check, "
            "load). Each step and each check is `type:` plus its fields. "
            "See docs/pipelines.md."
        ),
    }
    schema.update({k: v for k, v in generated.items() if k not in ("title", "description")})
    _accept_templates(schema)
    schema["examples"] = [EXAMPLE_PIPELINE]
    return schema


#: A string holding a Jinja template: checked after rendering, so any text is accepted.
TEMPLATE_PATTERN = r"\{\{|\{%"


def _accept_templates(node: Any) -> None:
    """Let a templated string stand where a pattern-checked one is expected.

    ``to: "staging.orders_{{ item }}"`` is only a dataset name once rendered; the
    loader checks the rendered value, the schema accepts the template.
    """
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if (
                isinstance(value, dict)
                and value.get("type") == "string"
                and "pattern" in value
                and key not in ("propertyNames",)
            ):
                plain = {k: v for k, v in value.items() if k not in ("description", "title")}
                kept = {k: v for k, v in value.items() if k in ("description", "title")}
                node[key] = {
                    **kept,
                    "anyOf": [plain, {"type": "string", "pattern": TEMPLATE_PATTERN}],
                }
            else:
                _accept_templates(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict) and value.get("type") == "string" and "pattern" in value:
                node[i] = {"anyOf": [value, {"type": "string", "pattern": TEMPLATE_PATTERN}]}
            else:
                _accept_templates(value)


def render_json_schema() -> str:
    """The schema as the exact text committed to the repository."""
    return json.dumps(pipeline_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path) -> Path:
    """Write the schema to ``path`` (creating folders); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_json_schema(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the given paths, or to the package and docs copies."""
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    for path in paths or [PACKAGE_SCHEMA_PATH, DOCS_SCHEMA_PATH]:
        print(write_json_schema(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
