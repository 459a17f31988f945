"""Secrets: env references and Fernet encryption with a 0600 key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from headwater.errors import SecretError
from headwater.secrets import SecretBox, resolve_env_refs


def test_key_file_is_created_private(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / ".headwater" / "key")
    token = box.encrypt("s3cr3t")
    assert b"s3cr3t" not in token
    mode = stat.S_IMODE((tmp_path / ".headwater" / "key").stat().st_mode)
    assert mode == 0o600
    assert SecretBox(tmp_path / ".headwater" / "key").decrypt(token, where="x") == "s3cr3t"


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    token = SecretBox(tmp_path / "a").encrypt("s3cr3t")
    with pytest.raises(SecretError, match="not the key it was encrypted with") as info:
        SecretBox(tmp_path / "b").decrypt(token, where="connection `pg` field `password`")
    assert "s3cr3t" not in str(info.value)
    assert info.value.hint and "HEADWATER_SECRET_KEY" in info.value.hint


def test_env_key_takes_precedence(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    token = SecretBox(tmp_path / "unused", key).encrypt("v")
    assert not (tmp_path / "unused").exists()
    assert SecretBox(tmp_path / "other", key).decrypt(token, where="x") == "v"


def test_invalid_env_key(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="not a valid Fernet key"):
        SecretBox(tmp_path / "k", "not-a-key").encrypt("v")


def test_env_refs() -> None:
    env = {"PW": "hunter2"}
    assert resolve_env_refs("postgresql://u:${PW}@h/db", where="x", environ=env) == (
        "postgresql://u:hunter2@h/db"
    )
    with pytest.raises(SecretError, match="`MISSING_VAR`"):
        resolve_env_refs("${MISSING_VAR}", where="connection `a` field `b`", environ=env)
