"""Connections (ADBC) and the translation of driver errors into Headwater errors.

libpq reports a failed login with a message but no SQLSTATE, so the kind of a
connection failure is decided by reachability, not by message text: when the TCP
port cannot be reached the error is :class:`ConnectorUnavailableError` (transient,
retried); when the server answered and refused (wrong password, unknown role or
database, not allowed by pg_hba) it is :class:`PostgresAuthError` (terminal, not
retried). Neither message ever holds the password.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

from headwater.connectors.postgres.factory import CONNECTOR, PostgresConfig
from headwater.connectors.server.errors import (
    failed_error,
    refused_error,
    scrub_secrets,
    unreachable_error,
)
from headwater.errors import ConnectorError, ConnectorUnavailableError, Terminal

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = [
    "PostgresAuthError",
    "PostgresQueryError",
    "connect",
    "connection_lost",
    "driver_error",
    "scrub",
]

_PRODUCT = "PostgreSQL"


class PostgresAuthError(ConnectorError, Terminal):
    """The server refused the login (password, role, database, pg_hba): not retried."""


def scrub(config: PostgresConfig, text: str) -> str:
    """``text`` with the password and the full URL removed."""
    return scrub_secrets(text, (config.url, config.libpq_url, config.password))


def _detail(config: PostgresConfig, exc: BaseException) -> str:
    text = str(exc).strip()
    for prefix in ("IO: ", "[libpq] ", "Failed to connect: ", "connection failed: "):
        text = text.removeprefix(prefix)
    return scrub(config, text.splitlines()[0] if text else type(exc).__name__)


def _reachable(config: PostgresConfig) -> bool:
    host = config.host
    if host.startswith("/"):  # a unix socket directory: libpq's answer is all we have
        return True
    try:
        # short: libpq already waited connect_timeout; a slow answer counts as unreachable
        with socket.create_connection((host, config.port), timeout=min(config.connect_timeout, 1)):
            return True
    except OSError:
        return False


def connect(config: PostgresConfig, *, autocommit: bool = False) -> Connection:
    """An ADBC connection, or a Headwater error naming host:port/database (never the password)."""
    import adbc_driver_postgresql.dbapi as dbapi  # type: ignore[import-untyped]

    try:
        conn = dbapi.connect(config.libpq_url, autocommit=autocommit)
    except dbapi.Error as exc:
        raise connect_error(config, exc) from None
    return conn


def connect_error(config: PostgresConfig, exc: BaseException) -> ConnectorError:
    detail = _detail(config, exc)
    if not _reachable(config):
        return unreachable_error(_PRODUCT, config.where, detail, connector=CONNECTOR)
    return refused_error(
        PostgresAuthError,
        _PRODUCT,
        config.where,
        detail,
        connector=CONNECTOR,
        password_variable="PG_PASSWORD",
    )


def connection_lost(conn: Connection) -> bool:
    """Whether ``conn`` no longer reaches its server (probed with ``SELECT 1``).

    Errors raised while an Arrow stream is read carry no SQLSTATE (a killed session and a
    failing expression look alike); a probe on the same connection tells them apart: after
    query error the connection still answers once rolled back, after a lost session it
    cannot. Rolls the transaction back: only for a statement that already failed.
    """
    import adbc_driver_manager

    with contextlib.suppress(Exception):  # a failed statement aborted the transaction
        conn.rollback()
    try:
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()
    except Exception as exc:
        state = getattr(exc, "sqlstate", None) or ""
        if state:
            return state.startswith(("08", "57P"))
        return isinstance(exc, adbc_driver_manager.OperationalError)
    return False


def driver_error(
    config: PostgresConfig, exc: BaseException, doing: str, *, lost: bool | None = None
) -> ConnectorError:
    """A query-time driver error as a ConnectorError; connection losses are transient.

    ``lost`` is the caller's verdict (from :func:`connection_lost`) when it probed.
    """
    import adbc_driver_manager  # type: ignore[import-untyped]

    detail = _detail(config, exc)
    state = getattr(exc, "sqlstate", None) or ""
    lost = (
        lost
        or state.startswith(("08", "57P"))
        or (isinstance(exc, adbc_driver_manager.OperationalError) and not state)
    )
    cls: type[ConnectorError] = ConnectorUnavailableError if lost else PostgresQueryError
    return failed_error(
        cls, _PRODUCT, config.where, doing, detail, connector=CONNECTOR, sqlstate=state or None
    )


class PostgresQueryError(ConnectorError, Terminal):
    """A statement PostgreSQL rejected (syntax, permissions, constraint)."""


def fetch_all(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        return list(cur.fetchall())
    finally:
        cur.close()
