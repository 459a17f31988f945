"""The public API is exactly what __all__ says."""

import headwater


def test_public_api() -> None:
    assert sorted(headwater.__all__) == sorted(
        [
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
    )
    for name in headwater.__all__:
        assert getattr(headwater, name) is not None
