"""The wording of driver errors of the client-server connectors (never a password).

Each connector decides what kind an error is (its driver's codes and states differ);
the messages, locations and hints are the same for every server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from headwater.errors import (
    ConnectorError,
    ConnectorUnavailableError,
    SchemaIncompatibleError,
    choices_hint,
)

__all__ = [
    "failed_error",
    "missing_column_error",
    "refused_error",
    "scrub_secrets",
    "unreachable_error",
]


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each non-empty secret (a URL, a password) replaced by ``****``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "****")
    return text


def unreachable_error(
    product: str, where: str, detail: str, *, connector: str
) -> ConnectorUnavailableError:
    """The server at ``where`` could not be reached (transient)."""
    return ConnectorUnavailableError(
        f"Cannot reach {product} at {where}: {detail}",
        connector=connector,
        location=where,
        hint="Check the host and port in the connection `url`, and that the server is up.",
    )


def refused_error(
    cls: type[ConnectorError],
    product: str,
    where: str,
    detail: str,
    *,
    connector: str,
    password_variable: str,
) -> ConnectorError:
    """The server at ``where`` answered and refused the login (``cls``: terminal)."""
    return cls(
        f"{product} at {where} refused the connection: {detail}",
        connector=connector,
        location=where,
        hint="Check the user, password and database in the connection `url` "
        f"(put the password in an environment variable: ${{{password_variable}}}).",
    )


def failed_error(
    cls: type[ConnectorError],
    product: str,
    where: str,
    doing: str,
    detail: str,
    *,
    connector: str,
    **context: Any,
) -> ConnectorError:
    """A statement failed at ``where`` while ``doing``; ``cls`` tells lost from rejected."""
    return cls(
        f"{product} at {where} failed while {doing}: {detail}",
        connector=connector,
        location=where,
        **context,
    )


def missing_column_error(
    table: str, column: str, known: Iterable[str], *, connector: str
) -> SchemaIncompatibleError:
    """Data to write has ``column``, which the existing ``table`` lacks."""
    return SchemaIncompatibleError(
        f"Table {table} has no column {column!r}.",
        connector=connector,
        column=column,
        hint=choices_hint(column, known, "columns")
        + " Add the column to the table, or drop it from the data.",
    )
