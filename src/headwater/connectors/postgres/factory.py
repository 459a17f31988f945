"""The ``postgres`` connector declaration: config model and capabilities (cheap to import).

Reads go through ADBC (``adbc_driver_postgresql``) straight into Arrow; writes go
through ADBC's binary COPY ingest. Both drivers are imported only when a source or
a destination is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator

from headwater.connectors.base import Capabilities, ConnectorConfig, ConnectorFactory

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["CONNECTOR", "PostgresConfig", "PostgresFactory", "redact_url"]

CONNECTOR = "postgres"
_SCHEMES = ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """``url`` with its user-info replaced by ``****`` (never show a user or password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"****@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PostgresConfig(ConnectorConfig):
    """Settings of a ``postgres`` connection.

    ``url`` is SQLAlchemy-style, ``postgresql://user:password@host:port/database``
    (a ``+driver`` suffix such as ``postgresql+psycopg://`` is accepted and ignored).
    Put the password in an environment variable: ``url: postgresql://me:${PG_PASSWORD}@db/x``.
    The password never appears in a repr, an error or a log line.
    """

    url: str = Field(description="postgresql://user:password@host:port/database")
    schema_: str = Field(
        default="public",
        alias="schema",
        description="Schema of unqualified table names, for reads and writes.",
    )
    connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection before failing."
    )
    batch_rows: int = Field(
        default=250_000, ge=1, description="Upper bound on rows per Arrow batch yielded by reads."
    )

    model_config = {"populate_by_name": True}

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("`url` is not a valid URL") from None
        scheme = parts.scheme.lower().partition("+")[0]
        if scheme not in _SCHEMES:
            raise ValueError(
                f"unsupported URL scheme `{parts.scheme}://` in {redact_url(value)!r}; "
                "use postgresql://user:password@host:port/database"
            )
        if not parts.path.strip("/"):
            raise ValueError(f"the URL {redact_url(value)!r} names no database (/database)")
        return value

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (redact_url(value) if key == "url" else value)

    @property
    def schema_name(self) -> str:
        return self.schema_

    @property
    def libpq_url(self) -> str:
        """The URL libpq understands: no ``+driver``, with ``connect_timeout`` set."""
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower().partition("+")[0]
        timeout = max(1, round(self.connect_timeout))
        query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("connect_"))
        query = f"{query}&connect_timeout={timeout}" if query else f"connect_timeout={timeout}"
        return urlunsplit((scheme, parts.netloc, parts.path, query, ""))

    @property
    def password(self) -> str | None:
        value = urlsplit(self.url).password
        return unquote(value) if value else None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 5432

    @property
    def database(self) -> str:
        return unquote(urlsplit(self.url).path.strip("/"))

    @property
    def where(self) -> str:
        """``host:port/database``: names the endpoint in messages, never the credentials."""
        return f"{self.host}:{self.port}/{self.database}"


class PostgresFactory(ConnectorFactory):
    """PostgreSQL tables and queries as Arrow streams; tables as write targets."""

    name: ClassVar[str] = CONNECTOR
    config_model: ClassVar[type[ConnectorConfig]] = PostgresConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        source=True,
        destination=True,
        pushdown=True,
        incremental=True,
        partitioned=True,
        idempotent=True,
        merge=True,
        write_modes=("append", "overwrite", "merge"),
    )
    description: ClassVar[str] = "PostgreSQL tables and queries (ADBC reads, binary COPY writes)."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.postgres.source import PostgresSource

        return PostgresSource(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.postgres.destination import PostgresDestination

        return PostgresDestination(_as_config(config))


def _as_config(config: ConnectorConfig) -> PostgresConfig:
    if isinstance(config, PostgresConfig):
        return config
    from pydantic import ValidationError

    from headwater.errors import ConfigError

    try:
        return PostgresConfig.model_validate(config.model_dump())
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid `postgres` connection settings: {exc.errors()[0]['msg']}.",
            connector=CONNECTOR,
        ) from None
