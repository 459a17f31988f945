"""The connector contract: sources yield Arrow batches, destinations consume them.

A connector is a :class:`ConnectorFactory` (cheap to import: a config model and
capabilities declared as data) that builds :class:`Source` and/or
:class:`Destination` objects. Heavy drivers are imported lazily inside the
client modules.

Rows a source cannot parse are not dropped: the source hands them to the
:class:`RejectSink` it is given, with the original text, the error, and the file
and line where known. The runner turns them into quarantine rows.

Incremental and partitioned reads are built by the pipeline engine on two
pushdowns every SQL source implements: ``predicate`` (a DuckDB boolean
expression, rendered per dialect with every identifier and literal quoted) and
``order_by``; plus :meth:`PartitionedSource.column_bounds` for splitting a read
into key ranges. Exactly-once writes rest on ``load_id``: a destination that
declares ``idempotent`` records it atomically with the data and skips a write
whose load id it has already committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

__all__ = [
    "SCHEMA_CONTRACTS",
    "SQL_CAPABILITIES",
    "Capabilities",
    "ConnectorConfig",
    "ConnectorFactory",
    "Destination",
    "ListRejectSink",
    "PartitionedSource",
    "Reject",
    "RejectSink",
    "SchemaContract",
    "Source",
    "Stream",
    "WriteMode",
    "WriteResult",
    "as_config",
]

WriteMode = Literal["append", "overwrite", "merge"]

SchemaContract = Literal["evolve", "freeze", "discard_row"]
"""What a write does when its input's schema differs from the target's.

``evolve`` adds new columns (nullable; ``ALTER TABLE ... ADD COLUMN`` on SQL targets) and
casts compatible types, failing before anything is written on an incompatible type change;
``freeze`` fails before anything is written on any new column or incompatible type, naming
the table, the column, the old and the new type; ``discard_row`` keeps the target's schema
and sends each row that does not fit (a value in a new column, a value that does not cast)
to the reject sink. See :mod:`headwater.connectors.contract`.
"""

SCHEMA_CONTRACTS: tuple[SchemaContract, ...] = ("evolve", "freeze", "discard_row")


class ConnectorConfig(BaseModel):
    """Base of every connector's config model. Secret fields are ``pydantic.SecretStr``."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, declared as data so the planner can check it up front."""

    source: bool = False
    destination: bool = False
    incremental: bool = False
    merge: bool = False
    pushdown: bool = False
    cdc: bool = False
    stream: bool = False
    write_modes: tuple[WriteMode, ...] = ()
    partitioned: bool = False
    """The source implements :class:`PartitionedSource` (parallel key-range reads)."""
    idempotent: bool = False
    """The destination records ``load_id`` with the data and skips a load id seen before."""


@dataclass(frozen=True)
class Stream:
    """One readable unit of a source (a file glob, a table, a topic)."""

    name: str
    schema: pa.Schema | None = None
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Reject:
    """A record that could not be parsed or cast."""

    raw_record: str
    error: str
    source_file: str | None = None
    source_line: int | None = None
    column: str | None = None


class RejectSink(Protocol):
    """Receives rejected records while a source is read."""

    def add(self, rejects: Iterable[Reject]) -> None: ...


@dataclass
class ListRejectSink:
    """A RejectSink that keeps rejects in memory (tests, small reads)."""

    items: list[Reject] = field(default_factory=list)

    def add(self, rejects: Iterable[Reject]) -> None:
        self.items.extend(rejects)


@dataclass(frozen=True)
class WriteResult:
    """What a destination committed."""

    rows: int
    bytes: int = 0
    location: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """A readable endpoint."""

    def check(self) -> None:
        """Raise a ConnectorError if the endpoint is unreachable or misconfigured."""

    def discover(self) -> list[Stream]:
        """List the streams this source offers, with Arrow schemas where known."""

    def read(
        self,
        stream: str,
        *,
        columns: list[str] | None = None,
        predicate: str | None = None,
        limit: int | None = None,
        state: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        rejects: RejectSink | None = None,
        order_by: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``stream``.

        ``predicate`` is a DuckDB SQL boolean expression; a source with the
        ``incremental`` capability must apply it exactly (the engine relies on it for
        cursor reads), others may ignore it and the engine re-applies it. ``order_by``
        asks for rows sorted ascending by those columns (NULLs last); a source that
        cannot sort raises :class:`~headwater.errors.UnsupportedOperationError`.
        Unparseable rows go to ``rejects`` (when given) instead of failing the read.
        """


@runtime_checkable
class PartitionedSource(Protocol):
    """A source that can report the range of a column, to split a read into key ranges."""

    def column_bounds(
        self,
        stream: str,
        column: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``; ``(None, None)``
        when no row matches. Values are Python scalars (int, float, Decimal, date, datetime)."""


@runtime_checkable
class Destination(Protocol):
    """A writable endpoint."""

    def check(self) -> None:
        """Raise a ConnectorError if the endpoint is unreachable or misconfigured."""

    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        load_id: str | None = None,
        schema_contract: SchemaContract = "evolve",
        rejects: RejectSink | None = None,
    ) -> WriteResult:
        """Write every batch to ``target`` with ``mode``; atomic where the target allows.

        ``load_id`` (when the destination declares ``idempotent``) is recorded in the same
        transaction as the data; a write whose load id was already committed reads nothing
        and returns the recorded row count with ``details["already_loaded"] = True``.
        ``schema_contract`` decides what a schema difference does (see
        :data:`SchemaContract`); rows discarded by ``discard_row`` go to ``rejects`` and are
        counted in ``details["rows_rejected"]``.
        """


class ConnectorFactory:
    """Declares a connector: its name, config model and capabilities.

    Subclasses set the class attributes and implement :meth:`source` and/or
    :meth:`destination`, importing their client module lazily.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    capabilities: ClassVar[Capabilities]
    description: ClassVar[str] = ""

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.errors import UnsupportedOperationError

        raise UnsupportedOperationError(
            f"Connector `{self.name}` cannot be used as a source.", connector=self.name
        )

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.errors import UnsupportedOperationError

        raise UnsupportedOperationError(
            f"Connector `{self.name}` cannot be used as a destination.", connector=self.name
        )


#: What every SQL database connector does: read with pushdown (cursor, ranges), write in
#: every mode, idempotently by load id.
SQL_CAPABILITIES = Capabilities(
    source=True,
    destination=True,
    pushdown=True,
    incremental=True,
    partitioned=True,
    idempotent=True,
    merge=True,
    write_modes=("append", "overwrite", "merge"),
)

C = TypeVar("C", bound=ConnectorConfig)


def as_config(config: ConnectorConfig, model: type[C], connector: str) -> C:
    """``config`` as ``model`` (validated again when it is another config class); a
    ConfigError naming ``connector`` when it does not fit."""
    if isinstance(config, model):
        return config
    from pydantic import ValidationError

    from headwater.errors import ConfigError

    try:
        return model.model_validate(config.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid `{connector}` connection settings: {exc.errors()[0]['msg']}.",
            connector=connector,
        ) from None
