"""Headwater: a self-hostable data management workbench.

The public surface is small and stable; everything else is internal::

    import headwater

    with headwater.Workspace.open("shop") as ws:
        result = ws.run("pipelines/orders.yaml")

Names are imported on first use, so ``import headwater`` (and ``headwater --help``)
stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError

if TYPE_CHECKING:
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
    from headwater.pipelines.events import RunResult, StepOutcome
    from headwater.workspace import DatasetInfo, Workspace

__version__ = "0.1.0"

_LAZY = {
    "Capabilities": "headwater.connectors.base",
    "ConnectorConfig": "headwater.connectors.base",
    "ConnectorFactory": "headwater.connectors.base",
    "Destination": "headwater.connectors.base",
    "Reject": "headwater.connectors.base",
    "RejectSink": "headwater.connectors.base",
    "Source": "headwater.connectors.base",
    "Stream": "headwater.connectors.base",
    "WriteResult": "headwater.connectors.base",
    "available_connectors": "headwater.connectors.registry",
    "register_connector": "headwater.connectors.registry",
    "RunResult": "headwater.pipelines.events",
    "StepOutcome": "headwater.pipelines.events",
    "DatasetInfo": "headwater.workspace",
    "Workspace": "headwater.workspace",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
