"""Incidents: one alert per condition until it recovers, then one recovery notice.

A :class:`Signal` says whether a condition (rule kind + subject, e.g. ``check_failure`` on
``staging.orders/not_null_id``) holds after a run. For every rule it matches:

* firing, no open incident: open one and notify the rule's channels, unless the rule's
  ``throttle`` window saw an opening alert on the same subject (a flapping condition); such an
  incident is recorded with ``notified = false`` and no recovery notice follows it;
* firing, incident open: count the occurrence, send nothing (deduplication);
* clear, incident open: resolve it and, when its opening was notified and the rule keeps
  ``recovery: true``, send a recovery notice.

A subject that was not evaluated in a run (no signal) leaves its incident as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from headwater.metadata.models import AlertDeliveryRow, AlertIncidentRow
from headwater.metadata.store import MetadataStore
from headwater.quality.alerts.channels import Channel, Delivery, Notification
from headwater.quality.settings import AlertRule, matches

__all__ = ["AlertOutcome", "Signal", "evaluate_signals", "list_incidents", "record_delivery"]


@dataclass(frozen=True)
class Signal:
    kind: str  # check_failure | anomaly | run_failure | freshness
    subject: str
    firing: bool
    summary: str
    dataset: str | None = None
    pipeline: str | None = None
    run_id: str | None = None
    severity: str | None = None  # check_failure: the check's severity


@dataclass(frozen=True)
class AlertOutcome:
    rule: str
    subject: str
    action: str  # opened | repeated | resolved | throttled
    incident_id: int
    deliveries: tuple[Delivery, ...] = ()


def _applies(rule: AlertRule, signal: Signal) -> bool:
    if rule.on != signal.kind:
        return False
    if rule.datasets and not matches(signal.dataset, rule.datasets):
        return False
    if rule.pipelines and not matches(signal.pipeline, rule.pipelines):
        return False
    return not (
        rule.on == "check_failure" and rule.severity != "any" and signal.severity != rule.severity
    )


def record_delivery(
    store: MetadataStore, delivery: Delivery, *, event: str, incident_id: int | None, at: datetime
) -> None:
    with store.session() as s:
        s.add(
            AlertDeliveryRow(
                incident_id=incident_id,
                channel=delivery.channel,
                event=event,
                ok=delivery.ok,
                attempts=delivery.attempts,
                error=delivery.error,
                sent_at=at,
            )
        )


def _open_incident(store: MetadataStore, rule: str, subject: str) -> AlertIncidentRow | None:
    with store.session() as s:
        return s.scalar(
            select(AlertIncidentRow).where(
                AlertIncidentRow.rule == rule,
                AlertIncidentRow.subject == subject,
                AlertIncidentRow.status == "open",
            )
        )


def _notified_since(store: MetadataStore, rule: str, subject: str, since: datetime) -> bool:
    with store.session() as s:
        found = s.scalar(
            select(AlertIncidentRow.id)
            .where(
                AlertIncidentRow.rule == rule,
                AlertIncidentRow.subject == subject,
                AlertIncidentRow.notified.is_(True),
                AlertIncidentRow.opened_at >= since,
            )
            .limit(1)
        )
        return found is not None


def evaluate_signals(
    store: MetadataStore,
    rules: Sequence[AlertRule],
    channels: Mapping[str, Channel],
    signals: Sequence[Signal],
    *,
    now: datetime,
    workspace: str | None = None,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> list[AlertOutcome]:
    """Open, count or resolve incidents for ``signals`` and send the notifications due."""
    outcomes: list[AlertOutcome] = []
    for rule in rules:
        for signal in signals:
            if not _applies(rule, signal):
                continue
            outcome = _apply(store, rule, channels, signal, now, workspace)
            if outcome is not None:
                outcomes.append(outcome)
                for delivery in outcome.deliveries:
                    if on_delivery is not None:
                        on_delivery(delivery)
    return outcomes


def _send(
    store: MetadataStore,
    rule: AlertRule,
    channels: Mapping[str, Channel],
    notification: Notification,
    now: datetime,
) -> tuple[Delivery, ...]:
    sent = []
    for name in rule.channels:
        delivery = channels[name].send(notification)
        record_delivery(
            store, delivery, event=notification.event, incident_id=notification.incident_id, at=now
        )
        sent.append(delivery)
    return tuple(sent)


def _apply(
    store: MetadataStore,
    rule: AlertRule,
    channels: Mapping[str, Channel],
    signal: Signal,
    now: datetime,
    workspace: str | None,
) -> AlertOutcome | None:
    current = _open_incident(store, rule.name, signal.subject)
    if signal.firing:
        if current is not None:
            with store.session() as s:
                row = s.get(AlertIncidentRow, current.id)
                assert row is not None
                row.occurrences += 1
                row.last_seen_at = now
                row.summary = signal.summary
                row.run_id = signal.run_id
            return AlertOutcome(rule.name, signal.subject, "repeated", current.id)
        throttled = rule.throttle > 0 and _notified_since(
            store, rule.name, signal.subject, now - timedelta(seconds=rule.throttle)
        )
        with store.session() as s:
            row = AlertIncidentRow(
                rule=rule.name,
                subject=signal.subject,
                status="open",
                summary=signal.summary,
                opened_at=now,
                last_seen_at=now,
                notified=not throttled,
                occurrences=1,
                run_id=signal.run_id,
            )
            s.add(row)
            s.flush()
            incident_id = row.id
        if throttled:
            return AlertOutcome(rule.name, signal.subject, "throttled", incident_id)
        note = Notification(
            event="opened",
            rule=rule.name,
            kind=signal.kind,
            subject=signal.subject,
            summary=signal.summary,
            incident_id=incident_id,
            run_id=signal.run_id,
            pipeline=signal.pipeline,
            dataset=signal.dataset,
            opened_at=now.isoformat(),
            workspace=workspace,
        )
        return AlertOutcome(
            rule.name,
            signal.subject,
            "opened",
            incident_id,
            _send(store, rule, channels, note, now),
        )
    if current is None:
        return None
    with store.session() as s:
        row = s.get(AlertIncidentRow, current.id)
        assert row is not None
        row.status = "resolved"
        row.resolved_at = now
        opened = MetadataStore.as_utc(row.opened_at)
        occurrences = row.occurrences
        notified = row.notified
    deliveries: tuple[Delivery, ...] = ()
    if notified and rule.recovery:
        note = Notification(
            event="recovered",
            rule=rule.name,
            kind=signal.kind,
            subject=signal.subject,
            summary=signal.summary,
            incident_id=current.id,
            run_id=signal.run_id,
            pipeline=signal.pipeline,
            dataset=signal.dataset,
            opened_at=opened.isoformat() if opened else None,
            resolved_at=now.isoformat(),
            occurrences=occurrences,
            workspace=workspace,
        )
        deliveries = _send(store, rule, channels, note, now)
    return AlertOutcome(rule.name, signal.subject, "resolved", current.id, deliveries)


def list_incidents(
    store: MetadataStore, *, status: str | None = None, limit: int = 50
) -> list[AlertIncidentRow]:
    with store.session() as s:
        query = select(AlertIncidentRow).order_by(AlertIncidentRow.id.desc()).limit(limit)
        if status:
            query = query.where(AlertIncidentRow.status == status)
        return list(s.scalars(query))
