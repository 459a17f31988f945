"""Alerts: channels (webhook, Slack, email), rules and incidents with deduplication.

Configured in headwater.yaml under ``alerts:`` (see docs/alerts.md)::

    alerts:
      channels:
        ops: {type: webhook, url: "https://hooks.example.com/hw", secret: "${HW_HOOK_SECRET}"}
      rules:
        - {name: failed-checks, on: check_failure, channels: [ops]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from headwater.errors import ConfigError, choices_hint
from headwater.metadata.store import MetadataStore
from headwater.quality.alerts.channels import (
    CHANNEL_TYPES,
    SIGNATURE_HEADER,
    Channel,
    Delivery,
    Notification,
    build_channel,
    sign,
)
from headwater.quality.alerts.incidents import (
    AlertOutcome,
    Signal,
    evaluate_signals,
    list_incidents,
    record_delivery,
)
from headwater.quality.settings import AlertsSettings, parse_alerts

__all__ = [
    "CHANNEL_TYPES",
    "SIGNATURE_HEADER",
    "AlertOutcome",
    "Alerts",
    "Channel",
    "Delivery",
    "Notification",
    "Signal",
    "build_channel",
    "list_incidents",
    "sign",
]


class Alerts:
    """The alert rules and channels of one workspace."""

    def __init__(
        self,
        store: MetadataStore,
        config: Mapping[str, Any] | None,
        *,
        workspace: str | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        self.store = store
        self.settings: AlertsSettings = parse_alerts(config)
        self.workspace = workspace
        self.channels: dict[str, Channel] = (
            dict(channels)
            if channels is not None
            else {name: build_channel(name, data) for name, data in self.settings.channels.items()}
        )

    @property
    def enabled(self) -> bool:
        return bool(self.settings.rules)

    def process(self, signals: list[Signal], *, now: datetime | None = None) -> list[AlertOutcome]:
        """Update incidents for ``signals`` and send what is due."""
        if not self.settings.rules or not signals:
            return []
        return evaluate_signals(
            self.store,
            self.settings.rules,
            self.channels,
            signals,
            now=now or datetime.now(UTC),
            workspace=self.workspace,
        )

    def test(self, channel: str, *, now: datetime | None = None) -> Delivery:
        """Send a test notification through ``channel``."""
        if channel not in self.channels:
            raise ConfigError(
                f"no alert channel named `{channel}`",
                field="alerts.channels",
                hint=choices_hint(channel, self.channels, "channels"),
            )
        at = now or datetime.now(UTC)
        note = Notification(
            event="test",
            rule="test",
            kind="test",
            subject=channel,
            summary=f"Test notification from Headwater through channel `{channel}`.",
            workspace=self.workspace,
        )
        delivery = self.channels[channel].send(note)
        record_delivery(self.store, delivery, event="test", incident_id=None, at=at)
        return delivery
