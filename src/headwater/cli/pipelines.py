"""`headwater init`, `headwater validate`, `headwater run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from headwater.cli._state import console, open_workspace
from headwater.cli.display import LiveRunDisplay, summary_table


def _shell_path(file: Path) -> Path:
    """A path typed in a shell means the current directory first, like any command."""
    return file.resolve() if file.is_file() else file


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("validate")(validate)
    app.command("run")(run)


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="Set a pipeline parameter: `--param region=eu` (repeatable); the text is "
        "converted to the type declared under `params:`.",
    ),
]


def cli_params(items: list[str] | None) -> dict[str, str]:
    """``--param k=v`` items as a mapping; a malformed one is a clear error."""
    from headwater.errors import ConfigError
    from headwater.pipelines.params import parse_cli_params

    try:
        return parse_cli_params(items)
    except ValueError as exc:
        raise ConfigError(
            f"`--param {exc}` is not `name=value`",
            field="param",
            hint="Write parameters as `--param region=eu`.",
        ) from None


def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the workspace in.")] = Path(
        "."
    ),
    name: Annotated[
        str | None, typer.Option(help="Workspace name (default: directory name).")
    ] = None,
) -> None:
    """Create a workspace: headwater.yaml, pipelines/, data/, lake/, .headwater/ (metadata, key)."""
    from headwater.workspace import Workspace

    with Workspace.init(directory, name=name) as ws:
        console.print(f"[green]workspace ready[/] at {ws.root}")
        console.print(
            "  next: put a pipeline in pipelines/ and run `headwater run pipelines/NAME.yaml`"
        )


def validate(
    file: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
    param: ParamOption = None,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            help="For a backfill pipeline: render it for the interval starting here "
            "(`2024-01-01`), of size --every.",
        ),
    ] = None,
    every: Annotated[str, typer.Option("--every", help="With --interval: its size.")] = "day",
) -> None:
    """Check a pipeline (YAML, fields, templates, SQL, refs, connections, cycles) without running it."""  # noqa: E501
    window = None
    if interval is not None:
        from datetime import timedelta

        from headwater.errors import ConfigError
        from headwater.pipelines.intervals import intervals, parse_point

        try:
            start = parse_point(interval)
            window = intervals(start, start + timedelta(hours=1), every)[0]
        except ValueError as exc:
            raise ConfigError(f"invalid `--interval {interval}`: {exc}", field="interval") from None
    with open_workspace() as ws:
        spec = ws.load_pipeline(_shell_path(file), params=cli_params(param), interval=window)
        plan = ws.plan(spec)
        table = Table(title=f"pipeline {plan.spec.name}: valid", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("kind")
        table.add_column("reads")
        table.add_column("writes")
        table.add_column("after")
        for i, name in enumerate(plan.order, 1):
            step = plan.step(name)
            table.add_row(
                str(i),
                name,
                step.type,
                ", ".join(plan.inputs(name)),
                ", ".join(plan.outputs(name)),
                ", ".join(sorted(plan.upstream(name))),
            )
        console.print(table)


def run(
    file: Annotated[
        Path | None,
        typer.Argument(help="Pipeline YAML file (or a name under pipelines/)."),
    ] = None,
    param: ParamOption = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Resume run RUN_ID: rerun only its failed and unfinished steps, reusing the "
            "outputs the others committed (the run's own pipeline text and parameters).",
            metavar="RUN_ID",
        ),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option("--select", "-s", help="Run only these steps (repeatable)."),
    ] = None,
    output_json: Annotated[
        bool, typer.Option("--json", help="Print the run result as JSON instead of tables.")
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            "-e",
            help="Where steps run: local (threads), process[=WORKERS], dask (a local "
            "2-worker cluster) or dask=ADDRESS. Default: the pipeline's `executor:`, else local.",
        ),
    ] = None,
) -> None:
    """Run a pipeline with a live per-step display; exit code 1 when any step fails."""
    if executor is not None:
        from headwater.pipelines.executors import parse_executor_option

        parse_executor_option(executor)  # a typo fails before the workspace opens
    from headwater.errors import ConfigError

    if resume is None and file is None:
        raise ConfigError(
            "`headwater run` needs a pipeline FILE, or `--resume RUN_ID`",
            hint="For example `headwater run pipelines/orders.yaml`.",
        )
    if resume is not None and (file is not None or param or select):
        raise ConfigError(
            "`--resume` reruns a recorded run as it was: give no FILE, --param or --select",
            hint=f"Run `headwater run --resume {resume}` alone.",
        )
    values = cli_params(param)

    def start(on_event: Any = None) -> Any:
        if resume is not None:
            return ws.resume(resume, on_event=on_event)
        assert file is not None
        return ws.run(
            _shell_path(file),
            select=select,
            params=values,
            on_event=on_event,
            executor=executor,
        )

    with open_workspace() as ws:
        if output_json:
            result = start()
            console.print_json(
                json.dumps(
                    {
                        "run_id": result.run_id,
                        "pipeline": result.pipeline,
                        "status": result.status,
                        "seconds": round(result.seconds, 3),
                        "steps": [
                            {k: v for k, v in o.__dict__.items() if k != "details"}
                            | {"details": o.details}
                            for o in result.steps
                        ],
                    },
                    default=str,
                )
            )
        else:
            with LiveRunDisplay(console) as display:
                result = start(display.handle)
            console.print(summary_table(result))
        if not result.ok:
            raise typer.Exit(1)
