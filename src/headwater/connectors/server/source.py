"""What the postgres and mariadb sources check the same way: the connection, the options."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from headwater.errors import ConfigError, HeadwaterError, choices_hint

__all__ = ["READ_OPTIONS", "check_connection", "check_read_options", "on_connection"]

READ_OPTIONS = ("query",)


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C")
K = TypeVar("K", bound=_Closable)
T = TypeVar("T")


def on_connection(
    config: C,
    connect: Callable[[C], K],
    driver_error: Callable[[C, BaseException, str], Exception],
    doing: str,
    work: Callable[[K], T],
    *,
    pass_through: tuple[type[BaseException], ...] = (),
) -> T:
    """``work`` on a fresh connection, closed after; a driver failure while ``doing`` it
    becomes the connector's error (``pass_through`` errors are raised as they are)."""
    conn = connect(config)
    try:
        return work(conn)
    except pass_through:
        raise
    except Exception as exc:
        raise driver_error(config, exc, doing) from None
    finally:
        conn.close()


def check_connection(
    config: C,
    connect: Callable[[C], K],
    fetch_all: Callable[[K, str], object],
    driver_error: Callable[[C, BaseException, str], Exception],
) -> None:
    """Connect and run ``SELECT 1``; a driver failure becomes the connector's error."""
    on_connection(
        config,
        connect,
        driver_error,
        "running SELECT 1",
        lambda conn: fetch_all(conn, "SELECT 1"),
        pass_through=(HeadwaterError,),
    )


def check_read_options(options: Mapping[str, Any] | None, *, connector: str) -> dict[str, Any]:
    """The read options, checked: only ``query``, and it must be a non-blank string."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(READ_OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown read option {unknown[0]!r} for {connector}.",
            connector=connector,
            field=f"options.{unknown[0]}",
            hint=choices_hint(unknown[0], READ_OPTIONS, "options"),
        )
    query = opts.get("query")
    if query is not None and not (isinstance(query, str) and query.strip()):
        raise ConfigError(
            "options.query must be a SELECT statement.",
            connector=connector,
            field="options.query",
        )
    return opts
