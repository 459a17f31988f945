"""Workspace settings: ``headwater.yaml`` overlaid by ``HEADWATER_*`` environment variables.

Precedence, highest first: environment (``HEADWATER_METADATA_URL``,
``HEADWATER_LAKE__ROOT``, ``HEADWATER_ENGINE__THREADS``, ...; nested keys use
``__``), then ``headwater.yaml``, then defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from headwater.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "EngineSettings",
    "LakeSettings",
    "RunnerSettings",
    "Settings",
    "load_settings",
]

CONFIG_FILE = "headwater.yaml"
STATE_DIR = ".headwater"


class LakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = Field("lake", description="Directory or s3:// URI holding the Delta tables.")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="Object-store options passed to deltalake."
    )


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores).")
    memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '2GB'.")
    batch_rows: int = Field(256_000, ge=1_000, description="Rows per Arrow batch when streaming.")


class RunnerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_parallel: int = Field(4, ge=1, description="Steps run at the same time.")


class Settings(BaseSettings):
    """Everything a workspace is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="HEADWATER_", env_nested_delimiter="__", extra="forbid"
    )

    name: str = "headwater"
    metadata_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite at .headwater/metadata.db."
    )
    secret_key: str | None = Field(
        None, description="Fernet key for stored secrets; default read from .headwater/key."
    )
    lake: LakeSettings = Field(default_factory=lambda: LakeSettings())
    engine: EngineSettings = Field(default_factory=lambda: EngineSettings())
    runner: RunnerSettings = Field(default_factory=lambda: RunnerSettings())
    connections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # validated by headwater.quality.settings (docs/quality.md, docs/alerts.md)
    quality: dict[str, Any] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env wins over the file, which is passed as init kwargs
        return (env_settings, init_settings)


def read_yaml_config(path: Path) -> dict[str, Any]:
    """Parse headwater.yaml, with file:line:col on a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist.", hint="Run `headwater init`.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {exc.problem}", location=loc) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of settings, found {type(data).__name__}", location=str(path)
        )
    return data


def load_settings(root: Path) -> Settings:
    """Settings of the workspace at ``root``."""
    data = read_yaml_config(root / CONFIG_FILE)
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"invalid settings: {problems}",
            location=str(root / CONFIG_FILE),
            field=field,
            hint="See docs/configuration.md for the keys headwater.yaml accepts.",
        ) from exc
