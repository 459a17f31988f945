"""The config the file-backed SQL connectors (``sqlite``, ``duckdb``) share: a database path.

Cheap to import (no driver): the connectors' factories build on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from headwater.connectors.base import ConnectorConfig

__all__ = ["FileDatabaseConfig"]


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
