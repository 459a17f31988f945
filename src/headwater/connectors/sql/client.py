"""What the file-backed SQL clients (``sqlite``, ``duckdb``) share: names, options, writes.

Cheap to import (no driver); the writer is imported when a write starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pyarrow as pa

from headwater.connectors.base import RejectSink, SchemaContract, WriteMode, WriteResult
from headwater.connectors.sql.files import FileDatabaseConfig
from headwater.errors import ConfigError, SourceNotFoundError

if TYPE_CHECKING:
    from headwater.connectors.sql.writer import FileWriter

__all__ = ["FileDatabaseClient", "ReadRequest", "first_line", "quote_ident"]

Cfg = TypeVar("Cfg", bound=FileDatabaseConfig)


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes, embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ReadRequest:
    """A read, its options checked (``query``: ``options.query``)."""

    stream: str
    query: str | None
    columns: list[str] | None
    predicate: str | None
    limit: int | None
    order_by: Sequence[str] | None
    batch_rows: int


class FileDatabaseClient(ABC, Generic[Cfg]):
    """A database file as a source and a destination: what does not depend on the driver."""

    connector: ClassVar[str]  # ``sqlite``, ``duckdb``
    product: ClassVar[str]  # ``SQLite``, ``DuckDB``

    def __init__(self, config: Cfg) -> None:
        self.config = config
        self.file = config.file

    # -- read ----------------------------------------------------------------------------------
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
        """Yield ``stream`` (a table name, or ``options: {query: ...}``) as Arrow batches.

        ``columns``, ``predicate`` (DuckDB SQL), ``order_by`` (ascending, NULLs last) and
        ``limit`` run in the database (see the connector's ``_read``).
        """
        query, rows = self._read_options(options)
        batch_rows = int(rows)
        self._check_limit(limit)
        return self._read(
            ReadRequest(stream, query, columns, predicate, limit, order_by, batch_rows)
        )

    def column_bounds(
        self,
        stream: str,
        column: str,
        *,
        predicate: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        """``(min, max)`` of ``column`` over the rows matching ``predicate``, in one query.

        ``(None, None)`` when no row matches (see the connector's ``_bounds``).
        """
        query, _ = self._read_options(options)
        return self._bounds(stream, column, predicate, query)

    @abstractmethod
    def _read(self, request: ReadRequest) -> Iterator[pa.RecordBatch]:
        """The read in the database."""

    @abstractmethod
    def _bounds(
        self, stream: str, column: str, predicate: str | None, query: str | None
    ) -> tuple[Any, Any]:
        """The bounds of ``column``, its options checked (``query``: ``options.query``)."""

    def _read_options(self, options: Mapping[str, Any] | None) -> tuple[Any, Any]:
        """``options.query`` and ``options.batch_rows`` (else the connection's); no others."""
        opts = dict(options or {})
        query = opts.pop("query", None)
        batch_rows = opts.pop("batch_rows", self.config.batch_rows)
        if opts:
            raise ConfigError(
                f"Unknown read option(s) for {self.connector}: {', '.join(sorted(opts))}.",
                connector=self.connector,
                hint="Valid read options: query, batch_rows.",
            )
        return query, batch_rows

    def _check_limit(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}.", connector=self.connector)

    def _require_file(self) -> None:
        if not self.file.is_file():
            where = (
                "its directory does not exist either"
                if not self.file.parent.is_dir()
                else "no such file"
            )
            raise SourceNotFoundError(
                f"The {self.product} database {str(self.file)!r} does not exist ({where}).",
                connector=self.connector,
                location=str(self.file),
                hint="Fix the connection's `path` (relative paths start at the workspace root).",
            )

    # -- write ---------------------------------------------------------------------------------
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
        """Append, overwrite (atomic swap) or merge (upsert) ``batches`` into ``target``.

        ``target`` is one table name (quoted as given). See the connector's ``writer``
        module and :mod:`headwater.connectors.sql.writer`.
        """
        return self._writer().write(
            target,
            batches,
            mode=mode,
            keys=keys,
            options=options,
            load_id=load_id,
            schema_contract=schema_contract,
            rejects=rejects,
        )

    @abstractmethod
    def _writer(self) -> FileWriter[Any, Any]:
        """The connector's writer over this client (imported here, on first write)."""
