"""Connectors: sources and destinations exchanging Arrow record batches."""

from headwater.connectors.base import (
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    Destination,
    ListRejectSink,
    Reject,
    RejectSink,
    Source,
    Stream,
    WriteMode,
    WriteResult,
)
from headwater.connectors.registry import available_connectors, get_connector, register_connector

__all__ = [
    "Capabilities",
    "ConnectorConfig",
    "ConnectorFactory",
    "Destination",
    "ListRejectSink",
    "Reject",
    "RejectSink",
    "Source",
    "Stream",
    "WriteMode",
    "WriteResult",
    "available_connectors",
    "get_connector",
    "register_connector",
]
