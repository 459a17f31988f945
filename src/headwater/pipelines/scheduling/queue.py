"""The scheduler's metadata: leader lease, fired ticks, the run queue, subscriptions.

Every guard against doing a thing twice is a database constraint or a conditional
``UPDATE`` whose row count says who won, so it holds on SQLite and PostgreSQL alike and
between processes on different hosts:

* the lease row is taken with ``UPDATE ... WHERE holder = me OR expires_at < now``;
* a tick is recorded with the unique key (pipeline, scheduled_for): a second scheduler
  firing the same tick gets an integrity error and fires nothing;
* a queued run is claimed with ``UPDATE ... WHERE status = 'queued'``.

Times are stored in UTC (SQLite keeps them without a zone; :meth:`MetadataStore.as_utc`
puts it back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from headwater.metadata.models import (
    RunRequestRow,
    RunRow,
    ScheduleCursorRow,
    SchedulerLeaseRow,
    ScheduleTickRow,
    SubscriptionRow,
    WebhookDeliveryRow,
    utcnow,
)
from headwater.metadata.store import MetadataStore

__all__ = ["SchedulerStore"]

LEASE_NAME = "scheduler"
ACTIVE = ("queued", "running")


def _db_time(value: datetime) -> datetime:
    """UTC, as stored: SQLite compares the text, so every value must be in the same zone."""
    from datetime import UTC

    return value.astimezone(UTC)


class SchedulerStore:
    """Repository methods of the scheduler over a :class:`MetadataStore`."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- lease -----------------------------------------------------------------------------
    def acquire_lease(
        self, holder: str, now: datetime, seconds: float, *, name: str = LEASE_NAME
    ) -> bool:
        """Take or renew the lease; True when ``holder`` holds it until ``now + seconds``."""
        from datetime import timedelta

        now = _db_time(now)
        expires = now + timedelta(seconds=seconds)
        with self.store.session() as s:
            result = s.execute(
                update(SchedulerLeaseRow)
                .where(
                    SchedulerLeaseRow.name == name,
                    or_(SchedulerLeaseRow.holder == holder, SchedulerLeaseRow.expires_at < now),
                )
                .values(holder=holder, renewed_at=now, expires_at=expires)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return True
        try:
            with self.store.session() as s:
                if s.get(SchedulerLeaseRow, name) is not None:
                    return False
                s.add(
                    SchedulerLeaseRow(
                        name=name,
                        holder=holder,
                        acquired_at=now,
                        renewed_at=now,
                        expires_at=expires,
                    )
                )
            return True
        except IntegrityError:  # another scheduler created it first
            return False

    def set_acquired(self, holder: str, now: datetime, *, name: str = LEASE_NAME) -> None:
        with self.store.session() as s:
            s.execute(
                update(SchedulerLeaseRow)
                .where(SchedulerLeaseRow.name == name, SchedulerLeaseRow.holder == holder)
                .values(acquired_at=_db_time(now))
                .execution_options(synchronize_session=False)
            )

    def release_lease(self, holder: str, *, name: str = LEASE_NAME) -> None:
        """Give the lease up (on a clean stop) so that a standby takes over at once."""
        from datetime import UTC

        with self.store.session() as s:
            s.execute(
                update(SchedulerLeaseRow)
                .where(SchedulerLeaseRow.name == name, SchedulerLeaseRow.holder == holder)
                .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
                .execution_options(synchronize_session=False)
            )

    def lease(self, *, name: str = LEASE_NAME) -> SchedulerLeaseRow | None:
        with self.store.session() as s:
            return s.get(SchedulerLeaseRow, name)

    # -- ticks -----------------------------------------------------------------------------
    def cursor(self, pipeline: str) -> ScheduleCursorRow | None:
        with self.store.session() as s:
            return s.get(ScheduleCursorRow, pipeline)

    def set_cursor(self, pipeline: str, cron: str, timezone: str, until: datetime) -> None:
        """Move the evaluated-until mark of ``pipeline`` forward (never back)."""
        until = _db_time(until)
        try:
            with self.store.session() as s:
                row = s.get(ScheduleCursorRow, pipeline)
                if row is None:
                    s.add(
                        ScheduleCursorRow(
                            pipeline=pipeline, cron=cron, timezone=timezone, evaluated_until=until
                        )
                    )
                    return
                row.cron, row.timezone = cron, timezone
                current = MetadataStore.as_utc(row.evaluated_until)
                if current is None or current < until:
                    row.evaluated_until = until
        except IntegrityError:  # created concurrently; the other value is as good
            return

    def fire_tick(
        self,
        pipeline: str,
        scheduled_for: datetime,
        *,
        holder: str,
        now: datetime,
        pipeline_file: str | None,
    ) -> int | None:
        """Record the tick and queue its run in one transaction; the request id, or None
        when the tick was already recorded (by this or another scheduler)."""
        try:
            with self.store.session() as s:
                request = RunRequestRow(
                    pipeline=pipeline,
                    pipeline_file=pipeline_file,
                    reason="schedule",
                    status="queued",
                    queued_at=_db_time(now),
                    scheduled_for=_db_time(scheduled_for),
                    details={"scheduled_for": scheduled_for.isoformat()},
                )
                s.add(request)
                s.flush()
                s.add(
                    ScheduleTickRow(
                        pipeline=pipeline,
                        scheduled_for=_db_time(scheduled_for),
                        status="fired",
                        holder=holder,
                        fired_at=_db_time(now),
                        request_id=request.id,
                    )
                )
                s.flush()
                return request.id
        except IntegrityError:
            return None

    def ticks(self, pipeline: str | None = None, *, limit: int = 1000) -> list[ScheduleTickRow]:
        """Recorded ticks, oldest first."""
        with self.store.session() as s:
            query = select(ScheduleTickRow).order_by(ScheduleTickRow.scheduled_for)
            if pipeline:
                query = query.where(ScheduleTickRow.pipeline == pipeline)
            return list(s.scalars(query.limit(limit)))

    # -- run queue -------------------------------------------------------------------------
    def enqueue(
        self,
        pipeline: str,
        *,
        reason: str,
        pipeline_file: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        with self.store.session() as s:
            row = RunRequestRow(
                pipeline=pipeline,
                pipeline_file=pipeline_file,
                reason=reason,
                status="queued",
                queued_at=utcnow(),
                details=details or {},
            )
            s.add(row)
            s.flush()
            return row.id

    def enqueue_triggered(
        self,
        pipeline: str,
        *,
        pipeline_file: str | None,
        run_id: str,
        from_pipeline: str,
        datasets: dict[str, int],
        chain: list[str],
    ) -> tuple[int, bool]:
        """Queue a dataset-triggered run, or fold the new versions into one still waiting.

        A burst of commits to a watched dataset thus runs the pipeline once more, not
        once per commit. Returns the request id and whether it was folded in. The fold is
        a conditional update on ``status = 'queued'``: a request claimed meanwhile is left
        alone and a new one is queued, so no commit is ever missed.
        """
        waiting = self.requests(status="queued", pipeline=pipeline)
        for row in reversed(waiting):
            if row.reason != "dataset":
                continue
            details = dict(row.details or {})
            merged = dict(details.get("datasets") or {})
            for name, version in datasets.items():
                merged[name] = max(int(merged.get(name, version)), version)
            runs = [*(details.get("run_ids") or [details.get("run_id")]), run_id]
            details.update(
                datasets=merged,
                run_id=run_id,
                run_ids=[r for r in runs if r],
                pipeline=from_pipeline,
            )
            with self.store.session() as s:
                result = s.execute(
                    update(RunRequestRow)
                    .where(RunRequestRow.id == row.id, RunRequestRow.status == "queued")
                    .values(details=details)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    return row.id, True
            break
        details = {
            "run_id": run_id,
            "run_ids": [run_id],
            "pipeline": from_pipeline,
            "datasets": datasets,
            "chain": chain,
        }
        return (
            self.enqueue(pipeline, reason="dataset", pipeline_file=pipeline_file, details=details),
            False,
        )

    def requests(
        self,
        *,
        status: str | Sequence[str] | None = None,
        pipeline: str | None = None,
        limit: int = 1000,
    ) -> list[RunRequestRow]:
        """Run requests, oldest first."""
        with self.store.session() as s:
            query = select(RunRequestRow).order_by(RunRequestRow.id)
            if isinstance(status, str):
                query = query.where(RunRequestRow.status == status)
            elif status is not None:
                query = query.where(RunRequestRow.status.in_(list(status)))
            if pipeline:
                query = query.where(RunRequestRow.pipeline == pipeline)
            return list(s.scalars(query.limit(limit)))

    def running_counts(self) -> dict[str, int]:
        with self.store.session() as s:
            rows = s.execute(
                select(RunRequestRow.pipeline, func.count())
                .where(RunRequestRow.status == "running")
                .group_by(RunRequestRow.pipeline)
            )
            return {str(p): int(n) for p, n in rows}

    def claim(self, request_id: int, holder: str) -> bool:
        """Mark a queued request running for ``holder``; False if someone else did."""
        with self.store.session() as s:
            result = s.execute(
                update(RunRequestRow)
                .where(RunRequestRow.id == request_id, RunRequestRow.status == "queued")
                .values(status="running", claimed_by=holder, started_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def update_request(self, request_id: int, **fields: Any) -> None:
        with self.store.session() as s:
            row = s.get(RunRequestRow, request_id)
            if row is not None:
                for key, value in fields.items():
                    setattr(row, key, value)

    def abandon_requests(
        self, holder: str, host: str, is_alive: Callable[[int], bool]
    ) -> list[int]:
        """Settle requests left ``running`` by another scheduler; the ids failed.

        A request whose run has finished takes the run's status. One whose run is still
        going in a live process of this host (a scheduler finishing its runs after a
        SIGTERM, a deposed leader) is left to that process. Any other (its process was
        killed, or lives on a host we cannot check) is failed: it is never run twice.
        """
        failed: list[int] = []
        with self.store.session() as s:
            rows = list(
                s.scalars(
                    select(RunRequestRow).where(
                        RunRequestRow.status == "running", RunRequestRow.claimed_by != holder
                    )
                )
            )
            for row in rows:
                run = s.get(RunRow, row.run_id) if row.run_id else None
                if run is not None and run.status != "running":
                    row.status, row.error = run.status, run.error
                    row.finished_at = run.ended_at or utcnow()
                    continue
                params = (run.params or {}) if run is not None else {}
                pid = params.get("pid")
                if params.get("host") == host and isinstance(pid, int) and is_alive(pid):
                    continue
                row.status = "failed"
                row.finished_at = utcnow()
                row.error = f"scheduler {row.claimed_by} stopped before the run finished"
                failed.append(row.id)
        return failed

    # -- subscriptions -----------------------------------------------------------------------
    def add_subscription(
        self,
        dataset: str,
        url: str,
        *,
        secret_name: str | None = None,
        secret_ref: str | None = None,
        description: str | None = None,
    ) -> SubscriptionRow:
        with self.store.session() as s:
            row = SubscriptionRow(
                dataset=dataset,
                url=url,
                secret_name=secret_name,
                secret_ref=secret_ref,
                description=description,
            )
            s.add(row)
            s.flush()
            return row

    def set_subscription_secret(self, subscription_id: int, secret_name: str) -> None:
        with self.store.session() as s:
            row = s.get(SubscriptionRow, subscription_id)
            if row is not None:
                row.secret_name = secret_name

    def subscriptions(self, dataset: str | None = None) -> list[SubscriptionRow]:
        with self.store.session() as s:
            query = select(SubscriptionRow).order_by(SubscriptionRow.id)
            if dataset is not None:
                query = query.where(SubscriptionRow.dataset == dataset)
            return list(s.scalars(query))

    def get_subscription(self, subscription_id: int) -> SubscriptionRow | None:
        with self.store.session() as s:
            return s.get(SubscriptionRow, subscription_id)

    def remove_subscription(self, subscription_id: int) -> SubscriptionRow | None:
        with self.store.session() as s:
            row = s.get(SubscriptionRow, subscription_id)
            if row is not None:
                s.delete(row)
            return row

    def delete_secret(self, name: str) -> None:
        from sqlalchemy import delete

        from headwater.metadata.models import SecretRow

        with self.store.session() as s:
            s.execute(delete(SecretRow).where(SecretRow.name == name))

    # -- deliveries --------------------------------------------------------------------------
    def add_delivery(
        self, subscription_id: int, dataset: str, version: int, run_id: str | None, payload: Any
    ) -> int:
        with self.store.session() as s:
            row = WebhookDeliveryRow(
                subscription_id=subscription_id,
                dataset=dataset,
                version=version,
                run_id=run_id,
                status="pending",
                attempts=0,
                attempt_log=[],
                payload=payload,
            )
            s.add(row)
            s.flush()
            return row.id

    def record_attempt(
        self,
        delivery_id: int,
        *,
        status_code: int | None,
        error: str | None,
        final_status: str | None,
    ) -> None:
        with self.store.session() as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                return
            row.attempts += 1
            entry = {"at": utcnow().isoformat(), "status_code": status_code, "error": error}
            row.attempt_log = [*row.attempt_log, entry]
            if final_status is not None:
                row.status = final_status
                if final_status == "delivered":
                    row.delivered_at = utcnow()

    def stale_deliveries(self, before: datetime, *, limit: int = 20) -> list[WebhookDeliveryRow]:
        """Deliveries still ``pending`` that nobody touched since ``before`` (their sender
        died between attempts)."""
        with self.store.session() as s:
            rows = s.scalars(
                select(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.status == "pending",
                    WebhookDeliveryRow.created_at < _db_time(before),
                )
                .order_by(WebhookDeliveryRow.id)
                .limit(limit * 5)
            )
            out = []
            for row in rows:
                log = row.attempt_log or []
                last = datetime.fromisoformat(log[-1]["at"]) if log else None
                if last is None or last < before:
                    out.append(row)
            return out[:limit]

    def deliveries(
        self, *, subscription_id: int | None = None, status: str | None = None
    ) -> list[WebhookDeliveryRow]:
        with self.store.session() as s:
            query = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)
            if subscription_id is not None:
                query = query.where(WebhookDeliveryRow.subscription_id == subscription_id)
            if status is not None:
                query = query.where(WebhookDeliveryRow.status == status)
            return list(s.scalars(query))
