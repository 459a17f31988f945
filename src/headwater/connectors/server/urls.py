"""SQLAlchemy-style connection URLs (``scheme[+driver]://user:password@host:port/database``).

Checked when a config is validated, redacted wherever shown: the user-info never
appears in a repr, an error or a log line. Cheap to import (no driver).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["ServerUrl", "check_url", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with its user-info replaced by ``****`` (never show a user or password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"****@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_url(value: str, schemes: Iterable[str], usage: str, *, check_port: bool = False) -> str:
    """``value`` when its scheme (``+driver`` ignored) is one of ``schemes`` and it names a
    database; a ValueError (showing the redacted URL and ``usage``) otherwise.

    ``check_port``: a port that is not a number is refused here rather than on first use.
    """
    try:
        parts = urlsplit(value)
        if check_port:
            parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("`url` is not a valid URL") from None
    scheme = parts.scheme.lower().partition("+")[0]
    if scheme not in schemes:
        raise ValueError(
            f"unsupported URL scheme `{parts.scheme}://` in {redact_url(value)!r}; use {usage}"
        )
    if not parts.path.strip("/"):
        raise ValueError(f"the URL {redact_url(value)!r} names no database (/database)")
    return value


class ServerUrl:
    """The endpoint properties of a config with a ``url`` field (a mixin of a config model).

    ``default_port`` is the server's port when the URL names none.
    """

    default_port: ClassVar[int]
    if TYPE_CHECKING:
        url: str

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():  # type: ignore[misc]
            yield key, (redact_url(value) if key == "url" else value)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or self.default_port

    @property
    def database(self) -> str:
        return unquote(urlsplit(self.url).path.strip("/"))

    @property
    def where(self) -> str:
        """``host:port/database``: names the endpoint in messages, never the credentials."""
        return f"{self.host}:{self.port}/{self.database}"

    def _url_password(self) -> str | None:
        value = urlsplit(self.url).password
        return unquote(value) if value else None
