"""Headwater: a self-hostable data management workbench.

The public surface is small and stable; everything else is internal::

    import headwater

    with headwater.Workspace.open("shop") as ws:
        result = ws.run("pipelines/orders.yaml")
"""

from headwater.connectors.base import (
    Capabilities,
    ConnectorConfig,
    ConnectorFactory,
    Destination,
    Reject,
    RejectSink,
    Source,
    Stream,
    WriteResult,
)
from headwater.connectors.registry import available_connectors, register_connector
from headwater.errors import HeadwaterError
from headwater.pipelines.events import RunResult, StepOutcome
from headwater.workspace import DatasetInfo, Workspace

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "ConnectorConfig",
    "ConnectorFactory",
    "DatasetInfo",
    "Destination",
    "HeadwaterError",
    "Reject",
    "RejectSink",
    "RunResult",
    "Source",
    "StepOutcome",
    "Stream",
    "Workspace",
    "WriteResult",
    "__version__",
    "available_connectors",
    "register_connector",
]
