"""`headwater backfill`: one run per interval, a few at a time, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from headwater.cli._state import console, open_workspace
from headwater.cli.display import _STYLE
from headwater.cli.pipelines import ParamOption, _shell_path, cli_params


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)


def backfill(
    file: Annotated[Path, typer.Argument(help="Pipeline YAML file (or a name under pipelines/).")],
    start: Annotated[
        str,
        typer.Option(
            "--from", help="Start of the first interval: `2024-01-01` or `2024-01-01T06:00`."
        ),
    ],
    end: Annotated[
        str, typer.Option("--to", help="End of the last interval (exclusive), like --from.")
    ],
    every: Annotated[
        str, typer.Option("--every", help="Interval size: hour, day, week (from Monday) or month.")
    ] = "day",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="How many intervals run at once.")
    ] = 1,
    param: ParamOption = None,
) -> None:
    """Run a pipeline once per time interval, resumably.

    Templates see `{{ interval.start }}` and `{{ interval.end }}`. Intervals that already
    succeeded in an earlier backfill with the same parameters are skipped, failed ones run
    again. Exit code 1 when any interval fails.
    """
    from headwater.pipelines.backfill import IntervalOutcome
    from headwater.pipelines.backfill import backfill as run_backfill

    def show(o: IntervalOutcome) -> None:
        width = len(str(o.total))
        run = f"run {o.run_id[:12]}" if o.run_id else ""
        note = "already succeeded" if o.status == "skipped" else f"{o.seconds:.2f}s"
        style = _STYLE.get(o.status, "")
        console.print(
            f"[{o.done:>{width}}/{o.total}] {o.interval.key}  [{style}]{o.status:<9}[/] "
            f"{run}  {note}"
        )
        if o.error:
            first = o.error.splitlines()[0]
            console.print(f"    [red]{escape(first)}[/]")

    with open_workspace() as ws:
        result = run_backfill(
            ws,
            _shell_path(file),
            start=start,
            end=end,
            every=every,
            concurrency=concurrency,
            params=cli_params(param),
            on_progress=show,
        )
    console.print(
        f"backfill of {result.pipeline}: {result.count('succeeded')} succeeded, "
        f"{result.count('skipped')} skipped (done before), {result.count('failed')} failed"
    )
    if not result.ok:
        raise typer.Exit(1)
