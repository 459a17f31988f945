"""DuckDB plumbing shared by the readers and writers: connections, SQL literals, errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from headwater.connectors.files.storage import CONNECTOR, Storage, redact
from headwater.errors import ConfigError

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect", "first_line", "ident", "lit", "named_args"]


def connect(storage: Storage) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB that never downloads extensions, bounded in threads/memory.

    On S3 the connection reads and writes ``s3://`` through the connection's fsspec
    filesystem (DuckDB's httpfs extension is not used).
    """
    import duckdb

    config = storage.config
    threads = config.threads or min(4, os.cpu_count() or 1)
    try:
        con = duckdb.connect(
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "threads": threads,
                "memory_limit": config.memory_limit,
                "temp_directory": os.path.join(tempfile.gettempdir(), "headwater-duckdb"),
            }
        )
    except duckdb.Error as exc:
        raise ConfigError(
            f"Invalid DuckDB settings for the files connector: {first_line(exc)}",
            connector=CONNECTOR,
            hint="Check `threads` and `memory_limit` (e.g. '1GB') in the connection.",
        ) from None
    if storage.is_s3:
        con.register_filesystem(storage.fs)
    return con


def lit(value: Any) -> str:
    """A DuckDB SQL literal for str, bool, int, float, list and str->str dicts."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{lit(str(k))}: {lit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Iterable):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def named_args(args: Mapping[str, Any]) -> str:
    """``, key=value`` pairs for a table function call (None values are left out)."""
    return "".join(f", {key}={lit(value)}" for key, value in args.items() if value is not None)


def first_line(exc: BaseException) -> str:
    """The first line of an error message, without DuckDB's error class prefix.

    A password in a URL (``scheme://user:password@host``) is masked.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    for prefix in ("Invalid Input Error: ", "IO Error: ", "Binder Error: ", "Conversion Error: "):
        line = line.removeprefix(prefix)
    return redact(line)[:500]
