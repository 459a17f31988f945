"""The ``files`` connector declaration: config model and capabilities (cheap to import).

CSV, JSON Lines and Parquet files on a local directory or under an ``s3://`` prefix.
The client modules (DuckDB, pyarrow, s3fs) are imported only when a source or a
destination is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from headwater.connectors.base import Capabilities, ConnectorConfig, ConnectorFactory

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["FORMATS", "FORMAT_ALIASES", "FilesConfig", "FilesFactory"]

FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
FORMAT_ALIASES: dict[str, str] = {"ndjson": "jsonl", "tsv": "csv", "pq": "parquet"}

FileFormat = Literal["csv", "jsonl", "parquet"]


class FilesConfig(ConnectorConfig):
    """Settings of a ``files`` connection.

    ``path`` is the base every stream and write target is relative to: a local
    directory (relative paths resolve against ``base_dir``, which the workspace sets
    to its root, else the current directory) or an ``s3://bucket/prefix`` URI.
    """

    path: str = Field(description="Base directory: a local path or s3://bucket/prefix.")
    base_dir: str | None = Field(
        default=None,
        description="Directory a relative local `path` is resolved against (the workspace root).",
    )
    format: FileFormat | None = Field(
        default=None,
        description="Default format (csv, jsonl, parquet); else inferred from the extension.",
    )
    endpoint_url: str | None = Field(default=None, description="S3 endpoint (MinIO, moto, ...).")
    region: str | None = Field(default=None, description="S3 region.")
    key_id: str | None = Field(default=None, description="S3 access key id.")
    secret: SecretStr | None = Field(default=None, description="S3 secret access key.")
    anon: bool = Field(default=False, description="Anonymous S3 access (public buckets).")
    connect_timeout: float = Field(default=5.0, gt=0, description="S3 connect timeout, seconds.")
    read_timeout: float = Field(default=30.0, gt=0, description="S3 read timeout, seconds.")
    threads: int | None = Field(
        default=None, ge=1, description="DuckDB threads per read (default: min(4, CPUs))."
    )
    memory_limit: str = Field(default="1GB", description="DuckDB memory limit per read.")

    @field_validator("format", mode="before")
    @classmethod
    def _normalize_format(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return FORMAT_ALIASES.get(lowered, lowered)
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`path` must name a directory or an s3://bucket/prefix URI")
        scheme, sep, _ = value.partition("://")
        if sep and scheme.lower() not in ("s3", "s3a", "file"):
            raise ValueError(
                f"unsupported URI scheme `{scheme}://` in path {value!r}; "
                "use a local path, file:// or s3://bucket/prefix"
            )
        return value

    @property
    def is_s3(self) -> bool:
        return self.path.lower().startswith(("s3://", "s3a://"))


class FilesFactory(ConnectorFactory):
    """CSV, JSON Lines and Parquet files on local disk or S3."""

    name: ClassVar[str] = "files"
    config_model: ClassVar[type[ConnectorConfig]] = FilesConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        source=True,
        destination=True,
        pushdown=True,
        write_modes=("append", "overwrite"),
    )
    description: ClassVar[str] = "CSV, JSON Lines and Parquet files on a local directory or S3."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.files.source import FilesSource

        return FilesSource(_as_files_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.files.destination import FilesDestination

        return FilesDestination(_as_files_config(config))


def _as_files_config(config: ConnectorConfig) -> FilesConfig:
    if isinstance(config, FilesConfig):
        return config
    from pydantic import ValidationError

    from headwater.errors import ConfigError

    try:
        return FilesConfig.model_validate(config.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid `files` connection settings: {exc.errors()[0]['msg']}.",
            connector="files",
        ) from None
