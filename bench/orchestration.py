"""Orchestration overhead: Headwater's runner against Dagster on the same shapes, in one run.

    python bench/orchestration.py --rows 200 --repeat 3 --json bench/orchestration.json

(a) ``dag``: a DAG of ``--rows`` trivial steps (step i runs after steps i-1 and i//2);
(b) ``runs``: ``--runs`` (default 500) runs of a one-step pipeline, one after the other;
(c) ``cold``: a fresh ``headwater run`` of a one-step pipeline (a real ``select 1`` transform
    into a Delta dataset) against ``dagster job execute`` of a one-op job, and ``headwater
    --help`` on its own.

A trivial step does nothing: Headwater's runner is given a step function that returns an
empty outcome (its ``execute`` hook), Dagster gets an op that returns None, so what is timed is
each orchestrator's own work per step: planning the graph, recording every run and step in
its SQLite storage, and the event stream. Both sides persist: Headwater in the workspace's
metadata database and JSON logs, Dagster in a ``DagsterInstance`` on local SQLite storage
(``execute_in_process(instance=...)``, the in-process executor). For context, Headwater also
runs the same DAG with real steps (each a DuckDB ``select`` written to a Delta dataset); that
row has no Dagster counterpart.

Dagster's pins conflict with nothing here, but it pulls in ~60 packages Headwater never needs,
so it is installed into its own virtualenv, ``bench/.venv-dagster`` (created by this script on
first use, ``dagster==1.13.28``); its measurements run in that interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    ChildOutcome,
    Measurement,
    Stopwatch,
    ToolUnavailable,
    base_parser,
    child_main,
    console,
    is_child_invocation,
    measure,
    median_of,
    positive_int,
    print_ratios,
    print_results,
    write_json,
)

SCRIPT = Path(__file__).resolve()
DAGSTER_VENV = SCRIPT.parent / ".venv-dagster"
DAGSTER_VERSION = "1.13.28"
DEFAULT_STEPS = 200
DEFAULT_RUNS = 500
CHILD_ENV = {"DAGSTER_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def parents(i: int) -> list[int]:
    """The steps step ``i`` runs after: i-1 and i//2 (a DAG with fan-out and fan-in)."""
    return sorted({i - 1, i // 2} - {i}) if i > 0 else []


# --- Headwater ---------------------------------------------------------------------------------


def _dag_spec(n: int, name: str = "dag") -> dict[str, Any]:
    steps = []
    for i in range(n):
        refs = parents(i)
        if refs:
            sources = ", ".join(f"{{{{ ref('bench.s{j}') }}}} AS t{j}" for j in refs)
            sql = f"SELECT 1 AS x FROM {sources}"
        else:
            sql = "SELECT 1 AS x"
        steps.append({"name": f"s{i}", "type": "transform", "sql": sql, "to": f"bench.s{i}"})
    return {"name": name, "steps": steps}


def _workspace(scratch: str) -> Path:
    from headwater.workspace import Workspace

    root = Path(scratch) / "ws"
    Workspace.init(root).close()
    return root


def _run_trivial(ws: Any, spec: Any) -> Any:
    """What ``Workspace.run`` does, with a step function that does no work."""
    from headwater.monitoring.sink import RunEventSink
    from headwater.pipelines.events import StepOutcome
    from headwater.pipelines.runner import Runner, new_run_id
    from headwater.pipelines.steps import RunContext

    def trivial(ctx: Any, step: Any) -> StepOutcome:
        return StepOutcome(step.name, step.type, "succeeded")

    plan = ws.plan(spec)
    ctx = RunContext(
        run_id=new_run_id(),
        pipeline=spec.name,
        store=ws.store,
        lake=ws.lake,
        connections=ws.connections,
        engine=ws.settings.engine,
        emit=lambda event: None,
        temp_directory=ws.temp_directory,
    )
    with RunEventSink(ws.store, ws.root / ".headwater" / "logs") as sink:
        runner = Runner(
            ctx,
            spec,
            plan,
            max_parallel=ws.settings.runner.max_parallel,
            on_event=sink.handle,
            execute=trivial,
        )
        return runner.run()


def hw_dag(task: dict[str, Any]) -> ChildOutcome:
    from headwater.pipelines.spec import PipelineSpec
    from headwater.workspace import Workspace

    n, real = int(task["n"]), bool(task.get("real"))
    with Workspace.open(_workspace(task["scratch"])) as ws:
        with Stopwatch() as timed:
            spec = PipelineSpec.from_dict(_dag_spec(n))
            result = ws.run(spec) if real else _run_trivial(ws, spec)
        done = sum(1 for s in result.steps if s.status == "succeeded")
        stored = len(ws.get_run(result.run_id).steps)
    error = None if stored == n else f"{stored} step runs stored, expected {n}"
    return timed.outcome(done, error)


def hw_runs(task: dict[str, Any]) -> ChildOutcome:
    from headwater.pipelines.spec import PipelineSpec
    from headwater.workspace import Workspace

    n = int(task["n"])
    with Workspace.open(_workspace(task["scratch"])) as ws:
        with Stopwatch() as timed:
            ok = 0
            for _ in range(n):
                spec = PipelineSpec.from_dict(_dag_spec(1, "one"))
                ok += _run_trivial(ws, spec).ok
        stored = len(ws.runs(limit=n + 10))
    return timed.outcome(ok, None if stored == n else f"{stored} runs stored, expected {n}")


def _cold(argv: list[str], cwd: Path, env: dict[str, str], task: dict[str, Any]) -> float:
    """Wall seconds of the command, or its CPU seconds (user + sys) when ``task["cpu"]``:
    on a busy machine the CPU time is the steadier reading of start-up cost."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True, timeout=300
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu if task.get("cpu") else wall


def hw_cold_run(task: dict[str, Any]) -> ChildOutcome:
    root = _workspace(task["scratch"])
    (root / "pipelines" / "one.yaml").write_text(
        "name: one\nsteps:\n  - {name: one, type: transform, sql: select 1 as x, to: bench.one}\n"
    )
    headwater = str(Path(sys.executable).parent / "headwater")
    with Stopwatch() as timed:
        seconds = _cold([headwater, "run", "pipelines/one.yaml"], root, {}, task)
    from headwater.workspace import Workspace

    with Workspace.open(root) as ws:
        rows = ws.read("bench.one").num_rows
    return ChildOutcome(seconds, timed.peak_rss_mb, 1 if rows == 1 else 0)


def hw_cold_help(task: dict[str, Any]) -> ChildOutcome:
    headwater = str(Path(sys.executable).parent / "headwater")
    with Stopwatch() as timed:
        seconds = _cold([headwater, "--help"], Path(task["scratch"]), {}, task)
    return ChildOutcome(seconds, timed.peak_rss_mb, 1)


# --- Dagster (runs in bench/.venv-dagster) -------------------------------------------------------

DAGSTER_JOBS = '''\
"""One-op job for `dagster job execute` (written by bench/orchestration.py)."""
from dagster import job, op


@op
def one() -> int:
    return 1


@job
def one_job() -> None:
    one()
'''


def _dagster() -> Any:
    try:
        import dagster
    except ImportError as exc:
        raise ToolUnavailable(f"dagster is not importable: {exc}") from exc
    return dagster


def _dagster_instance(scratch: str) -> Any:
    dg = _dagster()
    home = Path(scratch) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(tempdir=str(home))


def _dagster_dag_job(n: int, name: str = "dag") -> Any:
    dg = _dagster()

    @dg.op(ins={"after": dg.In(dg.Nothing)})
    def trivial() -> None:
        return None

    deps: dict[Any, Any] = {}
    for i in range(n):
        node = dg.NodeInvocation("trivial", alias=f"s{i}")
        refs = parents(i)
        deps[node] = (
            {
                "after": dg.MultiDependencyDefinition(
                    [dg.DependencyDefinition(f"s{j}") for j in refs]
                )
            }
            if refs
            else {}
        )
    graph = dg.GraphDefinition(name=name, node_defs=[trivial], dependencies=deps)
    return graph.to_job()


def dg_dag(task: dict[str, Any]) -> ChildOutcome:
    n = int(task["n"])
    instance = _dagster_instance(task["scratch"])
    with Stopwatch() as timed:
        job = _dagster_dag_job(n)
        result = job.execute_in_process(instance=instance)
    done = sum(1 for e in result.all_events if e.event_type_value == "STEP_SUCCESS")
    return timed.outcome(done, None if result.success else "the Dagster run failed")


def dg_runs(task: dict[str, Any]) -> ChildOutcome:
    n = int(task["n"])
    instance = _dagster_instance(task["scratch"])
    with Stopwatch() as timed:
        ok = 0
        for _ in range(n):
            job = _dagster_dag_job(1, "one")
            ok += job.execute_in_process(instance=instance).success
    stored = len(instance.get_run_records(limit=n + 10))
    return timed.outcome(ok, None if stored == n else f"{stored} runs stored, expected {n}")


def dg_cold_run(task: dict[str, Any]) -> ChildOutcome:
    dagster = DAGSTER_VENV / "bin" / "dagster"
    if not dagster.exists():
        raise ToolUnavailable(f"{dagster} not found")
    scratch = Path(task["scratch"])
    home = scratch / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (scratch / "jobs.py").write_text(DAGSTER_JOBS)
    argv = [str(dagster), "job", "execute", "-f", "jobs.py", "-j", "one_job"]
    with Stopwatch() as timed:
        seconds = _cold(argv, scratch, {**CHILD_ENV, "DAGSTER_HOME": str(home)}, task)
    runs = list((home / "storage").glob("*")) if (home / "storage").exists() else []
    return ChildOutcome(seconds, timed.peak_rss_mb, 1, None if runs else "no run stored")


CHILD_OPERATIONS = {
    "hw_dag": hw_dag,
    "hw_runs": hw_runs,
    "hw_cold_run": hw_cold_run,
    "hw_cold_help": hw_cold_help,
    "dg_dag": dg_dag,
    "dg_runs": dg_runs,
    "dg_cold_run": dg_cold_run,
}


# --- parent ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    tool: str
    operation: str
    group: str
    child: str
    count: str  # "steps", "runs" or "one"
    python: str = "headwater"  # which interpreter runs the child
    task: tuple[tuple[str, Any], ...] = ()


OPS = (
    Op("headwater", "dag of trivial steps", "dag", "hw_dag", "steps"),
    Op("dagster", "dag of trivial ops", "dag", "dg_dag", "steps", python="dagster"),
    Op("headwater", "runs of a 1-step pipeline", "runs", "hw_runs", "runs"),
    Op("dagster", "runs of a 1-op job", "runs", "dg_runs", "runs", python="dagster"),
    Op("headwater", "cold `headwater run` (select 1)", "cold", "hw_cold_run", "one"),
    Op("dagster", "cold `dagster job execute`", "cold", "dg_cold_run", "one"),
    Op("headwater", "cold `headwater --help`", "help", "hw_cold_help", "one"),
    Op(
        "headwater",
        "CPU s of cold `headwater run`",
        "cold-cpu",
        "hw_cold_run",
        "one",
        task=(("cpu", True),),
    ),
    Op(
        "dagster",
        "CPU s of cold `dagster job execute`",
        "cold-cpu",
        "dg_cold_run",
        "one",
        task=(("cpu", True),),
    ),
    Op(
        "headwater",
        "CPU s of cold `headwater --help`",
        "help-cpu",
        "hw_cold_help",
        "one",
        task=(("cpu", True),),
    ),
    Op(
        "headwater",
        "dag of real steps (select -> Delta)",
        "dag-real",
        "hw_dag",
        "steps",
        task=(("real", True),),
    ),
)


def ensure_dagster_venv() -> Path:
    python = DAGSTER_VENV / "bin" / "python"
    if not python.exists():
        console.print(f"creating {DAGSTER_VENV} with dagster=={DAGSTER_VERSION} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(DAGSTER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"dagster=={DAGSTER_VERSION}", "rich"],
            check=True,
        )
    return python


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0], DEFAULT_STEPS)
    parser.description = (parser.description or "") + " --rows is the number of DAG steps."
    parser.add_argument(
        "--runs", type=positive_int, default=DEFAULT_RUNS, help="runs in (b) (default 500)"
    )
    parser.add_argument(
        "--runs-repeat",
        type=positive_int,
        help="rounds that include (b), the slowest part (default: --repeat); "
        "it takes part in the first K rounds, still interleaved with the rest",
    )
    parser.add_argument(
        "--skip-real", action="store_true", help="leave out the DAG of real steps (context only)"
    )
    parser.add_argument(
        "--only",
        type=lambda text: {g.strip() for g in text.split(",") if g.strip()},
        help="measure only these groups: dag, runs, cold, help, cold-cpu, help-cpu, dag-real",
    )
    args = parser.parse_args()
    dagster_python = ensure_dagster_venv()
    pythons = {"headwater": sys.executable, "dagster": str(dagster_python)}
    counts = {"steps": args.rows, "runs": args.runs, "one": 1}
    ops = [op for op in OPS if not (args.skip_real and op.group == "dag-real")]
    if args.only:
        ops = [op for op in ops if op.group in args.only]
    console.print(
        f"{args.rows} DAG steps, {args.runs} runs; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}"
    )
    scratch_root = SCRIPT.parent / "data" / "orchestration"
    scratch_root.mkdir(parents=True, exist_ok=True)
    runs: dict[Op, list[Measurement]] = {op: [] for op in ops}
    for repeat in range(args.repeat):
        for op in ops:  # interleaved: load on the machine hits every tool alike
            if any(m.error for m in runs[op]):
                continue
            if op.group == "runs" and repeat >= (args.runs_repeat or args.repeat):
                continue
            scratch = Path(tempfile.mkdtemp(prefix=f"{op.child}-", dir=scratch_root))
            n = counts[op.count]
            try:
                with console.status(f"[{repeat + 1}/{args.repeat}] {op.tool}: {op.operation}"):
                    m = measure(
                        SCRIPT,
                        tool=op.tool,
                        operation=op.operation,
                        child=op.child,
                        rows=n,
                        group=op.group,
                        task={"n": n, "scratch": str(scratch), **dict(op.task)},
                        env=CHILD_ENV,
                        python=pythons[op.python],
                    )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            runs[op].append(m)
    results = [median_of(ms) for ms in runs.values() if ms]
    print_results(results, "orchestration (rows = steps, runs or 1; medians)")
    print_ratios(results, "headwater", ["dagster"])
    for m in results:
        if m.ok and m.seconds and m.group in ("dag", "runs", "dag-real"):
            what = "step" if m.group != "runs" else "run"
            console.print(f"{m.tool} {m.operation}: {m.seconds / m.rows * 1000:.2f} ms per {what}")
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
