"""The pipeline language: spec models, YAML loader, planner and JSON Schema.

>>> from headwater.pipelines import PipelineSpec, plan
>>> spec = PipelineSpec.from_yaml("pipelines/orders.yaml")       # doctest: +SKIP
>>> dag = plan(spec, dataset_exists=lambda name: False)           # doctest: +SKIP
"""

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
    LoadStep,
    NotNullCheck,
    PipelineSpec,
    RangeCheck,
    RegexCheck,
    RowCountCheck,
    Step,
    TransformStep,
    UniqueCheck,
)

__all__ = [
    "CHECK_TYPES",
    "STEP_TYPES",
    "AcceptedValuesCheck",
    "Check",
    "CheckStep",
    "Edge",
    "ExpressionCheck",
    "ExtractStep",
    "LoadStep",
    "NotNullCheck",
    "PipelineSpec",
    "Plan",
    "RangeCheck",
    "RegexCheck",
    "RowCountCheck",
    "Step",
    "TransformStep",
    "UniqueCheck",
    "load_pipeline",
    "parse_pipeline",
    "plan",
    "spec_from_data",
]
