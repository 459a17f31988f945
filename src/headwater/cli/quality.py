"""`headwater quality DATASET`: the current quality score, its components and its history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.cli.profile import sparkline


def register(app: typer.Typer) -> None:
    app.command("quality")(quality)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def quality(
    dataset: Annotated[str, typer.Argument(help="Dataset name, zone.name.")],
    history: Annotated[int, typer.Option("--history", "-n", help="Scores shown.")] = 15,
    measure: Annotated[
        bool,
        typer.Option("--measure", help="Measure the dataset now and add a score before showing."),
    ] = False,
) -> None:
    """Quality score (0-100) of a dataset, its components, history and recent anomalies.

    Completeness, validity, consistency and timeliness are recorded after every run that
    writes the dataset; a dataset never scored is measured now."""
    from headwater.quality.score import COMPONENTS, WEIGHTS  # SQLAlchemy: only when it runs

    with open_workspace() as ws:
        report = ws.quality(dataset, measure=measure, limit=history)
    scores = report.scores
    latest = scores[-1]
    console.print(
        f"[bold]{escape(dataset)}[/]  quality score [bold]{latest.score:.1f}[/] / 100  "
        f"(measured {latest.measured_at:%Y-%m-%d %H:%M:%S} UTC)"
    )
    parts = Table(title="components", title_justify="left")
    for name in ("component", "value", "weight", "basis"):
        parts.add_column(name, justify="right" if name in ("value", "weight") else "left")
    weights = latest.details.get("weights", {})
    basis = {
        "completeness": "1 - mean null rate",
        "validity": f"{latest.details.get('checks', 0)} check(s) of the latest checked run",
        "consistency": "cross-dataset checks",
        "timeliness": "freshness within max_age",
    }
    for name in COMPONENTS:
        value = latest.components.get(name)
        weight = weights.get(name)
        parts.add_row(
            name,
            _pct(value),
            f"{weight:.2f}" if weight is not None else f"({WEIGHTS[name]:.2f}) not measured",
            basis[name] if value is not None else "",
        )
    console.print(parts)
    failed = latest.details.get("failed_checks") or []
    if failed:
        console.print("failed checks: " + escape(", ".join(failed)))
    trend = sparkline([max(1, round(s.score)) for s in scores], top=100)
    console.print(f"score trend ({len(scores)} runs, oldest first): {trend}")
    table = Table(title="history", title_justify="left")
    for name in ("measured (UTC)", "run", "score", *COMPONENTS):
        table.add_column(name, justify="left" if name in ("measured (UTC)", "run") else "right")
    for s in reversed(scores):
        table.add_row(
            f"{s.measured_at:%Y-%m-%d %H:%M:%S}",
            (s.run_id or "")[:12],
            f"{s.score:.1f}",
            *(_pct(s.components.get(c)) for c in COMPONENTS),
        )
    console.print(table)
    if report.anomalies:
        recent = Table(title="recent anomalies", title_justify="left")
        recent.add_column("when (UTC)")
        recent.add_column("run")
        recent.add_column("explanation")
        for row in report.anomalies:
            recent.add_row(
                f"{row.created_at:%Y-%m-%d %H:%M:%S}",
                (row.run_id or "")[:12],
                escape(row.message or ""),
            )
        console.print(recent)
