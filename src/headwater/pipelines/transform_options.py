"""Options of a `transform` step beyond its SQL: incremental runs and push-down."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from headwater.pipelines._nodes import ColumnName, DatasetName, Node, custom_error

__all__ = ["IncrementalTransform", "check_pushdown"]


class IncrementalTransform(Node):
    """Run the SQL over only the rows added to the inputs since the step's last run.

    The input versions a run consumed are recorded in the output's Delta commit (so the
    record and the data commit together); the next run exposes to the SQL only the rows
    of the data files added since, and appends (or merges) its result. An input rewritten
    in between (overwrite, merge, delete, compaction) makes the run a full recompute.
    """

    strategy: Literal["append", "merge"] = "append"
    """`append` the new result rows, or `merge` them on `keys` (upsert)."""
    keys: list[ColumnName] = Field(default_factory=list)
    """Columns identifying an output row; required for `strategy: merge`."""
    inputs: list[DatasetName] | None = None
    """The datasets read incrementally (default: every `ref()`); others are read whole,
    e.g. a dimension table joined to new facts."""

    @model_validator(mode="after")
    def _merge_needs_keys(self) -> Self:
        if self.strategy == "merge" and not self.keys:
            raise custom_error(
                "merge_without_keys",
                "`strategy: merge` needs `keys`: the columns that identify an output row",
                "strategy",
            )
        return self


def check_pushdown(step: Any) -> None:
    """The rules of a transform with `connection:` (push-down)."""
    if step.connection is None:
        return
    if step.refs:
        raise custom_error(
            "pushdown_ref",
            f"with `connection:` the SQL runs in that database, so it names the database's "
            f"tables directly; `ref('{step.refs[0]}')` names a lake dataset",
            "sql",
        )
    if step.incremental is not False:
        raise custom_error(
            "pushdown_incremental",
            "`incremental` reads lake dataset versions; it cannot be combined with `connection:`",
            "incremental",
        )
    if step.mode == "merge":
        raise custom_error(
            "pushdown_merge",
            "a pushed-down transform writes with `mode: overwrite` or `append`",
            "mode",
        )
    if step.on_schema_change != "evolve":
        raise custom_error(
            "pushdown_schema",
            "`on_schema_change` applies to lake datasets, not to a pushed-down table",
            "on_schema_change",
        )
