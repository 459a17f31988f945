"""SQLAlchemy 2 models of Headwater's metadata.

The schema is owned by the Alembic migrations in ``metadata/migrations``; these
models mirror it. Types are portable between SQLite and PostgreSQL (JSON, not
JSONB; timezone-aware timestamps stored as UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AlertDeliveryRow",
    "AlertIncidentRow",
    "Base",
    "CheckResultRow",
    "CheckSampleRow",
    "CheckpointRow",
    "ColumnLineageRow",
    "ConnectionRow",
    "DatasetProfileRow",
    "DatasetRow",
    "PipelineVersionRow",
    "QualityMetricRow",
    "QualityScoreRow",
    "RunRequestRow",
    "RunRow",
    "ScheduleCursorRow",
    "ScheduleTickRow",
    "SchedulerLeaseRow",
    "SchemaVersionRow",
    "SecretRow",
    "StepOutputRow",
    "StepRunRow",
    "SubscriptionRow",
    "WebhookDeliveryRow",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRow(Base):
    """A managed dataset (Delta table) in the lake."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    zone: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    schema_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    schema_versions: Mapped[list[SchemaVersionRow]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="SchemaVersionRow.version"
    )


class SchemaVersionRow(Base):
    """One schema of a dataset; a new row for every change."""

    __tablename__ = "schema_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # [{"name": ..., "type": <arrow type string>, "nullable": bool}, ...]
    fields: Mapped[list[Any]] = mapped_column(JSON)
    change: Mapped[str] = mapped_column(String(50))  # created | evolved | replaced
    table_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[DatasetRow] = relationship(back_populates="schema_versions")


class ConnectionRow(Base):
    """A connection added through the CLI/API (headwater.yaml ones are not copied here)."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    type: Mapped[str] = mapped_column(String(100))
    # plain settings; secret fields hold {"$secret": <SecretRow.name>} or "${ENV}" references
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SecretRow(Base):
    """A Fernet-encrypted secret value."""

    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunRow(Base):
    """One execution of a pipeline."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    pipeline_file: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(20), index=True)  # running|succeeded|failed
    trigger: Mapped[str] = mapped_column(String(50), default="manual")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    steps: Mapped[list[StepRunRow]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="StepRunRow.id"
    )


class StepRunRow(Base):
    """One step of a run."""

    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))  # pending|running|succeeded|failed|skipped
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    rows_in: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_out: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_quarantined: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    run: Mapped[RunRow] = relationship(back_populates="steps")


class CheckpointRow(Base):
    """Source state saved after the destination committed."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("pipeline", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(255))
    step: Mapped[str] = mapped_column(String(255))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CheckResultRow(Base):
    """The outcome of one quality check in one run."""

    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    step: Mapped[str | None] = mapped_column(String(255), default=None)
    dataset: Mapped[str] = mapped_column(String(255), index=True)
    check: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(50))
    column: Mapped[str | None] = mapped_column(String(255), default=None)
    severity: Mapped[str] = mapped_column(String(10))
    passed: Mapped[bool] = mapped_column()
    rows_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- scheduler ---


class SchedulerLeaseRow(Base):
    """Who is the active scheduler: renewed every few seconds, taken over once expired."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduleTickRow(Base):
    """One cron tick of one pipeline, recorded once: (pipeline, scheduled_for) is unique."""

    __tablename__ = "schedule_ticks"
    __table_args__ = (UniqueConstraint("pipeline", "scheduled_for"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # UTC
    status: Mapped[str] = mapped_column(String(20))  # fired | skipped
    reason: Mapped[str | None] = mapped_column(String(255), default=None)
    holder: Mapped[str] = mapped_column(String(255))
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request_id: Mapped[int | None] = mapped_column(Integer, default=None)


class ScheduleCursorRow(Base):
    """Up to when the schedule of a pipeline has been evaluated (for catch-up)."""

    __tablename__ = "schedule_cursors"

    pipeline: Mapped[str] = mapped_column(String(255), primary_key=True)
    cron: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(100))
    evaluated_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # UTC


class RunRequestRow(Base):
    """The run queue: a pipeline run asked for by a tick, a dataset trigger or a person."""

    __tablename__ = "run_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    pipeline_file: Mapped[str | None] = mapped_column(Text, default=None)
    reason: Mapped[str] = mapped_column(String(20))  # schedule | dataset | manual
    status: Mapped[str] = mapped_column(String(20), index=True)  # queued|running|succeeded|...
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(255), default=None)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # the triggering run, dataset and version; the chain of pipelines that led here
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SubscriptionRow(Base):
    """Notify ``url`` (a signed JSON POST) when ``dataset`` gets a new version."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(255), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret_name: Mapped[str | None] = mapped_column(String(255), default=None)
    secret_ref: Mapped[str | None] = mapped_column(String(255), default=None)  # "${ENV}"
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDeliveryRow(Base):
    """One notice to one subscriber, with every attempt made to deliver it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(Integer, index=True)
    dataset: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(20))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # [{"at": iso time, "status_code": int | None, "error": str | None}, ...]
    attempt_log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


# --- lineage ---


class ColumnLineageRow(Base):
    """One column edge a transform or map step recorded: ``src`` flows into ``dst``.

    Only the edges of the latest successful run of each (pipeline, step) are kept, so the
    graph describes the pipelines as they are now.
    """

    __tablename__ = "column_lineage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    step: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(50))  # the step type: transform | map
    src_dataset: Mapped[str] = mapped_column(String(255), index=True)
    src_column: Mapped[str] = mapped_column(String(255))
    dst_dataset: Mapped[str] = mapped_column(String(255), index=True)
    dst_column: Mapped[str] = mapped_column(String(255))
    transformation: Mapped[str] = mapped_column(String(20))  # identity | derived
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- pipeline versions ---


class PipelineVersionRow(Base):
    """The text of a pipeline as it ran, keyed by its SHA-256 (runs record the hash)."""

    __tablename__ = "pipeline_versions"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StepOutputRow(Base):
    """The version of a dataset a succeeded (or reused) step of a run left behind."""

    __tablename__ = "step_outputs"
    __table_args__ = (UniqueConstraint("run_id", "step", "dataset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(255))
    dataset: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- quality history: profiles, metrics, scores, alert incidents ---


class DatasetProfileRow(Base):
    """The profile of one dataset version (per-column statistics as JSON)."""

    __tablename__ = "dataset_profiles"
    __table_args__ = (UniqueConstraint("dataset", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QualityMetricRow(Base):
    """One metric of a dataset measured after a run (row_count, null_rate:<col>, ...)."""

    __tablename__ = "quality_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(255), index=True)
    metric: Mapped[str] = mapped_column(String(255))
    value: Mapped[float | None] = mapped_column(default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class QualityScoreRow(Base):
    """A dataset's 0-100 quality score and its components (0-1, None when not measured)."""

    __tablename__ = "quality_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(255), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    score: Mapped[float] = mapped_column()
    completeness: Mapped[float | None] = mapped_column(default=None)
    validity: Mapped[float | None] = mapped_column(default=None)
    consistency: Mapped[float | None] = mapped_column(default=None)
    timeliness: Mapped[float | None] = mapped_column(default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AlertIncidentRow(Base):
    """An alert condition of one rule on one subject, from first failure to recovery."""

    __tablename__ = "alert_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(20), index=True)  # open | resolved
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    notified: Mapped[bool] = mapped_column(default=False)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)


class AlertDeliveryRow(Base):
    """One notification sent (or attempted) to one channel."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    channel: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(20))  # opened | recovered | test
    ok: Mapped[bool] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- quality results ---


class CheckSampleRow(Base):
    """What one check result observed, and a bounded sample of the rows that failed it."""

    __tablename__ = "check_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_result_id: Mapped[int] = mapped_column(
        ForeignKey("check_results.id", ondelete="CASCADE"), index=True
    )
    observed: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    sample: Mapped[list[Any]] = mapped_column(JSON, default=list)


# --- monitoring ---
class RunEventRow(Base):
    """One event of a run (queued, started, progress, retried, finished), in order."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    type: Mapped[str] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(255), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConnectionCheckRow(Base):
    """One health check of a connection: status and latency."""

    __tablename__ = "connection_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection: Mapped[str] = mapped_column(String(255), index=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(20))  # ok | failed
    latency_ms: Mapped[float] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text, default=None)
