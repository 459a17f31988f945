"""PyMySQL connections and the translation of driver errors into Headwater errors.

A host that cannot be reached (MySQL client error 2003/2005/2006/2013, or a TCP
connect failure) is :class:`ConnectorUnavailableError` (transient, retried). A login
the server answered and refused (1044, 1045, 1049, ...) is :class:`MariadbAuthError`
(terminal, not retried). Neither message ever holds the password.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from headwater.connectors.mariadb.factory import CONNECTOR, MariadbConfig
from headwater.connectors.server.errors import (
    failed_error,
    refused_error,
    scrub_secrets,
    unreachable_error,
)
from headwater.errors import ConnectorError, ConnectorUnavailableError, Terminal

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["MariadbAuthError", "MariadbQueryError", "connect", "driver_error", "fetch_all"]

_PRODUCT = "MariaDB"
# "server gone / unreachable / this session was killed" codes: retrying may help
_LOST = {2002, 2003, 2005, 2006, 2013, 2055, 1053, 1077, 1152, 1153, 1158, 1159, 1160, 1161}
_KILLED = {1317, 1927}  # query interrupted / connection killed (KILL from another session)
_RETRY = {1205, 1213}  # lock wait timeout, deadlock: the transaction was rolled back


class MariadbAuthError(ConnectorError, Terminal):
    """The server refused the login (password, user, database, host): not retried."""


class MariadbQueryError(ConnectorError, Terminal):
    """A statement MariaDB rejected (syntax, permissions, constraint, bad value)."""


def scrub(config: MariadbConfig, text: str) -> str:
    """``text`` with the password and the full URL removed."""
    return scrub_secrets(text, (config.url, config.cx_url, config.password))


def _code(exc: BaseException) -> int | None:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if args and isinstance(args[0], int):
        return int(args[0])
    return None


def _detail(config: MariadbConfig, exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        text = f"({args[0]}) {args[1]}"
    else:
        text = str(exc).strip()
    return scrub(config, text.splitlines()[0] if text else type(exc).__name__)


def connect(config: MariadbConfig, *, local_infile: bool = False) -> Connection:
    """A PyMySQL connection (session time zone UTC, utf8mb4), or a Headwater error."""
    import pymysql  # type: ignore[import-untyped]

    try:
        conn = _connection_class()(
            host=config.host,
            port=config.port,
            user=config.user,
            password=config.password,
            database=config.database,
            charset="utf8mb4",
            connect_timeout=max(1, round(config.connect_timeout)),
            local_infile=local_infile,
            write_timeout=config.write_timeout,
            autocommit=False,
            init_command="SET time_zone = '+00:00', "
            "sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
        )
    except pymysql.Error as exc:
        raise connect_error(config, exc) from None
    return conn


@functools.cache
def _connection_class() -> type[Connection]:
    """PyMySQL's Connection, with one TLS context shared by every "preferred TLS" connection.

    PyMySQL builds a fresh default SSL context (loading the system's CA store, ~35 ms)
    for every connection that names no TLS options; the context is the same each time.
    """
    import ssl

    from pymysql.connections import Connection

    preferred: list[ssl.SSLContext] = []

    class _Connection(Connection):  # type: ignore[misc]
        def _create_ssl_ctx(self, sslp: Any) -> Any:
            if sslp:
                return super()._create_ssl_ctx(sslp)
            if not preferred:
                preferred.append(super()._create_ssl_ctx(sslp))
            return preferred[0]

    return _Connection


def connect_error(config: MariadbConfig, exc: BaseException) -> ConnectorError:
    detail = _detail(config, exc)
    code = _code(exc)
    if code is None or code in _LOST or code >= 2000:
        return unreachable_error(_PRODUCT, config.where, detail, connector=CONNECTOR)
    return refused_error(
        MariadbAuthError,
        _PRODUCT,
        config.where,
        detail,
        connector=CONNECTOR,
        password_variable="MYSQL_PASSWORD",
    )


def driver_error(
    config: MariadbConfig, exc: BaseException, doing: str, conn: Connection | None = None
) -> ConnectorError:
    """A query-time driver error as a ConnectorError; connection losses are transient.

    ``conn`` (when given) decides first: a connection PyMySQL closed under the error was
    lost, whatever error surfaced last (after a killed ``LOAD DATA LOCAL``, PyMySQL's
    clean-up fails with an AttributeError on the closed socket).
    """
    import pymysql

    detail = _detail(config, exc)
    code = _code(exc)
    if conn is not None and not conn.open:
        lost = True
        if not isinstance(exc, pymysql.Error):
            detail = f"the connection was closed under the statement ({detail})"
    elif isinstance(exc, (pymysql.err.InterfaceError, OSError, EOFError)):
        lost = True  # PyMySQL's "the connection is closed" (after a kill or a network drop)
    elif code is not None and code > 0:
        lost = transient_code(code)
    else:
        lost = "connection" in detail.lower()
    cls: type[ConnectorError] = ConnectorUnavailableError if lost else MariadbQueryError
    return failed_error(
        cls, _PRODUCT, config.where, doing, detail, connector=CONNECTOR, error_code=code
    )


def transient_code(code: int) -> bool:
    """A MySQL error code after which retrying may succeed (lost/killed session, deadlock)."""
    return code in _LOST or code in _KILLED or code in _RETRY


def fetch_all(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params or None)
        return list(cur.fetchall())


def execute(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    with conn.cursor() as cur:
        return int(cur.execute(sql, params or None))
