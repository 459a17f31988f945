"""Profiling: `headwater profile` against DuckDB's SUMMARIZE on the same Delta dataset.

    python bench/profile.py --rows 1000000
    python bench/profile.py --rows 10M --repeat 3 --json bench/profile.json

The orders data (id, customer_id, ts, amount, country, email: the shape of bench/file_ingest.py)
is generated once per row count by DuckDB and written with Headwater into the dataset
`raw.orders` of a workspace under --data-dir. Every measurement runs in a fresh process:

* headwater `profile`: ``Workspace.profile("raw.orders")``: one aggregate pass computing every
  statistic (histogram bounds from the Delta log's file statistics, patterns and top values on a
  sample), stored in metadata;
* headwater `profile, no histograms`: the same with ``histograms=False``;
* duckdb `SUMMARIZE`: DuckDB's own one-query summary (min, max, approx_unique, avg, std, q25,
  q50, q75, count, null_percentage) over the same Parquet files of the Delta table.

SUMMARIZE computes less (no top values, histograms, string lengths or patterns), so it is the
floor to compare against, not an equal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ChildOutcome,
    Measurement,
    Stopwatch,
    base_parser,
    child_main,
    console,
    is_child_invocation,
    measure,
    median_of,
    print_ratios,
    print_results,
    tool_list,
    write_json,
)

SCRIPT = Path(__file__).resolve()
DEFAULT_DATA_DIR = SCRIPT.parent / "data"
DEFAULT_ROWS = 10_000_000
TOOLS = ("headwater", "duckdb")
DATA_VERSION = 1

# the orders shape of bench/file_ingest.py
GENERATE_SQL = """
SELECT
    i + 1 AS id,
    (i * 2654435761) % 1000003 + 1 AS customer_id,
    TIMESTAMP '2024-01-01 00:00:00' + to_milliseconds(i * 3000 + (i * 7919) % 3000) AS ts,
    round(((i * 48271) % 250000) / 100.0 + 1, 2) AS amount,
    ['US', 'DE', 'GB', 'FR', 'NL', 'ES', 'IT', 'CA', 'AU', 'JP'][(i * 40503) % 10 + 1] AS country,
    'customer_' || lpad(((i * 2654435761) % 1000003 + 1)::VARCHAR, 7, '0') || '@'
        || ['mail.example.com', 'shop.example.org', 'customers.example.net'][(i * 69069) % 3 + 1]
        AS email
FROM range({rows}) AS t(i)
"""

OPS = (
    ("headwater", "profile", "headwater_profile"),
    ("headwater", "profile, no histograms", "headwater_profile_no_histograms"),
    ("duckdb", "SUMMARIZE", "duckdb_summarize"),
)


def ensure_workspace(data_dir: Path, rows: int) -> Path:
    """A workspace holding raw.orders with ``rows`` rows, built on first use."""
    from headwater import Workspace

    root = data_dir / f"profile_{rows}"
    marker = root / "complete.json"
    expected = {"rows": rows, "version": DATA_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == expected:
        return root
    import shutil

    import duckdb

    shutil.rmtree(root, ignore_errors=True)
    console.print(f"generating {rows:,} rows into {root} ...")
    started = time.perf_counter()
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    reader = con.sql(GENERATE_SQL.format(rows=int(rows))).to_arrow_reader(1_000_000)
    with Workspace.init(root) as ws:
        ws.write("raw.orders", reader, mode="overwrite")
    con.close()
    marker.write_text(json.dumps(expected))
    console.print(f"generated in {time.perf_counter() - started:.1f} s")
    return root


def _profile(task: dict[str, Any], histograms: bool) -> ChildOutcome:
    import duckdb  # noqa: F401 - imports are set-up, not work (as for the DuckDB child)

    import headwater.quality.monitor
    import headwater.quality.profile  # noqa: F401
    from headwater import Workspace

    with Workspace.open(task["workspace"]) as ws:
        ws.lake.version("raw.orders")  # the Delta library's first load, also set-up
        with Stopwatch() as timed:
            profile = ws.profile("raw.orders", histograms=histograms)
    problems = []
    if len(profile.columns) != 6:
        problems.append(f"{len(profile.columns)} columns profiled, expected 6")
    amount = profile.column("amount")
    if amount.mean is None or not amount.quantiles:
        problems.append("amount has no mean or quantiles")
    if profile.column("email").pattern != "email":
        problems.append("email pattern not inferred")
    if histograms and sum(amount.histogram.get("counts", [])) != profile.rows:
        problems.append("amount histogram does not hold every row")
    if histograms and profile.passes != 1:
        problems.append(f"{profile.passes} passes over the data, expected 1")
    if [v for v, _ in profile.column("country").top_values][:1] == []:
        problems.append("country has no top values")
    return timed.outcome(profile.rows, "; ".join(problems) or None)


def headwater_profile(task: dict[str, Any]) -> ChildOutcome:
    return _profile(task, histograms=True)


def headwater_profile_no_histograms(task: dict[str, Any]) -> ChildOutcome:
    return _profile(task, histograms=False)


def duckdb_summarize(task: dict[str, Any]) -> ChildOutcome:
    import duckdb
    from deltalake import DeltaTable

    files = DeltaTable(str(Path(task["workspace"]) / "lake" / "raw" / "orders")).file_uris()
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    with Stopwatch() as timed:
        rows = con.execute(f"SUMMARIZE SELECT * FROM read_parquet([{listed}])").fetchall()
    counts = {int(r[-2]) for r in rows}  # the `count` column: rows of the relation
    problem = None if len(rows) == 6 and len(counts) == 1 else f"unexpected summary {rows!r}"
    return timed.outcome(counts.pop() if len(counts) == 1 else -1, problem)


CHILD_OPERATIONS = {
    "headwater_profile": headwater_profile,
    "headwater_profile_no_histograms": headwater_profile_no_histograms,
    "duckdb_summarize": duckdb_summarize,
}


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0], DEFAULT_ROWS)
    parser.add_argument(
        "--tools",
        type=tool_list(TOOLS),
        default=list(TOOLS),
        help=f"comma-separated tools to run (default {','.join(TOOLS)})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the generated workspace is cached (default bench/data, git-ignored)",
    )
    args = parser.parse_args()
    root = ensure_workspace(args.data_dir.resolve(), args.rows)
    console.print(
        f"input: raw.orders, {args.rows:,} rows x 6 columns in {root}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}"
    )
    ops = [op for op in OPS if op[0] in args.tools]
    runs: dict[tuple[str, str, str], list[Measurement]] = {op: [] for op in ops}
    for repeat in range(args.repeat):
        for op in ops:  # interleaved round by round, so drift hits every tool alike
            tool, operation, child = op
            if any(m.error for m in runs[op]):
                continue
            label = f"[{repeat + 1}/{args.repeat}] {tool}: {operation}"
            with console.status(label):
                m = measure(
                    SCRIPT,
                    tool=tool,
                    operation=operation,
                    child=child,
                    rows=args.rows,
                    group="orders",
                    task={"workspace": str(root), "rows": args.rows},
                )
            outcome = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"{label}: {outcome}")
            runs[op].append(m)
    results = [median_of(r) for r in runs.values() if r]
    console.print()
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"Profiling, {args.rows:,} rows x 6 columns{suffix}")
    print_ratios(results, subject="headwater", peers=("duckdb",))
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
