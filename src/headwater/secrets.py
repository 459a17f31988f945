"""Secrets: ``${ENV_VAR}`` references and values encrypted at rest with Fernet.

The key lives in ``.headwater/key`` (mode 0600, created on first use) unless
``HEADWATER_SECRET_KEY`` is set. Secret values are never logged, printed or put
in an error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from headwater.errors import SecretError

__all__ = ["ENV_REF", "SecretBox", "has_env_ref", "resolve_env_refs"]

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def has_env_ref(value: str) -> bool:
    return bool(ENV_REF.search(value))


def resolve_env_refs(value: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` in ``value``; an unset variable is an error naming it."""
    env = os.environ if environ is None else environ

    def _sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise SecretError(
                f"environment variable `{name}` referenced by {where} is not set",
                field=where,
                hint=f"export {name}=... before running, or store the value encrypted with "
                "`headwater connections add NAME --secret FIELD=VALUE`.",
            )
        return env[name]

    return ENV_REF.sub(_sub, value)


class SecretBox:
    """Encrypts and decrypts secret values with the workspace key."""

    def __init__(self, key_file: Path, env_key: str | None = None) -> None:
        self.key_file = key_file
        self._env_key = env_key
        self._fernet: Any = None

    @property
    def key_source(self) -> str:
        return "HEADWATER_SECRET_KEY" if self._env_key else str(self.key_file)

    def _get(self) -> Any:
        if self._fernet is not None:
            return self._fernet
        from cryptography.fernet import Fernet

        if self._env_key:
            key = self._env_key.encode()
        elif self.key_file.exists():
            key = self.key_file.read_bytes().strip()
        else:
            key = Fernet.generate_key()
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key + b"\n")
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise SecretError(
                f"the secrets key in {self.key_source} is not a valid Fernet key",
                hint="A key is 32 url-safe base64-encoded bytes; generate one with `python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`.",
            ) from exc
        return self._fernet

    def encrypt(self, value: str) -> bytes:
        token: bytes = self._get().encrypt(value.encode("utf-8"))
        return token

    def decrypt(self, token: bytes, *, where: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            plain: bytes = self._get().decrypt(token)
        except InvalidToken as exc:
            raise SecretError(
                f"cannot decrypt the stored secret for {where}: the key in {self.key_source} "
                "is not the key it was encrypted with",
                field=where,
                hint="Restore the original .headwater/key (or HEADWATER_SECRET_KEY), or store "
                "the secret again with `headwater connections add ... --secret FIELD=VALUE`.",
            ) from exc
        return plain.decode("utf-8")
