"""Execute a `transform` step with `connection:` inside that database (push-down)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from headwater.lineage.columns import output_columns
from headwater.pipelines.events import StepOutcome
from headwater.pipelines.map_step import record_lineage
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
    lineage = record_lineage(
        ctx,
        step.name,
        "transform",
        step.sql,
        f"{step.connection}:{step.to}",
        output_columns(step.sql),
        {},
        dataset_of=_table_namer(step.connection, factory.name, config, step.to),
    )
    return StepOutcome(
        step.name,
        "transform",
        "succeeded",
        rows_in=result.rows,
        rows_out=result.rows,
        inputs=(),
        outputs=(f"{step.connection}:{step.to}",),
        details={
            "pushdown": result.dialect,
            "table": result.table,
            "sql": result.sql,
            "lineage": lineage,
        },
    )


def _table_namer(
    connection: str, connector: str, config: Any, target: str
) -> Callable[[Any], str | None]:
    """Lineage names a database table ``<connection>:<schema>.<table>``; an unqualified
    table is in the connection's default schema."""
    if connector in ("sqlite", "duckdb"):
        default = "main"
    elif connector == "postgres":
        default = str(getattr(config, "schema_name", "public"))
    else:
        default = str(getattr(config, "database", target.partition(".")[0]))

    def name(table: Any) -> str | None:
        if not table.name:
            return None
        return f"{connection}:{table.db or default}.{table.name}"

    return name
