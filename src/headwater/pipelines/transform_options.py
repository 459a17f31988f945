"""Options of a `transform` step beyond its SQL: incremental runs and push-down."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from headwater.pipelines._nodes import ColumnName, DatasetName, Node, custom_error

__all__ = [
    "IncrementalTransform",
    "check_pushdown",
    "check_transform_options",
    "incremental_options",
]


class IncrementalTransform(Node):
    """Run the SQL over only the rows added to the inputs since the step's last run.

    The input versions a run consumed are recorded in the output's Delta commit (so the
    record and the data commit together); the next run exposes to the SQL only the rows
    of the data files added since (or, when the input records Delta's change data feed, the
    rows inserted and updated since), and appends (or merges) its result. An input
    rewritten in between in a way that cannot be applied (an overwrite, a delete, files
    rewritten without a change feed) makes the run a full recompute.
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


def incremental_options(value: bool | IncrementalTransform) -> IncrementalTransform | None:
    """``incremental:`` as settings: ``true`` is append over every input; ``false`` None."""
    if value is False:
        return None
    if value is True:
        return IncrementalTransform()
    return value


def check_transform_options(step: Any) -> None:
    """The rules of `incremental:` and `connection:` on a transform step."""
    check_pushdown(step)
    options = incremental_options(step.incremental)
    if options is None:
        return
    for name in options.inputs or []:
        if name not in step.refs:
            raise custom_error(
                "incremental_input",
                f"`incremental.inputs` names `{name}`, which the SQL does not ref(); "
                f"refs: {', '.join(step.refs) or '(none)'}",
                "incremental",
            )
    if step.mode != "overwrite" or step.keys:
        raise custom_error(
            "incremental_mode",
            "an incremental transform writes with `incremental.strategy` "
            "(append, or merge with `incremental.keys`); leave out `mode` and `keys`",
            "mode" if step.mode != "overwrite" else "keys",
        )
