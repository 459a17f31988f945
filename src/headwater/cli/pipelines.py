"""`headwater init`, `headwater validate`, `headwater run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
) -> None:
    """Check a pipeline (YAML, fields, SQL, refs, connections, cycles) without running it."""
    with open_workspace() as ws:
        plan = ws.validate(_shell_path(file))
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
    file: Annotated[Path, typer.Argument(help="Pipeline YAML file (or a name under pipelines/).")],
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
    with open_workspace() as ws:
        if output_json:
            result = ws.run(_shell_path(file), select=select, executor=executor)
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
                result = ws.run(
                    _shell_path(file), select=select, on_event=display.handle, executor=executor
                )
            console.print(summary_table(result))
        if not result.ok:
            raise typer.Exit(1)
