"""Named connections: declared in headwater.yaml or added to metadata, with secrets kept safe.

A connection's config is validated by its connector's config model. Fields typed
``SecretStr`` are secrets: in headwater.yaml they must be ``${ENV_VAR}``
references; added through the CLI/API they are encrypted (Fernet) into the
metadata store, and the connection row keeps only ``{"$secret": name}``.
Any string may contain ``${ENV_VAR}`` references (e.g. a URL's password).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from headwater.connectors.base import ConnectorConfig, ConnectorFactory, Destination, Source
from headwater.connectors.registry import get_connector
from headwater.errors import (
    ConfigError,
    ConnectionNotFoundError,
    ConnectorError,
    HeadwaterError,
    choices_hint,
)
from headwater.metadata.store import MetadataStore
from headwater.secrets import ENV_REF, SecretBox, has_env_ref, resolve_env_refs

__all__ = ["ConnectionInfo", "Connections"]

_SECRET_MARK = "$secret"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class ConnectionInfo:
    """A connection as it may be shown: secrets replaced by where they come from."""

    name: str
    type: str
    origin: str  # "headwater.yaml" or "metadata"
    config: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def _secret_fields(model: type[ConnectorConfig]) -> set[str]:
    return {
        name
        for name, info in model.model_fields.items()
        if info.annotation is SecretStr or "SecretStr" in str(info.annotation)
    }


def _redact_value(key: str, value: Any, secret_fields: set[str]) -> Any:
    if isinstance(value, dict) and _SECRET_MARK in value:
        return "<encrypted>"
    if key in secret_fields:
        if isinstance(value, str) and has_env_ref(value) and value.startswith("${"):
            return value
        return "****"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(
            lambda m: m.group(0) if has_env_ref(m.group(2)) else f"{m.group(1)}****{m.group(3)}",
            value,
        )
    return value


class Connections:
    """Looks up, adds, resolves and tests connections of one workspace."""

    def __init__(
        self,
        declared: Mapping[str, Mapping[str, Any]],
        store: MetadataStore,
        box: SecretBox,
        *,
        base_dir: Path,
        config_file: Path,
    ) -> None:
        self._declared = {k: dict(v) for k, v in declared.items()}
        self._store = store
        self._box = box
        self._base_dir = base_dir
        self._config_file = config_file
        self._secret_values: set[str] = set()

    # -- lookup --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted({*self._declared, *(row.name for row in self._store.list_connections())})

    def _raw(self, name: str) -> tuple[str, dict[str, Any], str, str | None]:
        if name in self._declared:
            raw = dict(self._declared[name])
            type_ = raw.pop("type", None)
            if not isinstance(type_, str):
                raise ConfigError(
                    f"connection `{name}` has no `type`",
                    location=str(self._config_file),
                    field=f"connections.{name}.type",
                    hint="Add e.g. `type: files`.",
                )
            description = raw.pop("description", None)
            return type_, raw, "headwater.yaml", description
        row = self._store.get_connection(name)
        if row is None:
            raise ConnectionNotFoundError(
                f"no connection named `{name}`",
                connector=name,
                hint=choices_hint(name, self.names(), "connections")
                + " Declare it under `connections:` in headwater.yaml or run "
                "`headwater connections add`.",
            )
        return row.type, dict(row.config), "metadata", row.description

    def info(self, name: str) -> ConnectionInfo:
        type_, raw, origin, description = self._raw(name)
        secrets = self._secret_fields_of(type_)
        shown = {k: _redact_value(k, v, secrets) for k, v in raw.items()}
        return ConnectionInfo(name, type_, origin, shown, description)

    def list(self) -> list[ConnectionInfo]:
        return [self.info(name) for name in self.names()]

    def _secret_fields_of(self, type_: str) -> set[str]:
        try:
            return _secret_fields(get_connector(type_).config_model)
        except HeadwaterError:
            return set()

    # -- changes -------------------------------------------------------------------------
    def add(
        self,
        name: str,
        type_: str,
        config: Mapping[str, Any],
        *,
        secrets: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> ConnectionInfo:
        """Add or replace a connection in metadata; secrets are encrypted unless ``${ENV}``."""
        if not _NAME.match(name):
            raise ConfigError(
                f"invalid connection name `{name}`",
                hint="Use letters, digits, `_` and `-`, starting with a letter.",
            )
        if name in self._declared:
            raise ConfigError(
                f"connection `{name}` is declared in headwater.yaml",
                location=str(self._config_file),
                hint="Edit headwater.yaml, or choose another name.",
            )
        factory = get_connector(type_)
        secret_names = _secret_fields(factory.config_model)
        stored: dict[str, Any] = dict(config)
        for key, value in (secrets or {}).items():
            if key not in factory.config_model.model_fields:
                raise ConfigError(
                    f"connector `{type_}` has no field `{key}`",
                    field=key,
                    hint=choices_hint(key, factory.config_model.model_fields, "fields"),
                )
            if has_env_ref(value):
                stored[key] = value
            else:
                secret_name = f"connection.{name}.{key}"
                self._store.put_secret(secret_name, self._box.encrypt(value))
                stored[key] = {_SECRET_MARK: secret_name}
        for key in secret_names & set(config):
            value = config[key]
            if isinstance(value, str) and not has_env_ref(value):
                raise ConfigError(
                    f"field `{key}` of connector `{type_}` is a secret; pass it with "
                    f"`--secret {key}=...` so it is stored encrypted",
                    field=key,
                )
        # validate before saving (secrets resolved only for validation, then dropped)
        self._validate(name, factory, self._resolve_values(name, stored, check_env=False))
        self._store.save_connection(name, type_, stored, description)
        return self.info(name)

    def remove(self, name: str) -> None:
        if name in self._declared:
            raise ConfigError(
                f"connection `{name}` is declared in headwater.yaml; remove it there",
                location=str(self._config_file),
            )
        if not self._store.delete_connection(name):
            raise ConnectionNotFoundError(
                f"no connection named `{name}`",
                hint=choices_hint(name, self.names(), "connections"),
            )

    # -- resolution ----------------------------------------------------------------------
    def _resolve_values(
        self, name: str, raw: Mapping[str, Any], *, check_env: bool = True
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in raw.items():
            where = f"connection `{name}` field `{key}`"
            if isinstance(value, dict) and _SECRET_MARK in value:
                token = self._store.get_secret(str(value[_SECRET_MARK]))
                if token is None:
                    raise ConfigError(f"the stored secret for {where} is missing", field=key)
                out[key] = self._box.decrypt(token, where=where)
                self._remember(out[key])
            elif isinstance(value, str) and has_env_ref(value):
                out[key] = resolve_env_refs(value, where=where) if check_env else "x"
                if check_env:
                    for match in ENV_REF.finditer(value):
                        self._remember(os.environ.get(match.group(1), ""))
            else:
                out[key] = value
        return out

    def _validate(
        self, name: str, factory: ConnectorFactory, values: dict[str, Any]
    ) -> ConnectorConfig:
        model = factory.config_model
        if "base_dir" in model.model_fields and "base_dir" not in values:
            values["base_dir"] = str(self._base_dir)
        try:
            return model(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"`{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}" for e in exc.errors()
            )
            first = ".".join(str(p) for p in exc.errors()[0]["loc"])
            raise ConfigError(
                f"connection `{name}` ({factory.name}): {problems}",
                connector=name,
                field=first,
                hint=f"Valid fields for `{factory.name}`: "
                + ", ".join(sorted(k for k in model.model_fields if k != "base_dir")),
            ) from None

    def workspace_secret(self, name: str, create: Callable[[], str]) -> str:
        """The workspace secret ``name`` (such as the masking salt), created with ``create``
        and stored encrypted on first use; never shown in errors (scrubbed like others)."""
        stored = f"workspace.{name}"
        token = self._store.get_secret(stored)
        if token is None:
            try:
                self._store.put_secret(stored, self._box.encrypt(create()))
            except Exception:  # another process created it at the same time: use theirs
                if self._store.get_secret(stored) is None:
                    raise
            token = self._store.get_secret(stored)
            assert token is not None
        value = self._box.decrypt(token, where=f"workspace secret `{name}`")
        self._remember(value)
        return value

    def _remember(self, value: str) -> None:
        if len(value) >= 4:  # shorter values would scrub ordinary words
            self._secret_values.add(value)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value this workspace resolved replaced by ``****``."""
        for value in sorted(self._secret_values, key=len, reverse=True):
            text = text.replace(value, "****")
        return text

    def scrub_error(self, exc: HeadwaterError) -> HeadwaterError:
        """Remove resolved secret values from an error's text fields, in place."""
        exc.message = self.scrub(exc.message)
        if exc.hint:
            exc.hint = self.scrub(exc.hint)
        if exc.location:
            exc.location = self.scrub(exc.location)
        exc.details = {
            k: self.scrub(v) if isinstance(v, str) else v for k, v in exc.details.items()
        }
        exc.args = (exc.message,)
        return exc

    def resolve(self, name: str) -> tuple[ConnectorFactory, ConnectorConfig]:
        """The factory and the validated config with every secret resolved."""
        type_, raw, origin, _ = self._raw(name)
        factory = get_connector(type_)
        if origin == "headwater.yaml":
            for key in _secret_fields(factory.config_model) & set(raw):
                value = raw[key]
                if not (isinstance(value, str) and has_env_ref(value)):
                    raise ConfigError(
                        f"connection `{name}` field `{key}` holds a plain secret",
                        location=str(self._config_file),
                        field=f"connections.{name}.{key}",
                        hint=f"Write `{key}: ${{ENV_VAR}}` and export the variable, or store "
                        f"it encrypted with `headwater connections add {name} --secret {key}=...`.",
                    )
        return factory, self._validate(name, factory, self._resolve_values(name, raw))

    def source(self, name: str) -> Source:
        factory, config = self.resolve(name)
        if not factory.capabilities.source:
            raise ConnectorError(
                f"connection `{name}` ({factory.name}) cannot be read from", connector=name
            )
        return factory.source(config)

    def destination(self, name: str) -> Destination:
        factory, config = self.resolve(name)
        if not factory.capabilities.destination:
            raise ConnectorError(
                f"connection `{name}` ({factory.name}) cannot be written to", connector=name
            )
        return factory.destination(config)

    def test(self, name: str) -> None:
        """Run the connector's check; raises a HeadwaterError when it fails."""
        factory, config = self.resolve(name)
        try:
            if factory.capabilities.source:
                factory.source(config).check()
            else:
                factory.destination(config).check()
        except HeadwaterError as exc:
            raise self.scrub_error(exc) from None
