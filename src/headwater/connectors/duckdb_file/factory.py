"""The ``duckdb`` connector declaration: config model and capabilities (cheap to import).

The client (:mod:`headwater.connectors.duckdb_file.client`) loads the duckdb module
only when a source or a destination is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from headwater.connectors.base import (
    SQL_CAPABILITIES,
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    as_config,
)
from headwater.connectors.sql.files import FileDatabaseConfig

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["DuckdbConfig", "DuckdbFactory"]


class DuckdbConfig(FileDatabaseConfig):
    """Settings of a ``duckdb`` connection.

    ``path`` names the database file; a relative path resolves against ``base_dir``
    (the workspace root, filled in by the workspace), else the current directory.
    """

    product: ClassVar[str] = "DuckDB"

    path: str = Field(description="The DuckDB database file.")
    read_only: bool = Field(
        default=False,
        description="Open the file read-only (sources: lets other processes read it too).",
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads (default: all).")
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. 1GB.")


class DuckdbFactory(ConnectorFactory):
    """A DuckDB database file."""

    name: ClassVar[str] = "duckdb"
    config_model: ClassVar[type[ConnectorConfig]] = DuckdbConfig
    capabilities: ClassVar[Capabilities] = SQL_CAPABILITIES
    description: ClassVar[str] = "Tables of a DuckDB database file (read and write)."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.duckdb_file.client import DuckdbClient

        return DuckdbClient(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.duckdb_file.client import DuckdbClient
        from headwater.errors import ConfigError

        cfg = _as_config(config)
        if cfg.read_only:
            raise ConfigError(
                "A `duckdb` connection with `read_only: true` cannot be a destination.",
                connector="duckdb",
                field="read_only",
                hint="Set `read_only: false` (the default) on the connection to write to it.",
            )
        return DuckdbClient(cfg)


def _as_config(config: ConnectorConfig) -> DuckdbConfig:
    return as_config(config, DuckdbConfig, "duckdb")
