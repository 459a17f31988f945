"""Cold start, A/B: two ``headwater`` commands (for example the code before and after a
change), measured interleaved round by round so the load of a busy machine hits both alike.

Each round, for each variant: ``headwater init`` a fresh workspace (not timed), then time
``headwater --help`` and the workspace's first ``headwater run`` of a one-step pipeline (a real
``select 1`` transform into a Delta dataset). Wall seconds and CPU seconds (user + sys of the
child) are recorded; the table shows medians with (min-max).

    python cold_start_ab.py --before /path/to/old/headwater --after ../.venv/bin/headwater

A variant is any command that behaves like ``headwater`` (a wrapper script running
``python -m headwater`` with ``PYTHONPATH`` set to an older checkout's ``src`` works).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

PIPELINE = (
    "name: one\nsteps:\n  - {name: one, type: transform, sql: select 1 as x, to: bench.one}\n"
)


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the reference headwater command")
    parser.add_argument("--after", required=True, help="the changed headwater command")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    variants = {"before": args.before, "after": args.after}
    ops = ("--help", "run")
    seen: dict[tuple[str, str, str], list[float]] = {
        (v, op, kind): [] for v in variants for op in ops for kind in ("wall", "cpu")
    }
    for _ in range(args.repeat):
        for variant, command in variants.items():
            ws = Path(tempfile.mkdtemp(prefix="cold-ab-")) / "ws"
            subprocess.run([command, "init", str(ws)], check=True, capture_output=True)
            (ws / "pipelines" / "one.yaml").write_text(PIPELINE)
            for op in ops:
                argv = (
                    [command, "--help"]
                    if op == "--help"
                    else [command, "run", "pipelines/one.yaml"]
                )
                wall, cpu = timed(argv, ws)
                seen[(variant, op, "wall")].append(wall)
                seen[(variant, op, "cpu")].append(cpu)
    rows = []
    print("| variant | command | wall s | CPU s (user+sys) |")
    print("| --- | --- | --- | --- |")
    for variant in variants:
        for op in ops:
            cells = []
            for kind in ("wall", "cpu"):
                xs = seen[(variant, op, kind)]
                cells.append(f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})")
                rows.append(
                    {
                        "tool": f"headwater ({variant})",
                        "operation": f"{op} {kind} s",
                        "seconds": statistics.median(xs),
                        "samples": xs,
                    }
                )
            print(f"| {variant} | `headwater {op}` | {cells[0]} | {cells[1]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
