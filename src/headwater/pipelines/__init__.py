"""The pipeline language: spec models, YAML loader, planner and JSON Schema.

>>> from headwater.pipelines import PipelineSpec, plan
>>> spec = PipelineSpec.from_yaml("pipelines/orders.yaml")       # doctest: +SKIP
>>> dag = plan(spec, dataset_exists=lambda name: False)           # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.pipelines.loader import load_pipeline, parse_pipeline, spec_from_data
    from headwater.pipelines.planner import Edge, Plan, plan
    from headwater.pipelines.spec import (
        CHECK_TYPES,
        STEP_TYPES,
        AcceptedValuesCheck,
        Check,
        CheckStep,
        ExpressionCheck,
        ExtractStep,
        Incremental,
        LoadStep,
        MapStep,
        NotNullCheck,
        Param,
        Partition,
        PartitionSet,
        PipelineSpec,
        PythonStep,
        RangeCheck,
        RegexCheck,
        ReplicateStep,
        RowCountCheck,
        Step,
        TransformStep,
        UniqueCheck,
    )

_LAZY = {
    "load_pipeline": "headwater.pipelines.loader",
    "parse_pipeline": "headwater.pipelines.loader",
    "spec_from_data": "headwater.pipelines.loader",
    "Edge": "headwater.pipelines.planner",
    "Plan": "headwater.pipelines.planner",
    "plan": "headwater.pipelines.planner",
    "CHECK_TYPES": "headwater.pipelines.spec",
    "STEP_TYPES": "headwater.pipelines.spec",
    "AcceptedValuesCheck": "headwater.pipelines.spec",
    "Check": "headwater.pipelines.spec",
    "CheckStep": "headwater.pipelines.spec",
    "ExpressionCheck": "headwater.pipelines.spec",
    "ExtractStep": "headwater.pipelines.spec",
    "Incremental": "headwater.pipelines.spec",
    "LoadStep": "headwater.pipelines.spec",
    "Param": "headwater.pipelines.spec",
    "Partition": "headwater.pipelines.spec",
    "PartitionSet": "headwater.pipelines.spec",
    "PythonStep": "headwater.pipelines.spec",
    "ReplicateStep": "headwater.pipelines.spec",
    "MapStep": "headwater.pipelines.spec",
    "NotNullCheck": "headwater.pipelines.spec",
    "PipelineSpec": "headwater.pipelines.spec",
    "RangeCheck": "headwater.pipelines.spec",
    "RegexCheck": "headwater.pipelines.spec",
    "RowCountCheck": "headwater.pipelines.spec",
    "Step": "headwater.pipelines.spec",
    "TransformStep": "headwater.pipelines.spec",
    "UniqueCheck": "headwater.pipelines.spec",
}

__all__ = [
    "CHECK_TYPES",
    "STEP_TYPES",
    "AcceptedValuesCheck",
    "Check",
    "CheckStep",
    "Edge",
    "ExpressionCheck",
    "ExtractStep",
    "Incremental",
    "LoadStep",
    "MapStep",
    "NotNullCheck",
    "Param",
    "Partition",
    "PartitionSet",
    "PipelineSpec",
    "Plan",
    "PythonStep",
    "RangeCheck",
    "RegexCheck",
    "ReplicateStep",
    "RowCountCheck",
    "Step",
    "TransformStep",
    "UniqueCheck",
    "load_pipeline",
    "parse_pipeline",
    "plan",
    "spec_from_data",
]


def __getattr__(name: str) -> Any:
    """Import the language's modules on first use (the CLI's start-up stays fast)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
