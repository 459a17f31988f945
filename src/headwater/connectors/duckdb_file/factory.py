"""The ``duckdb`` connector declaration: config model and capabilities (cheap to import).

The client (:mod:`headwater.connectors.duckdb_file.client`) loads the duckdb module
only when a source or a destination is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, field_validator

from headwater.connectors.base import Capabilities, ConnectorConfig, ConnectorFactory

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["DuckdbConfig", "DuckdbFactory"]


class DuckdbConfig(ConnectorConfig):
    """Settings of a ``duckdb`` connection.

    ``path`` names the database file; a relative path resolves against ``base_dir``
    (the workspace root, filled in by the workspace), else the current directory.
    """

    path: str = Field(description="The DuckDB database file.")
    base_dir: str | None = Field(
        default=None,
        description="Directory a relative `path` is resolved against (the workspace root).",
    )
    batch_rows: int = Field(default=65_536, ge=1, description="Rows per Arrow batch on read.")
    read_only: bool = Field(
        default=False,
        description="Open the file read-only (sources: lets other processes read it too).",
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads (default: all).")
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. 1GB.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`path` must name a DuckDB database file")
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


class DuckdbFactory(ConnectorFactory):
    """A DuckDB database file."""

    name: ClassVar[str] = "duckdb"
    config_model: ClassVar[type[ConnectorConfig]] = DuckdbConfig
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
    if isinstance(config, DuckdbConfig):
        return config
    from pydantic import ValidationError

    from headwater.errors import ConfigError

    try:
        return DuckdbConfig.model_validate(config.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid `duckdb` connection settings: {exc.errors()[0]['msg']}.",
            connector="duckdb",
        ) from None
