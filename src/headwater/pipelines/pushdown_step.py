"""Execute a `transform` step with `connection:` inside that database (push-down)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from headwater.pipelines.events import StepOutcome
from headwater.pipelines.steps import naming_connection
from headwater.transform.pushdown import run_pushdown as push

if TYPE_CHECKING:
    from headwater.pipelines.spec import TransformStep
    from headwater.pipelines.steps import RunContext

__all__ = ["run_pushdown"]


def run_pushdown(ctx: RunContext, step: TransformStep) -> StepOutcome:
    assert step.connection is not None
    mode: Literal["overwrite", "append"] = "append" if step.mode == "append" else "overwrite"
    with naming_connection(step.connection):
        factory, config = ctx.connections.resolve(step.connection)
        result = push(factory.name, config, step.sql, step.to, mode=mode)
    return StepOutcome(
        step.name,
        "transform",
        "succeeded",
        rows_in=result.rows,
        rows_out=result.rows,
        inputs=(),
        outputs=(f"{step.connection}:{step.to}",),
        details={"pushdown": result.dialect, "table": result.table, "sql": result.sql},
    )
