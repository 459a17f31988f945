"""The pipeline language as typed pydantic models.

A pipeline file is a mapping with a ``name``, an optional ``description`` and a
list of ``steps``. Every step and every check is ``type:`` plus attributes; the
``type`` selects the model (a discriminated union), and unknown attributes are
rejected. :func:`headwater.pipelines.loader.load_pipeline` turns YAML into a
:class:`PipelineSpec` with file:line:col errors; the spec keeps those positions
(:meth:`PipelineSpec.location_of`) so that later phases point at the field they
complain about.

The node base class and field types live in :mod:`._nodes`, positions and the
source map in :mod:`._positions`; both are re-exported here.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from headwater.errors import InvalidDatasetNameError, PipelineError, did_you_mean
from headwater.lake.names import quarantine_name
from headwater.pipelines._checks import (
    CHECK_TYPES,
    AcceptedValuesCheck,
    Check,
    DriftCheck,
    ExpressionCheck,
    FreshnessCheck,
    LengthCheck,
    NotNullCheck,
    RangeCheck,
    ReconcileCheck,
    ReferencesCheck,
    RegexCheck,
    RowCountCheck,
    SchemaCheck,
    UniqueCheck,
)
from headwater.pipelines._nodes import (
    IDENTIFIER_PATTERN,
    ColumnName,
    ConnectionName,
    DatasetName,
    Delay,
    Identifier,
    Lookback,
    Node,
    OnSchemaChange,
    Scalar,
    SchemaContractName,
    Severity,
    WriteMode,
    custom_error,
    derived_name_field,
    parse_duration,
    slug,
)
from headwater.pipelines._positions import (
    NodeInfo,
    Position,
    SourceMap,
    SpecPath,
    TextLayout,
    format_path,
)
from headwater.pipelines.map_rules import MapRule, map_rule_inputs
from headwater.pipelines.scheduling.spec import DatasetTrigger, Schedule
from headwater.pipelines.transform_options import (
    IncrementalTransform,
    check_transform_options,
    incremental_options,
)
from headwater.transform.refs import DATASET_NAME_PATTERN, find_refs

if TYPE_CHECKING:
    from headwater.pipelines.expand import Bindings

__all__ = [
    "CHECK_TYPES",
    "DATASET_NAME_PATTERN",
    "IDENTIFIER_PATTERN",
    "STEP_TYPES",
    "AcceptedValuesCheck",
    "Check",
    "CheckStep",
    "DriftCheck",
    "ExecutorSpec",
    "ExpressionCheck",
    "ExtractStep",
    "FreshnessCheck",
    "Incremental",
    "LengthCheck",
    "LoadStep",
    "MapRule",
    "MapStep",
    "NodeInfo",
    "NotNullCheck",
    "Param",
    "Partition",
    "PartitionSet",
    "PipelineSpec",
    "Position",
    "PythonStep",
    "RangeCheck",
    "ReconcileCheck",
    "ReferencesCheck",
    "RegexCheck",
    "ReplicateStep",
    "RowCountCheck",
    "SchemaCheck",
    "Severity",
    "SourceMap",
    "SpecPath",
    "Step",
    "TextLayout",
    "TransformStep",
    "UniqueCheck",
    "WriteMode",
    "format_path",
]

# --------------------------------------------------------------------------- steps


def _timeout_seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise PydanticCustomError("timeout", "Input should be seconds or a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise PydanticCustomError(
                "timeout", "Input should be seconds or a duration such as `90s`, `15m`, `2h`"
            ) from None
    else:
        raise PydanticCustomError("timeout", "Input should be seconds or a duration")
    if not math.isfinite(seconds) or seconds <= 0:
        raise PydanticCustomError("timeout", "Input should be a duration above zero")
    return seconds


#: A step's time limit: seconds, or a duration string (`90s`, `15m`, `2h`, `1d`).
Timeout = Annotated[float | str, BeforeValidator(_timeout_seconds)]


class PartitionSet(Node):
    """Time partitions for `for_each`: one item per interval, `[from, to)`."""

    every: Literal["hour", "day", "week", "month"]
    from_: str | date | datetime = Field(alias="from")
    """The first interval starts here (aligned down to its hour, day, Monday or 1st)."""
    to: str | date | datetime
    """The last interval ends here (exclusive)."""


class Param(Node):
    """A pipeline parameter: `--param name=value` on the command line."""

    type: Literal["string", "integer", "number", "boolean", "date", "datetime", "list"] = "string"
    """The value's type; command-line text is converted to it."""
    default: Any = None
    """The value when none is given; without one the parameter is required."""
    choices: Annotated[list[Scalar], Field(min_length=1)] | None = None
    """The only values accepted."""
    description: str | None = None


class _StepBase(Node):
    type: str
    name: str = derived_name_field(
        "Unique step name; defaults to `<type>_<zone>_<name>` of the dataset it handles."
    )
    description: str | None = None
    """Free text shown in listings and the UI."""
    depends_on: list[Identifier] = Field(default_factory=list)
    """Extra steps to run first, beyond those implied by the datasets read."""
    retries: Annotated[int, Field(ge=0)] = 0
    """How many times to retry a step that failed with a transient error."""
    retry_delay: Delay = 1.0
    """Seconds to wait before the first retry (at most 3600); each next wait doubles,
    and each wait is shortened by a random part of up to half (jitter), so that many
    retrying steps do not hit a recovering service at the same instant."""
    when: Annotated[str, Field(min_length=1)] | None = None
    """Run the step only when this condition is true: a Jinja expression over `params`,
    `vars` and the outcome of upstream steps, e.g. `steps.check_orders.passed` or
    `"{{ params.full_refresh }}"`. A step whose condition is false is `skipped`, and so
    are the steps after it."""
    for_each: (
        Annotated[list[Any], Field(min_length=1)]
        | Annotated[str, Field(min_length=1)]
        | PartitionSet
        | None
    ) = None
    """Fan out: one child step per item, named `<name>-<item>`, each rendering
    `{{ item }}`. A list, an expression giving a list (`"{{ params.regions }}"`), or a
    partition set (`{every: day, from: 2024-01-01, to: 2024-01-08}`, whose items have
    `start` and `end`). Needs `name`."""
    timeout: Timeout | None = None
    """Fail the attempt when it runs longer than this: seconds, or a duration such as
    `90s`, `15m`, `2h`."""
    on_failure: Identifier = "fail"
    """What a failure means: `fail` (default: the steps after it are skipped and the run
    fails), `continue` (the failure is recorded, the steps after it still run and the run
    does not fail because of it), or the name of a handler step to run (the steps after
    it are skipped, the run fails)."""

    def inputs(self) -> tuple[str, ...]:
        """Managed datasets this step reads."""
        return ()

    def outputs(self) -> tuple[str, ...]:
        """Managed datasets this step may write, quarantine datasets included."""
        return ()

    def default_name(self) -> str:
        return self.type

    @model_validator(mode="after")
    def _name_and_keys(self) -> Self:
        if not self.name:
            self.name = self.default_name()
        needs_keys = "keys" in type(self).model_fields and getattr(self, "mode", None) == "merge"
        if needs_keys and not getattr(self, "keys", None):
            raise custom_error(
                "merge_without_keys",
                "mode `merge` needs `keys`: the columns that identify a row",
                "mode",
            )
        return self


class _WritesDataset(_StepBase):
    to: DatasetName
    """The managed dataset written, `zone.name`."""
    mode: WriteMode = "overwrite"
    """`overwrite` replaces the dataset, `append` adds rows, `merge` upserts on `keys`."""
    keys: list[ColumnName] = Field(default_factory=list)
    """Columns identifying a row; required for `mode: merge`."""
    on_schema_change: OnSchemaChange = "evolve"
    """The schema contract. `evolve`: add new nullable columns, refuse lossy changes.
    `freeze`: fail, before writing anything, on any new column or type change.
    `discard_row`: keep the dataset's schema; rows that do not fit go to quarantine.
    `replace` (with `mode: overwrite` only): the new schema replaces the old one,
    recorded as a new schema version; older versions stay readable by time travel."""

    @model_validator(mode="after")
    def _replace_needs_overwrite(self) -> Self:
        if self.on_schema_change == "replace" and self.mode != "overwrite":
            raise custom_error(
                "replace_needs_overwrite",
                "`on_schema_change: replace` needs `mode: overwrite`: appended or merged "
                "rows must match the dataset's schema",
                "on_schema_change",
            )
        return self

    def outputs(self) -> tuple[str, ...]:
        return (self.to,)

    def default_name(self) -> str:
        return f"{self.type}_{slug(self.to)}"


def _with_quarantine(dataset: str) -> tuple[str, ...]:
    """``dataset`` and the quarantine dataset that rows rejected on the way go to."""
    try:
        quarantine = quarantine_name(dataset)
    except InvalidDatasetNameError:  # too long with the suffix: the lake will say so
        return (dataset,)
    return tuple(dict.fromkeys((dataset, quarantine)))


class Incremental(Node):
    """Read only the rows whose cursor reached or passed the last committed checkpoint.

    The read asks for `cursor >= <checkpoint>`; rows at exactly the checkpoint value that
    were already loaded are recognized (by `keys`, else by the whole row) and skipped, so
    rows sharing a cursor value across a checkpoint are never lost nor doubled. Rows whose
    cursor is NULL are never read incrementally.
    """

    cursor: ColumnName
    """A column that only grows as rows are added or changed (`updated_at`, `id`)."""
    lookback: Lookback | None = None
    """Re-read this far behind the checkpoint to catch rows committed late: a duration
    (`90s`, `15m`, `2h`, `1d`) for time cursors, a number for numeric ones. Needs
    `mode: merge` (re-read rows are upserted, never doubled)."""
    initial: Scalar | None = None
    """Lower bound (inclusive) of the first run; default: every row."""


class Partition(Node):
    """Split a read into key ranges read in parallel, each over its own connection."""

    column: ColumnName
    """A numeric, date or timestamp column; an indexed one makes each range cheap."""
    partitions: Annotated[int, Field(ge=1, le=64)] = 4
    """How many ranges (and connections) to read at once; 1 reads one stream."""


class ExtractStep(_WritesDataset):
    """Read a stream from a connection into a managed dataset."""

    type: Literal["extract"]
    connection: ConnectionName
    stream: Annotated[str, Field(min_length=1)]
    """What to read: a file glob, a table, a topic, an endpoint."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the connector's read (format, delimiter, schema, query, ...)."""
    retries: Annotated[int, Field(ge=0)] = 3
    """How many times to retry after a transient error (a dropped connection, a timeout);
    an incremental extract resumes after its last committed chunk."""
    incremental: Incremental | None = None
    """Read only new and changed rows, by a cursor column (needs `append` or `merge`)."""
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    """With `incremental`: commit and checkpoint every this many rows, so that a crash
    or a failure resumes after the last committed chunk. Default: one commit per run."""
    partition: Partition | Literal[False] | None = None
    """Read key ranges of the stream in parallel. Unset: a source that reads ranges in one
    snapshot (postgres, with `parallel_read_rows` set) may split a big table on its primary
    key by itself; `false` never."""

    @model_validator(mode="after")
    def _incremental_rules(self) -> Self:
        inc = self.incremental
        if inc is not None and self.mode == "overwrite":
            raise custom_error(
                "incremental_overwrite",
                "`incremental` needs `mode: append` or `mode: merge`: an overwrite would "
                "replace the dataset with only the new rows",
                "mode",
            )
        if inc is not None and inc.lookback is not None and self.mode != "merge":
            raise custom_error(
                "lookback_needs_merge",
                "`incremental.lookback` re-reads rows already loaded: it needs `mode: merge` "
                "with `keys`, so they are upserted instead of doubled",
                "incremental",
            )
        if self.checkpoint_every is not None and inc is None:
            raise custom_error(
                "checkpoint_without_incremental",
                "`checkpoint_every` needs `incremental`: only a cursor read can resume "
                "after a committed chunk",
                "checkpoint_every",
            )
        if self.checkpoint_every is not None and self.partition not in (None, False):
            raise custom_error(
                "checkpoint_with_partition",
                "`checkpoint_every` reads in cursor order, `partition` in parallel ranges; "
                "use one or the other",
                "partition",
            )
        return self

    def outputs(self) -> tuple[str, ...]:
        # rows the connector rejects are appended to `<to>__quarantine`
        return _with_quarantine(self.to)


class ReplicateStep(_StepBase):
    """Copy many tables of a connection (a whole schema, or a list) into a zone, in parallel.

    Each table `t` becomes the dataset `<to>.<t>` (lower-cased, non-alphanumerics as `_`),
    with the same rules as an `extract` step per table.
    """

    type: Literal["replicate"]
    connection: ConnectionName
    tables: Literal["*"] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    """`"*"` for every table the connection lists (in `schema`, when given), or a list."""
    schema_: str | None = Field(default=None, alias="schema")
    """Only tables of this database schema (with `"*"`)."""
    exclude: list[str] = Field(default_factory=list)
    """Tables to leave out (with `"*"`); shell-style patterns such as `tmp_*` work."""
    to: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """The zone the datasets are written to (`raw` gives `raw.<table>`)."""
    mode: WriteMode = "overwrite"
    """As for `extract`; `merge` uses each table's primary key."""
    incremental: Incremental | None = None
    """A cursor applied to every table that has that column (others are read whole)."""
    on_schema_change: OnSchemaChange = "evolve"
    parallel: Annotated[int, Field(ge=1, le=32)] = 4
    """How many tables to copy at once."""
    retries: Annotated[int, Field(ge=0)] = 3
    """How many times to retry after a transient error."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the connector's read of every table."""

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.tables != "*" and (self.exclude or self.schema_):
            raise custom_error(
                "replicate_list_filters",
                '`schema` and `exclude` apply to `tables: "*"`; list the tables instead',
                "tables",
            )
        if self.incremental is not None and self.mode == "overwrite":
            raise custom_error(
                "incremental_overwrite",
                "`incremental` needs `mode: append` or `mode: merge`",
                "mode",
            )
        if self.on_schema_change == "replace" and self.mode != "overwrite":
            raise custom_error(
                "replace_needs_overwrite",
                "`on_schema_change: replace` needs `mode: overwrite`",
                "on_schema_change",
            )
        return self

    def dataset_for(self, table: str) -> str:
        """The dataset table ``table`` is copied to."""
        name = re.sub(r"[^a-z0-9_]+", "_", table.rpartition(".")[2].lower()).strip("_")
        if not name or not name[0].isalpha():
            name = f"t_{name}"
        return f"{self.to}.{name}"

    def outputs(self) -> tuple[str, ...]:
        if self.tables == "*":
            return (f"{self.to}.*",)
        return tuple(d for t in self.tables for d in _with_quarantine(self.dataset_for(t)))

    def default_name(self) -> str:
        return f"replicate_{slug(self.connection)}_to_{self.to}"


class TransformStep(_WritesDataset):
    """Run a SQL query over managed datasets (named with `ref()`) into a dataset."""

    type: Literal["transform"]
    sql: Annotated[str, Field(min_length=1)]
    """One DuckDB query; name inputs with `{{ ref('zone.name') }}`."""
    incremental: bool | IncrementalTransform = False
    """`true` (append) or `{strategy: append|merge, keys, inputs}`: each run reads only
    the rows added to its inputs since the last run (see docs/transforms.md)."""
    connection: ConnectionName | None = None
    """Run the SQL in this SQL database (postgres, mariadb, sqlite, duckdb) over its own
    tables, writing the table `to` (`schema.table`) there: push-down, no row leaves it."""

    @property
    def incremental_options(self) -> IncrementalTransform | None:
        """The incremental settings, or None for a full run every time."""
        return incremental_options(self.incremental)

    @model_validator(mode="after")
    def _option_rules(self) -> Self:
        check_transform_options(self)
        return self

    @property
    def refs(self) -> list[str]:
        """Datasets named by ``ref()`` in the SQL, in order of first appearance."""
        return find_refs(self.sql)

    def inputs(self) -> tuple[str, ...]:
        return () if self.connection else tuple(self.refs)

    def outputs(self) -> tuple[str, ...]:
        return () if self.connection else (self.to,)


class MapStep(_WritesDataset):
    """Apply mapping rules (rename, cast, derive, filter, lookup, ...) to a dataset.

    The rules run in order, each on the output of the previous one; together they are
    compiled to one DuckDB query.
    """

    type: Literal["map"]
    from_: DatasetName = Field(alias="from")
    """The managed dataset read, `zone.name`."""
    rules: Annotated[list[MapRule], Field(min_length=1)]
    """Rules applied in order; each is a mapping with one key (`rename`, `cast`, ...)."""

    _source_map: SourceMap | None = PrivateAttr(default=None)
    _index: int | None = PrivateAttr(default=None)

    def inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.from_, *map_rule_inputs(self.rules))))

    def rule_location(self, path: SpecPath, *, offset: int | None = None) -> str:
        """``file:line:col`` of ``rules.<path>`` (e.g. ``(2, "derive", "total")``)."""
        full: SpecPath = ("rules", *path)
        if self._index is not None:
            full = ("steps", self._index, *full)
        if self._source_map is not None:
            value: Any = self.model_dump(by_alias=True)
            for part in full[2:] if self._index is not None else full:
                try:
                    value = value[part]
                except (KeyError, IndexError, TypeError):
                    value = None
            # YAML 1.1 read a plain `on:` key (of a lookup) as the boolean true
            yaml_on = tuple(True if p == "on" else p for p in full)
            if full not in self._source_map.nodes and yaml_on in self._source_map.nodes:
                full = yaml_on
            found = self._source_map.location(full, offset=offset, value=value)
            if found is not None:
                return found
        return format_path(tuple("on" if p is True else p for p in full))


class CheckStep(_StepBase):
    """Run quality checks on a dataset; readers of the dataset run after it."""

    type: Literal["check"]
    dataset: DatasetName
    checks: Annotated[list[Check], Field(min_length=1)]

    def inputs(self) -> tuple[str, ...]:
        # `references` and `reconcile` checks also read another dataset
        others = (getattr(c, "to", None) for c in self.checks)
        return tuple(dict.fromkeys((self.dataset, *(o for o in others if o))))

    def outputs(self) -> tuple[str, ...]:
        # failing rows are appended to `<dataset>__quarantine`, the dataset is rewritten
        # with the passing rows
        return _with_quarantine(self.dataset)

    def default_name(self) -> str:
        return f"check_{slug(self.dataset)}"


class LoadStep(_StepBase):
    """Write a managed dataset to a destination connection."""

    type: Literal["load"]
    from_: DatasetName = Field(alias="from")
    """The managed dataset to send, `zone.name`."""
    connection: ConnectionName
    target: Annotated[str, Field(min_length=1)]
    """Where to write on the connection: a table, a file path, a collection."""
    mode: WriteMode
    """`overwrite`, `append` or `merge` (on `keys`): required, as the target is not ours."""
    keys: list[ColumnName] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the connector's write."""
    retries: Annotated[int, Field(ge=0)] = 3
    """How many times to retry after a transient error (a dropped connection, a timeout);
    a load the destination committed is not written again (load ids)."""
    schema_contract: SchemaContractName = "evolve"
    """`evolve`: create the table, add new columns (ALTER TABLE), refuse incompatible types.
    `freeze`: fail, before writing anything, on any new column or incompatible type.
    `discard_row`: keep the table's schema; rows that do not fit go to the quarantine of
    the dataset read (`<from>__quarantine`)."""

    def inputs(self) -> tuple[str, ...]:
        return (self.from_,)

    def outputs(self) -> tuple[str, ...]:
        return _with_quarantine(self.from_)[1:] if self.schema_contract == "discard_row" else ()

    def default_name(self) -> str:
        return f"load_{slug(self.from_)}_to_{slug(self.connection)}"


class PythonStep(_StepBase):
    """Call a Python function `module:function` on Arrow data.

    The function gets one argument per dataset in `inputs` (a `pyarrow.Table`, or with
    `batches: true` a `pyarrow.RecordBatchReader`), plus `args` as keyword arguments,
    and returns a table, a record batch, a reader or an iterator of record batches,
    written to `to`; without `to` it returns nothing. The module is imported from the
    workspace directory. An exception in the function fails the step as `UserCodeError`
    with the function's traceback.
    """

    type: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")]
    """`module:function`, e.g. `transforms.orders:add_tax` (`transforms/orders.py`)."""
    inputs_: list[DatasetName] = Field(default_factory=list, alias="inputs")
    """Managed datasets passed to the function, in order."""
    batches: bool = False
    """Pass each input as a stream of record batches instead of a whole table."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the function (templates rendered)."""
    to: DatasetName | None = None
    """The managed dataset the function's result is written to."""
    mode: WriteMode = "overwrite"
    keys: list[ColumnName] = Field(default_factory=list)
    on_schema_change: OnSchemaChange = "evolve"

    def inputs(self) -> tuple[str, ...]:
        return tuple(self.inputs_)

    def outputs(self) -> tuple[str, ...]:
        return (self.to,) if self.to else ()

    def default_name(self) -> str:
        target = self.to or self.function.replace(":", "_")
        return f"python_{slug(target)}"


Step = Annotated[
    ExtractStep | TransformStep | MapStep | CheckStep | LoadStep | ReplicateStep | PythonStep,
    Field(discriminator="type"),
]

STEP_TYPES: dict[str, type[_StepBase]] = {
    "extract": ExtractStep,
    "transform": TransformStep,
    "map": MapStep,
    "check": CheckStep,
    "load": LoadStep,
    "replicate": ReplicateStep,
    "python": PythonStep,
}

# --------------------------------------------------------------------------- pipeline


class ExecutorSpec(Node):
    """Where the steps run; `headwater run --executor` overrides it."""

    type: Literal["local", "process", "dask"] = "local"
    """`local`: threads of the running process; `process`: a local process pool;
    `dask`: a Dask distributed cluster."""
    address: str | None = None
    """`dask` only: the scheduler, e.g. `tcp://10.0.0.5:8786`; without it a local
    cluster of `workers` processes starts for the run."""
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    """Worker processes of a `process` pool or of a local Dask cluster."""


class PipelineSpec(Node):
    """A pipeline: named, described, a list of steps."""

    model_config = ConfigDict(title="Headwater pipeline")

    name: str = derived_name_field("Pipeline name; defaults to the file name without `.yaml`.")
    description: str | None = None
    """Free text shown in listings and the UI."""
    params: dict[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)], Param] = Field(
        default_factory=dict
    )
    """Parameters, set with `headwater run FILE --param name=value`; templates read
    them as `{{ params.name }}`."""
    vars: dict[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)], Any] = Field(default_factory=dict)
    """Variables: values (templates allowed, rendered in order) read as
    `{{ vars.name }}`."""
    steps: Annotated[list[Step], Field(min_length=1)]
    schedule: Schedule | None = None
    """When `headwater scheduler` runs the pipeline: a cron string, or `cron`, `timezone`,
    `catchup` and `max_concurrent_runs`. See docs/scheduling.md."""
    trigger: DatasetTrigger | None = None
    """Run the pipeline when a run commits a new version of one of `trigger.datasets`."""
    executor: ExecutorSpec | None = None
    """Where the steps run (default: threads of the running process)."""

    _source_map: SourceMap | None = PrivateAttr(default=None)
    _bindings: Bindings | None = PrivateAttr(default=None)
    _text: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _default_name(self, info: ValidationInfo) -> Self:
        if not self.name:
            default = (info.context or {}).get("default_name")
            if not default:
                raise custom_error(
                    "missing_name", "the pipeline has no `name` and no file name to use", "name"
                )
            self.name = default
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._attach(None)

    def _attach(self, source_map: SourceMap | None) -> None:
        """Remember where the pipeline came from; give every step and check its location."""
        self._source_map = source_map
        self._location = self.location_of(())
        for i, step in enumerate(self.steps):
            step._location = self.location_of(("steps", i))
            if isinstance(step, MapStep):
                step._source_map, step._index = source_map, i
            if isinstance(step, CheckStep):
                for j, check in enumerate(step.checks):
                    check._location = self.location_of(("steps", i, "checks", j))

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text_or_path: str | Path, *, source: str | None = None) -> PipelineSpec:
        """Load from YAML text, or from a file when given a ``Path`` or a ``*.yaml`` path."""
        from headwater.pipelines.loader import load_pipeline, parse_pipeline

        if isinstance(text_or_path, Path) or (
            "\n" not in text_or_path and text_or_path.strip().endswith((".yaml", ".yml"))
        ):
            return load_pipeline(text_or_path)
        return parse_pipeline(text_or_path, source=source or "<string>")

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> PipelineSpec:
        """Validate plain data (as parsed from YAML or JSON); errors name field paths."""
        from headwater.pipelines.loader import spec_from_data

        return spec_from_data(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into an equal spec."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["steps"] = [{"name": s.pop("name"), **s} for s in data["steps"]]
        return {"name": data.pop("name"), **data}

    def to_yaml(self) -> str:
        """YAML text for :meth:`to_dict`, multi-line strings (SQL) as ``|`` blocks."""
        import yaml

        class _Dumper(yaml.SafeDumper):
            pass

        def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        _Dumper.add_representer(str, text)
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    # -- navigation ----------------------------------------------------------------------

    @property
    def source(self) -> str | None:
        """The file (or ``<string>``) this spec was loaded from."""
        return self._source_map.source if self._source_map else None

    @property
    def source_map(self) -> SourceMap | None:
        return self._source_map

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def index_of(self, name: str) -> int:
        """Position of the step called ``name`` in ``steps``."""
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        close = did_you_mean(name, self.step_names)
        raise PipelineError(
            f"pipeline `{self.name}` has no step `{name}`." + (f" {close}" if close else ""),
            pipeline=self.name,
            step=name,
            hint="Steps: " + ", ".join(self.step_names),
        )

    def step(
        self, name: str
    ) -> ExtractStep | TransformStep | MapStep | CheckStep | LoadStep | ReplicateStep | PythonStep:
        return self.steps[self.index_of(name)]

    @property
    def text(self) -> str:
        """The pipeline's source text (the file as read, else YAML of the spec)."""
        return self._text if self._text is not None else self.to_yaml()

    @property
    def bindings(self) -> Bindings:
        """Parameter and variable values (and the backfill interval) the spec was built with."""
        if self._bindings is None:
            from headwater.pipelines.expand import Bindings

            return Bindings(params={}, vars=dict(self.vars))
        return self._bindings

    def location_of(self, path: SpecPath, *, key: bool = False, offset: int | None = None) -> str:
        """``file:line:col`` of the node at ``path`` (or its nearest ancestor in the file).

        ``path`` is a tuple of keys and list indexes, e.g. ``("steps", 2, "connection")``;
        a step may be named instead of indexed (``("steps", "clean_orders", "sql")``).
        ``key=True`` points at the mapping key rather than its value; ``offset`` is a
        character offset inside a string value (e.g. a ref() in the SQL). Without a
        source file the field path is returned, e.g. ``steps[2].connection``.
        """
        if len(path) > 1 and path[0] == "steps" and isinstance(path[1], str):
            path = ("steps", self.index_of(path[1]), *path[2:])
        if self._source_map is not None:
            value = self._value_at(path) if offset is not None else None
            found = self._source_map.location(path, key=key, offset=offset, value=value)
            if found is not None:
                return found
        return format_path(path)

    def _value_at(self, path: SpecPath) -> Any:
        node: Any = self.model_dump(by_alias=True)
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node
