"""Turning a generic connector config into a connector's own model."""

from __future__ import annotations

from typing import TypeVar

from headwater.connectors.base import Capabilities, ConnectorConfig

__all__ = ["SERVER_CAPABILITIES", "as_config"]

C = TypeVar("C", bound=ConnectorConfig)


def as_config(config: ConnectorConfig, model: type[C], connector: str) -> C:
    """``config`` as ``model``; a ConfigError naming ``connector`` when it does not fit."""
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


#: what both client-server connectors do: read with pushdown, write in every mode, idempotently
SERVER_CAPABILITIES = Capabilities(
    source=True,
    destination=True,
    pushdown=True,
    incremental=True,
    partitioned=True,
    idempotent=True,
    merge=True,
    write_modes=("append", "overwrite", "merge"),
)
