"""`headwater profile DATASET [--version N] [--compare M]`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.cli.display import fmt_int

if TYPE_CHECKING:  # the profiler needs SQLAlchemy and DuckDB: imported when a command runs
    from headwater.quality.profile import ColumnProfile, DatasetProfile

_BARS = "▁▂▃▄▅▆▇█"


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def sparkline(counts: list[int], top: int | None = None) -> str:
    """Counts as one line of block characters (empty bins as spaces), scaled to ``top``
    (default: the largest count)."""
    top = max(counts, default=0) if top is None else top
    if top <= 0:
        return ""
    return "".join(
        " " if c == 0 else _BARS[min(len(_BARS) - 1, int(c / top * (len(_BARS) - 1) + 0.5))]
        for c in counts
    )


def _short(value: Any, width: int = 24) -> str:
    if value is None:
        return ""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(col: ColumnProfile) -> str:
    parts = []
    if col.pattern:
        parts.append(f"pattern {col.pattern} ({col.patterns[col.pattern]:.0%})")
    if col.lengths:
        parts.append(f"len {col.lengths['min']:.0f}-{col.lengths['max']:.0f}")
    if col.top_values:
        approx = "≈" if col.top_values_estimated else ""
        shown = ", ".join(
            f"{_short(v, 12)}" + (f" ({approx}{n:,})" if n is not None else "")
            for v, n in col.top_values[:3]
        )
        parts.append(f"top: {shown}")
    if col.histogram:
        parts.append(sparkline(col.histogram["counts"]))
    return (
        escape("; ".join(parts[:-1]) + ("; " if len(parts) > 1 else "") + parts[-1])
        if parts
        else ""
    )


def render_profile(p: DatasetProfile) -> Table:
    table = Table(
        title=f"{p.dataset} version {p.version}: {p.rows:,} rows, profiled in {p.seconds:.2f} s "
        f"({p.passes} pass{'es' if p.passes > 1 else ''})",
        title_justify="left",
    )
    for name in ("column", "type", "nulls", "distinct≈", "min", "max", "mean", "stddev", "p50"):
        right = name in ("nulls", "distinct≈", "mean", "stddev")
        table.add_column(name, justify="right" if right else "left")
    table.add_column("values")
    for c in p.columns:
        table.add_row(
            escape(c.name),
            escape(c.type),
            f"{c.null_rate:.1%}",
            fmt_int(c.distinct),
            escape(_short(c.min)),
            escape(_short(c.max)),
            _short(c.mean, 12),
            _short(c.stddev, 12),
            escape(_short(c.quantiles.get("p50"))),
            _summary(c),
        )
    return table


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def render_diff(old: DatasetProfile, new: DatasetProfile) -> Table:
    table = Table(
        title=f"{new.dataset}: version {old.version} ({old.rows:,} rows) -> "
        f"version {new.version} ({new.rows:,} rows)",
        title_justify="left",
    )
    for name in ("column", "change", "null rate", "distinct≈", "mean", "shift (sd)", "notes"):
        table.add_column(name, justify="right" if name == "shift (sd)" else "left")
    from headwater.quality.profile import compare_profiles

    for ch in compare_profiles(old, new):
        style = {"same": "dim", "changed": "yellow", "added": "green", "removed": "red"}[ch.change]
        table.add_row(
            escape(ch.column),
            f"[{style}]{ch.change}[/]",
            f"{_rate(ch.old_null_rate)} -> {_rate(ch.new_null_rate)}"
            if ch.change in ("same", "changed")
            else "",
            f"{fmt_int(ch.old_distinct)} -> {fmt_int(ch.new_distinct)}"
            if ch.old_distinct is not None and ch.new_distinct is not None
            else "",
            f"{_short(ch.old_mean, 10)} -> {_short(ch.new_mean, 10)}"
            if ch.old_mean is not None and ch.new_mean is not None
            else "",
            f"{ch.mean_shift:+.2f}" if ch.mean_shift is not None else "",
            escape("; ".join(ch.notes)),
        )
    return table


def profile(
    dataset: Annotated[str, typer.Argument(help="Dataset name, zone.name.")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Profile this version (default: current).")
    ] = None,
    compare: Annotated[
        int | None,
        typer.Option(
            "--compare",
            "-c",
            help="Also show what changed since version M (its stored profile, or profiled now).",
        ),
    ] = None,
    histograms: Annotated[
        bool,
        typer.Option(
            "--histograms/--no-histograms",
            help="Compute 20-bin histograms of numbers and times (costs memory on big data).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Per-column statistics of a dataset version, stored so versions can be compared.

    Type, null rate, approximate distinct count, min/max, mean, stddev, quantiles, top values,
    histogram, string lengths and inferred patterns (email, url, uuid, phone, ISO date)."""
    from headwater.quality.profile import load_profile

    with open_workspace() as ws:
        new = ws.profile(dataset, version=version, histograms=histograms)
        old = None
        if compare is not None:
            old = load_profile(ws.store, dataset, compare) or ws.profile(
                dataset, version=compare, histograms=histograms
            )
    if as_json:
        doc: dict[str, Any] = new.to_json()
        if old is not None:
            doc = {"profile": doc, "compared_with": old.to_json()}
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console.print(render_profile(new))
    if old is not None:
        console.print(render_diff(old, new))
