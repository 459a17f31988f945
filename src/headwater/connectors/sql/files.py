"""The config the file-backed SQL connectors (``sqlite``, ``duckdb``) share: a database path.

Cheap to import (no driver): the connectors' factories build on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import Field, field_validator

from headwater.connectors.base import Capabilities, ConnectorConfig

__all__ = ["FILE_DATABASE_CAPABILITIES", "FileDatabaseConfig", "as_config"]

FILE_DATABASE_CAPABILITIES = Capabilities(
    source=True,
    destination=True,
    pushdown=True,
    incremental=True,
    partitioned=True,
    idempotent=True,
    merge=True,
    write_modes=("append", "overwrite", "merge"),
)


class FileDatabaseConfig(ConnectorConfig):
    """Settings of a connection to one database file.

    ``path`` names the database file; a relative path resolves against ``base_dir``
    (the workspace root, filled in by the workspace), else the current directory.
    A subclass names its database in ``product`` and redeclares ``path`` to describe it.
    """

    product: ClassVar[str] = "SQL"

    path: str = Field(description="The database file.")
    base_dir: str | None = Field(
        default=None,
        description="Directory a relative `path` is resolved against (the workspace root).",
    )
    batch_rows: int = Field(default=65_536, ge=1, description="Rows per Arrow batch on read.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"`path` must name a {cls.product} database file")
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


C = TypeVar("C", bound=ConnectorConfig)


def as_config(config: ConnectorConfig, model: type[C], connector: str) -> C:
    """``config`` as a ``model``, validated again when it is another config class."""
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
