"""The ``postgres`` connector declaration: config model and capabilities (cheap to import).

Reads go through ADBC (``adbc_driver_postgresql``) straight into Arrow; writes go
through ADBC's binary COPY ingest. Both drivers are imported only when a source or
a destination is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from headwater.connectors.base import (
    SQL_CAPABILITIES,
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    as_config,
)
from headwater.connectors.server.urls import ServerUrl, check_url, redact_url

if TYPE_CHECKING:
    from headwater.connectors.base import Destination, Source

__all__ = ["CONNECTOR", "PostgresConfig", "PostgresFactory", "redact_url"]

CONNECTOR = "postgres"
_SCHEMES = ("postgresql", "postgres")


class PostgresConfig(ServerUrl, ConnectorConfig):
    """Settings of a ``postgres`` connection.

    ``url`` is SQLAlchemy-style, ``postgresql://user:password@host:port/database``
    (a ``+driver`` suffix such as ``postgresql+psycopg://`` is accepted and ignored).
    Put the password in an environment variable: ``url: postgresql://me:${PG_PASSWORD}@db/x``.
    The password never appears in a repr, an error or a log line.
    """

    default_port: ClassVar[int] = 5432

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
    parallel_read_rows: int = Field(
        default=0,
        ge=0,
        description="An extract of a table estimated to return at least this many rows, with "
        "a single-column integer, date or timestamp primary key, is read as parallel key "
        "ranges inside one snapshot unless its step says `partition: false`; 0 (the default) "
        "never splits by itself. Worth it when the database has cores of its own (e.g. "
        "2000000); on a 2-core machine shared with the database one stream measured faster.",
    )
    parallel_read_partitions: int = Field(
        default=2,
        ge=2,
        le=64,
        description="How many ranges (and connections) such a default parallel read uses.",
    )
    merge_strategy: Literal["auto", "merge", "rebuild"] = Field(
        default="auto",
        description="How `mode: merge` writes: `merge` in place, `rebuild` a new table swapped "
        "in, `auto` rebuilds when the batch is at least 40% of a table of 100,000+ rows that "
        "nothing depends on. A load step's `options: {merge_strategy: ...}` overrides it.",
    )

    model_config = {"populate_by_name": True}

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_url(value, _SCHEMES, "postgresql://user:password@host:port/database")

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
        return self._url_password()


class PostgresFactory(ConnectorFactory):
    """PostgreSQL tables and queries as Arrow streams; tables as write targets."""

    name: ClassVar[str] = CONNECTOR
    config_model: ClassVar[type[ConnectorConfig]] = PostgresConfig
    capabilities: ClassVar[Capabilities] = SQL_CAPABILITIES
    description: ClassVar[str] = "PostgreSQL tables and queries (ADBC reads, binary COPY writes)."

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.postgres.source import PostgresSource

        return PostgresSource(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.postgres.destination import PostgresDestination

        return PostgresDestination(_as_config(config))


def _as_config(config: ConnectorConfig) -> PostgresConfig:
    return as_config(config, PostgresConfig, CONNECTOR)
