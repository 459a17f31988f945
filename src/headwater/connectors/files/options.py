"""Read and write options of the ``files`` connector, validated into typed models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from headwater.connectors.files.storage import CONNECTOR, normalize_format
from headwater.errors import ConfigError, choices_hint

__all__ = ["ENCODINGS", "ReadOptions", "WriteOptions", "parse_options"]

ENCODINGS: dict[str, str] = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "utf-16": "utf-16",
    "utf16": "utf-16",
}
# A SQL type name as DuckDB spells it: BIGINT, DECIMAL(12,2), TIMESTAMP WITH TIME ZONE, INT[]
_SQL_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])*$")


def _normalize_format(value: Any) -> Any:
    # raises ConfigError (not ValueError) so that pydantic lets it through unchanged
    return normalize_format(value) if isinstance(value, str) else value


class ReadOptions(BaseModel):
    """Options of ``FilesSource.read(..., options=...)``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: str | None = None
    delimiter: str | None = None
    header: bool | None = None
    quote: str | None = None
    escape: str | None = None
    encoding: str = "utf-8"
    null_values: list[str] | None = None
    compression: Literal["auto", "gzip", "zstd", "none"] = "auto"
    skip_rows: int = Field(default=0, ge=0)
    columns_schema: dict[str, str] | None = Field(default=None, alias="schema")
    sample_size: int | None = Field(default=None, ge=-1)
    batch_rows: int = Field(default=256_000, ge=1)
    union_by_name: bool = False

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return _normalize_format(value)

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = value.strip().lower().replace("_", "-")
        if key not in ENCODINGS:
            raise ValueError(
                f"unsupported encoding {value!r}; valid encodings: utf-8, latin-1, utf-16"
            )
        return ENCODINGS[key]

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > 4:
            raise ValueError(f"must be at most 4 bytes, got {value!r}")
        return value

    @field_validator("columns_schema")
    @classmethod
    def _types(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for column, sql_type in value.items():
            if not _SQL_TYPE.match(sql_type.strip()):
                raise ValueError(
                    f"column {column!r}: {sql_type!r} is not a SQL type name "
                    "(e.g. BIGINT, DOUBLE, DECIMAL(12,2), DATE, TIMESTAMP, VARCHAR)"
                )
        return {column: sql_type.strip() for column, sql_type in value.items()}


class WriteOptions(BaseModel):
    """Options of ``FilesDestination.write(..., options=...)``."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = None
    compression: Literal["none", "gzip", "zstd", "snappy"] | None = None
    delimiter: str = ","
    header: bool = True
    row_group_rows: int = Field(default=262_144, ge=1)

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return _normalize_format(value)


M = TypeVar("M", bound=BaseModel)


def parse_options(model: type[M], options: Mapping[str, Any] | None, what: str) -> M:
    """Validate ``options`` into ``model``; raise ConfigError naming the key and valid keys."""
    try:
        return model.model_validate(dict(options or {}))
    except ConfigError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "options"
        valid = sorted(
            (f.alias or name) for name, f in model.model_fields.items() if not name.startswith("_")
        )
        if err["type"] == "extra_forbidden":
            raise ConfigError(
                f"Unknown {what} option {key!r}.",
                connector=CONNECTOR,
                field=f"options.{key}",
                hint=choices_hint(key, valid, "options"),
            ) from None
        raise ConfigError(
            f"Invalid {what} option {key!r}: {err['msg']}.",
            connector=CONNECTOR,
            field=f"options.{key}",
        ) from None
