"""Pipeline versions and step outputs: what a run ran, and what each step left behind.

A run records the SHA-256 of its pipeline text (``runs.params["spec_hash"]``); the text
is kept once per hash in ``pipeline_versions``, so two runs of an unchanged file share
one row, and a resume runs exactly the text the interrupted run ran. ``step_outputs``
holds, per run and step, the version of every dataset the step wrote.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from headwater.metadata.models import PipelineVersionRow, RunRow, StepOutputRow

if TYPE_CHECKING:
    from headwater.metadata.store import MetadataStore

__all__ = [
    "get_pipeline_version",
    "record_pipeline_version",
    "record_step_outputs",
    "runs_by_trigger",
    "spec_hash",
    "step_outputs",
]


def spec_hash(text: str) -> str:
    """The SHA-256 (hex) of a pipeline's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_pipeline_version(
    store: MetadataStore, pipeline: str, text: str, source: str | None = None
) -> str:
    """Keep ``text`` under its hash (once) and return the hash."""
    digest = spec_hash(text)
    try:
        with store.session() as s:
            if s.get(PipelineVersionRow, digest) is None:
                s.add(PipelineVersionRow(hash=digest, pipeline=pipeline, text=text, source=source))
    except IntegrityError:  # a concurrent run of the same text recorded it first
        pass
    return digest


def get_pipeline_version(store: MetadataStore, digest: str) -> PipelineVersionRow | None:
    with store.session() as s:
        return s.get(PipelineVersionRow, digest)


def record_step_outputs(
    store: MetadataStore, run_id: str, step: str, versions: dict[str, int]
) -> None:
    with store.session() as s:
        existing = {
            row.dataset: row
            for row in s.scalars(
                select(StepOutputRow).where(
                    StepOutputRow.run_id == run_id, StepOutputRow.step == step
                )
            )
        }
        for dataset, version in versions.items():
            row = existing.get(dataset)
            if row is None:
                s.add(StepOutputRow(run_id=run_id, step=step, dataset=dataset, version=version))
            else:
                row.version = version


def step_outputs(store: MetadataStore, run_id: str) -> dict[str, dict[str, int]]:
    """``{step: {dataset: version}}`` recorded for a run."""
    out: dict[str, dict[str, int]] = {}
    with store.session() as s:
        rows = s.scalars(
            select(StepOutputRow).where(StepOutputRow.run_id == run_id).order_by(StepOutputRow.id)
        )
        for row in rows:
            out.setdefault(row.step, {})[row.dataset] = int(row.version)
    return out


def runs_by_trigger(store: MetadataStore, pipeline: str, trigger: str) -> list[RunRow]:
    """Runs of ``pipeline`` started by ``trigger``, oldest first."""
    with store.session() as s:
        return list(
            s.scalars(
                select(RunRow)
                .where(RunRow.pipeline == pipeline, RunRow.trigger == trigger)
                .order_by(RunRow.started_at)
            )
        )
