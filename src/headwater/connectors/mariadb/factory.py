"""The ``mariadb`` connector declaration: config model and capabilities (cheap to import).

Reads go through connectorx (``arrow_stream``: Arrow batches straight from the MySQL
wire protocol, no Python per row); writes go through PyMySQL with ``LOAD DATA LOCAL
INFILE`` from temporary CSV files written by pyarrow. Both drivers are imported only
when a source or a destination is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

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

__all__ = ["CONNECTOR", "MariadbConfig", "MariadbFactory", "redact_url"]

CONNECTOR = "mariadb"
_SCHEMES = ("mysql", "mariadb")


class MariadbConfig(ServerUrl, ConnectorConfig):
    """Settings of a ``mariadb`` connection.

    ``url`` is SQLAlchemy-style, ``mysql://user:password@host:port/database`` or
    ``mariadb://...`` (a ``+driver`` suffix such as ``mysql+pymysql://`` is accepted and
    ignored). Put the password in an environment variable:
    ``url: mysql://me:${MYSQL_PASSWORD}@db/x``. The password never appears in a repr,
    an error or a log line.
    """

    default_port: ClassVar[int] = 3306

    url: str = Field(description="mysql://user:password@host:port/database")
    connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection before failing."
    )
    write_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a write may wait for the server to take more data (LOAD DATA); "
        "a killed session stops reading, and the write then fails as transient after this.",
    )
    batch_rows: int = Field(
        default=250_000, ge=1, description="Upper bound on rows per Arrow batch yielded by reads."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_url(
            value, _SCHEMES, "mysql://user:password@host:port/database", check_port=True
        )

    @property
    def user(self) -> str:
        value = urlsplit(self.url).username
        return unquote(value) if value else "root"

    @property
    def password(self) -> str:
        return self._url_password() or ""

    @property
    def cx_url(self) -> str:
        """The URL connectorx understands: ``mysql://`` without ``+driver`` or query."""
        parts = urlsplit(self.url)
        return urlunsplit(("mysql", parts.netloc, parts.path, "", ""))


class MariadbFactory(ConnectorFactory):
    """MariaDB/MySQL tables and queries as Arrow streams; tables as write targets."""

    name: ClassVar[str] = CONNECTOR
    config_model: ClassVar[type[ConnectorConfig]] = MariadbConfig
    capabilities: ClassVar[Capabilities] = SQL_CAPABILITIES
    description: ClassVar[str] = (
        "MariaDB/MySQL tables and queries (connectorx reads, LOAD DATA LOCAL INFILE writes)."
    )

    def source(self, config: ConnectorConfig) -> Source:
        from headwater.connectors.mariadb.source import MariadbSource

        return MariadbSource(_as_config(config))

    def destination(self, config: ConnectorConfig) -> Destination:
        from headwater.connectors.mariadb.destination import MariadbDestination

        return MariadbDestination(_as_config(config))


def _as_config(config: ConnectorConfig) -> MariadbConfig:
    return as_config(config, MariadbConfig, CONNECTOR)
