"""The ``sqlite`` connector declaration: config model and capabilities (cheap to import).

The client (:mod:`headwater.connectors.sqlite.client`) loads the ADBC SQLite driver
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

__all__ = ["SqliteConfig", "SqliteFactory"]


class SqliteConfig(FileDatabaseConfig):
    """Settings of a ``sqlite`` connection.

    ``path`` names the database file; a relative path resolves against ``base_dir``
    (the workspace root, filled in by the workspace), else the current directory.
    """

    product: ClassVar[str] = "SQLite"

    path: str = Field(description="The SQLite database file.")
    timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a lock held by another writer."
    )


class SqliteFactory(ConnectorFactory):
    """A SQLite database file."""

    name: ClassVar[str] = "sqlite"
    config_model: ClassVar[type[ConnectorConfig]] = SqliteConfig
    capabilities: ClassVar[Capabilities] = SQL_CAPABILITIES
    description: ClassVar[str] = "Tables of a SQLite database file (read and write)."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.sqlite.client import SqliteClient

        return SqliteClient(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.sqlite.client import SqliteClient

        return SqliteClient(_as_config(config))


def _as_config(config: ConnectorConfig) -> SqliteConfig:
    return as_config(config, SqliteConfig, "sqlite")
