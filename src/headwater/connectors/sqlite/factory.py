"""The ``sqlite`` connector declaration: config model and capabilities (cheap to import).

The client (:mod:`headwater.connectors.sqlite.client`) loads the ADBC SQLite driver
only when a source or a destination is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, field_validator

from headwater.connectors.base import Capabilities, ConnectorConfig, ConnectorFactory

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["SqliteConfig", "SqliteFactory"]


class SqliteConfig(ConnectorConfig):
    """Settings of a ``sqlite`` connection.

    ``path`` names the database file; a relative path resolves against ``base_dir``
    (the workspace root, filled in by the workspace), else the current directory.
    """

    path: str = Field(description="The SQLite database file.")
    base_dir: str | None = Field(
        default=None,
        description="Directory a relative `path` is resolved against (the workspace root).",
    )
    batch_rows: int = Field(default=65_536, ge=1, description="Rows per Arrow batch on read.")
    timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a lock held by another writer."
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`path` must name a SQLite database file")
        if value.strip() == ":memory:":
            raise ValueError("`path` must name a file; an in-memory database is not shared")
        return value

    @property
    def file(self) -> Path:
        """The absolute database path."""
        path = Path(self.path).expanduser()
        if not path.is_absolute():
            path = Path(self.base_dir or Path.cwd()) / path
        return path.resolve()


class SqliteFactory(ConnectorFactory):
    """A SQLite database file."""

    name: ClassVar[str] = "sqlite"
    config_model: ClassVar[type[ConnectorConfig]] = SqliteConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        source=True,
        destination=True,
        pushdown=True,
        incremental=True,
        partitioned=True,
        idempotent=True,
        merge=True,
        write_modes=("append", "overwrite", "merge"),
    )
    description: ClassVar[str] = "Tables of a SQLite database file (read and write)."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.sqlite.client import SqliteClient

        return SqliteClient(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.sqlite.client import SqliteClient

        return SqliteClient(_as_config(config))


def _as_config(config: ConnectorConfig) -> SqliteConfig:
    if isinstance(config, SqliteConfig):
        return config
    from pydantic import ValidationError

    from headwater.errors import ConfigError

    try:
        return SqliteConfig.model_validate(config.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid `sqlite` connection settings: {exc.errors()[0]['msg']}.",
            connector="sqlite",
        ) from None
