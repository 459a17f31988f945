"""Name -> connector factory registry: built-ins plus the ``headwater.connectors`` entry points.

Factories are imported lazily by name, so listing or validating a pipeline never
imports a database driver.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from headwater.connectors.base import ConnectorFactory
from headwater.errors import UnknownConnectorError, choices_hint

__all__ = ["available_connectors", "get_connector", "register_connector"]

ENTRY_POINT_GROUP = "headwater.connectors"

# name -> "module:attribute" of a ConnectorFactory subclass
_BUILTINS: dict[str, str] = {
    "duckdb": "headwater.connectors.duckdb_file.factory:DuckdbFactory",
    "files": "headwater.connectors.files.factory:FilesFactory",
    "mariadb": "headwater.connectors.mariadb.factory:MariadbFactory",
    "memory": "headwater.testing:MemoryFactory",
    "postgres": "headwater.connectors.postgres.factory:PostgresFactory",
    "sqlite": "headwater.connectors.sqlite.factory:SqliteFactory",
}
_REGISTERED: dict[str, type[ConnectorFactory]] = {}


def register_connector(factory: type[ConnectorFactory]) -> type[ConnectorFactory]:
    """Register a factory class in-process (usable as a decorator)."""
    _REGISTERED[factory.name] = factory
    _load.cache_clear()
    return factory


@cache
def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_connectors() -> list[str]:
    """Every connector name that can be resolved, sorted."""
    return sorted({*_BUILTINS, *_REGISTERED, *_entry_point_targets()})


@cache
def _load(name: str) -> type[ConnectorFactory]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTINS.get(name) or _entry_point_targets().get(name)
    if target is None:
        raise UnknownConnectorError(
            f"Unknown connector `{name}`.",
            connector=name,
            hint=choices_hint(name, available_connectors(), "connectors"),
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(factory, type) and issubclass(factory, ConnectorFactory)):
        raise UnknownConnectorError(
            f"Entry point `{name}` -> `{target}` is not a ConnectorFactory subclass.",
            connector=name,
        )
    return factory


def get_connector(name: str) -> ConnectorFactory:
    """Return a factory instance for ``name``; raise with a did-you-mean on a typo."""
    return _load(name)()
