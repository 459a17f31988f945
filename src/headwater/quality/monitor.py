"""After a run: metrics, anomalies, scores and alerts for what the run touched.

:class:`RunMonitor` is built before a run (so a broken ``quality:`` or ``alerts:`` section fails
before any data moves) and :meth:`RunMonitor.after_run` is called with the finished run. For
every dataset a succeeded step wrote it measures the metrics (one query), judges each metric
against its history (anomalies become ``warn`` check results), records the metrics and the
score, then turns check results, anomalies, freshness and the run status into alert signals.

Problems here never change the run's outcome: they are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from headwater.errors import HeadwaterError
from headwater.metadata.models import CheckResultRow
from headwater.quality.alerts import AlertOutcome, Alerts, Signal
from headwater.quality.anomaly import Assessment, assess, describe_metric, format_value
from headwater.quality.metrics import Measurement, measure_relation, metric_history, record_metrics
from headwater.quality.score import QualityScore, compute_score, latest_check_results, record_score
from headwater.quality.settings import QualitySettings, parse_quality

if TYPE_CHECKING:
    from headwater.pipelines.events import RunResult
    from headwater.workspace import Workspace

__all__ = [
    "DatasetQuality",
    "QualityReport",
    "RunMonitor",
    "RunQuality",
    "measure_dataset",
    "quality_report",
    "relation_of",
]

log = logging.getLogger("headwater.quality")


def relation_of(name: str) -> str:
    zone, _, table = name.partition(".")
    return '"' + zone.replace('"', '""') + '"."' + table.replace('"', '""') + '"'


@dataclass
class DatasetQuality:
    dataset: str
    measurement: Measurement
    assessments: list[Assessment]
    score: QualityScore

    @property
    def anomalies(self) -> list[Assessment]:
        return [a for a in self.assessments if a.anomalous]


@dataclass
class RunQuality:
    run_id: str
    datasets: dict[str, DatasetQuality] = field(default_factory=dict)
    alerts: list[AlertOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_dataset(ws: Workspace, name: str, *, now: datetime, column: str | None) -> Measurement:
    history = ws.lake.history(name)
    last_commit = history[0].timestamp if history else None
    with ws.session() as session:
        session.attach(name)
        return measure_relation(
            session,
            relation_of(name),
            dataset=name,
            now=now,
            last_commit=last_commit,
            freshness_column=column,
        )


class RunMonitor:
    """Quality bookkeeping and alerting for one run of one workspace."""

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Callable[[], datetime] | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.ws = ws
        self.clock = clock or (lambda: datetime.now(UTC))
        self.quality: QualitySettings = parse_quality(ws.settings.quality)
        self.alerts = alerts or Alerts(ws.store, ws.settings.alerts, workspace=ws.settings.name)

    def written(self, result: RunResult) -> list[str]:
        known = set(self.ws.lake.list())
        names: list[str] = []
        for step in result.steps:
            if step.status != "succeeded":
                continue
            for out in step.outputs:
                if out in known and not out.endswith("__quarantine") and out not in names:
                    names.append(out)
        return names

    def after_run(self, result: RunResult, *, now: datetime | None = None) -> RunQuality:
        at = (now or self.clock()).astimezone(UTC)
        report = RunQuality(result.run_id)
        signals: list[Signal] = []
        if self.quality.enabled:
            for name in self.written(result):
                try:
                    dq = self.observe_dataset(name, at=at, run_id=result.run_id)
                except HeadwaterError as exc:
                    log.warning("quality metrics of %s failed: %s", name, exc.message)
                    report.errors.append(f"{name}: {exc.message}")
                    continue
                except Exception as exc:  # the run is over: report, do not fail it
                    log.warning("quality metrics of %s failed", name, exc_info=True)
                    report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                report.datasets[name] = dq
                signals += self._dataset_signals(dq, result)
        signals += self._check_signals(result)
        signals.append(
            Signal(
                kind="run_failure",
                subject=result.pipeline,
                firing=not result.ok,
                summary=(
                    f"run {result.run_id} of pipeline `{result.pipeline}` {result.status}"
                    + (f": {result.error}" if result.error else "")
                ),
                pipeline=result.pipeline,
                run_id=result.run_id,
            )
        )
        if self.alerts.enabled:
            try:
                report.alerts = self.alerts.process(signals, now=at)
            except Exception as exc:  # e.g. the metadata store went away after the run
                log.warning("alerts of run %s failed", result.run_id, exc_info=True)
                report.errors.append(f"alerts: {type(exc).__name__}: {exc}")
            for outcome in report.alerts:
                for delivery in outcome.deliveries:
                    if not delivery.ok:
                        log.warning(
                            "alert %s via %s failed after %d attempt(s): %s",
                            outcome.rule,
                            delivery.channel,
                            delivery.attempts,
                            delivery.error,
                        )
        return report

    def check_freshness(self, *, now: datetime | None = None) -> list[AlertOutcome]:
        """Judge the freshness of every dataset with a ``quality.freshness`` expectation now,
        between runs (a dataset goes stale precisely when nothing writes it), and alert."""
        at = (now or self.clock()).astimezone(UTC)
        signals: list[Signal] = []
        for name in self.ws.lake.list():
            fresh = self.quality.freshness_for(name)
            if fresh is None or name.endswith("__quarantine"):
                continue
            measurement = measure_dataset(self.ws, name, now=at, column=fresh.column)
            signal = _freshness_signal(name, measurement, fresh.max_age, None, None)
            if signal is not None:
                signals.append(signal)
        return self.alerts.process(signals, now=at) if self.alerts.enabled else []

    def observe_dataset(self, name: str, *, at: datetime, run_id: str | None) -> DatasetQuality:
        """Measure ``name`` now, judge the metrics, record metrics, anomalies and score."""
        fresh = self.quality.freshness_for(name)
        measurement = measure_dataset(self.ws, name, now=at, column=fresh.column if fresh else None)
        assessments: list[Assessment] = []
        if self.quality.anomaly.enabled:
            cfg = self.quality.anomaly.settings()
            history = metric_history(
                self.ws.store, name, since=at - timedelta(days=cfg.window_days), before=at
            )
            for metric, value in measurement.values.items():
                if value is None:
                    continue
                points = [(p.measured_at, p.value) for p in history.get(metric, [])]
                found = assess(metric, value, at, [(t, v) for t, v in points if v is not None], cfg)
                if found is not None:
                    assessments.append(found)
        version = self.ws.lake.version(name)
        record_metrics(self.ws.store, measurement, run_id=run_id, version=version)
        anomalies = [a for a in assessments if a.anomalous]
        if anomalies:
            self.ws.store.add_check_results(
                [
                    CheckResultRow(
                        run_id=run_id,
                        step=None,
                        dataset=name,
                        check=f"anomaly:{a.metric}",
                        kind="anomaly",
                        column=a.metric.partition(":")[2] or None,
                        severity="warn",
                        passed=False,
                        rows_checked=measurement.row_count,
                        rows_failed=0,
                        message=a.message,
                        created_at=at,
                    )
                    for a in anomalies
                ]
            )
        score = compute_score(
            name,
            null_rates=measurement.null_rates,
            checks=latest_check_results(self.ws.store, name),
            freshness_seconds=measurement.values.get("freshness_seconds"),
            max_age_seconds=fresh.max_age if fresh else None,
            measured_at=at,
            run_id=run_id,
        )
        record_score(self.ws.store, score)
        return DatasetQuality(name, measurement, assessments, score)

    def _dataset_signals(self, dq: DatasetQuality, result: RunResult) -> list[Signal]:
        signals = [
            Signal(
                kind="anomaly",
                subject=f"{dq.dataset}/{a.metric}",
                firing=a.anomalous,
                summary=f"{dq.dataset}: {a.message}",
                dataset=dq.dataset,
                pipeline=result.pipeline,
                run_id=result.run_id,
            )
            for a in dq.assessments
        ]
        fresh = self.quality.freshness_for(dq.dataset)
        if fresh is not None:
            signal = _freshness_signal(
                dq.dataset, dq.measurement, fresh.max_age, result.pipeline, result.run_id
            )
            if signal is not None:
                signals.append(signal)
        return signals

    def _check_signals(self, result: RunResult) -> list[Signal]:
        return [
            Signal(
                kind="check_failure",
                subject=f"{row.dataset}/{row.check}",
                firing=not row.passed,
                summary=f"check `{row.check}` on {row.dataset}: {row.message or 'failed'}",
                dataset=row.dataset,
                pipeline=result.pipeline,
                run_id=result.run_id,
                severity=row.severity,
            )
            for row in self.ws.store.check_results(run_id=result.run_id)
            if row.kind != "anomaly"
        ]


def _freshness_signal(
    dataset: str,
    measurement: Measurement,
    max_age: float,
    pipeline: str | None,
    run_id: str | None,
) -> Signal | None:
    age = measurement.values.get("freshness_seconds")
    if age is None:
        return None
    late = age > max_age
    metric = "freshness_seconds"
    return Signal(
        kind="freshness",
        subject=dataset,
        firing=late,
        summary=(
            f"{dataset}: {describe_metric(metric)} is {format_value(metric, age)}, "
            f"{'over' if late else 'within'} the allowed {format_value(metric, max_age)}"
        ),
        dataset=dataset,
        pipeline=pipeline,
        run_id=run_id,
    )


@dataclass
class QualityReport:
    """A dataset's score history (oldest first) and its latest anomaly warnings."""

    dataset: str
    scores: list[QualityScore]
    anomalies: list[CheckResultRow]


def quality_report(
    ws: Workspace,
    name: str,
    *,
    measure: bool = False,
    limit: int = 30,
    now: datetime | None = None,
) -> QualityReport:
    """The score history of ``name``; measured now first when asked or when never scored."""
    from sqlalchemy import select

    from headwater.errors import DatasetNotFoundError, choices_hint
    from headwater.quality.score import score_history

    if not ws.lake.exists(name):
        raise DatasetNotFoundError(
            f"no dataset named `{name}`",
            dataset=name,
            hint=choices_hint(name, ws.lake.list(), "datasets"),
        )
    scores = score_history(ws.store, name, limit=limit)
    if measure or not scores:
        at = (now or datetime.now(UTC)).astimezone(UTC)
        RunMonitor(ws).observe_dataset(name, at=at, run_id=None)
        scores = score_history(ws.store, name, limit=limit)
    with ws.store.session() as s:
        anomalies = list(
            s.scalars(
                select(CheckResultRow)
                .where(CheckResultRow.dataset == name, CheckResultRow.kind == "anomaly")
                .order_by(CheckResultRow.id.desc())
                .limit(10)
            )
        )
    return QualityReport(name, scores, anomalies)
