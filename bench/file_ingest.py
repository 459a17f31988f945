"""File ingest: a synthetic orders file, CSV and Parquet, loaded by Headwater, dlt and DuckDB.

    python bench/file_ingest.py --rows 1000000 --tools dlt,duckdb
    python bench/file_ingest.py --repeat 3 --json bench/file_ingest.json

The data (id, customer_id, ts, amount, country, email; about 83 bytes a row as CSV) is generated
once per row count with DuckDB and cached under --data-dir. Every measurement runs in a fresh
process; see bench/README.md for what each tool does and why the comparison is fair.
"""

from __future__ import annotations

import json
import os
import shutil
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
    human_bytes,
    is_child_invocation,
    measure,
    median_of,
    positive_int,
    print_ratios,
    print_results,
    tool_list,
    write_json,
)

SCRIPT = Path(__file__).resolve()
DEFAULT_DATA_DIR = SCRIPT.parent / "data"
DEFAULT_ROWS = 10_000_000
TOOLS = ("headwater", "dlt", "duckdb")
# Bump when the generated data changes, so cached files are rebuilt.
DATA_VERSION = 2

# Environment of every child: no telemetry or network calls from the tools under test.
CHILD_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"}

# CSV block size of dlt's Arrow reader, in MiB (--dlt-csv-block-mb). Measured on 10M rows, medians
# of 6: 64 MiB blocks loaded in 9.6 s at 1.25 GB peak RSS, pyarrow's 1 MiB default in 12.6 s at
# 0.51 GB. The peer gets its fastest setting; its memory is the price. Parquet batches keep
# pyarrow's default size, which was as fast as larger ones.
DEFAULT_DLT_CSV_BLOCK_MB = 64


@dataclass(frozen=True)
class Op:
    tool: str
    operation: str
    input: str  # "csv" or "parquet": the group that ratios compare across tools
    child: str  # key in CHILD_OPERATIONS


OPS = (
    Op("headwater", "csv -> dataset", "csv", "headwater_csv"),
    Op("headwater", "parquet -> dataset", "parquet", "headwater_parquet"),
    Op("dlt", "csv -> duckdb table", "csv", "dlt_csv"),
    Op("dlt", "parquet -> duckdb table", "parquet", "dlt_parquet"),
    Op("duckdb", "csv -> parquet", "csv", "duckdb_csv_to_parquet"),
    Op("duckdb", "parquet -> duckdb table", "parquet", "duckdb_parquet_to_table"),
)


# --- data --------------------------------------------------------------------------------------

# Deterministic integer mixing rather than random(): the same file on every machine and run.
# About 83 bytes a row as CSV (0.83 GB for 10M rows); ids are exactly 1..N, which verify_ids checks.
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


def sql_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def ensure_data(data_dir: Path, rows: int) -> tuple[Path, Path]:
    """Return (orders.csv, orders.parquet) for ``rows`` rows, generating them on first use."""
    folder = data_dir / f"orders_{rows}"
    csv_path, parquet_path = folder / "orders.csv", folder / "orders.parquet"
    marker = folder / "complete.json"
    expected = {"rows": rows, "version": DATA_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == expected:
        return csv_path, parquet_path

    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    console.print(f"generating {rows:,} rows in {folder} ...")
    started = time.perf_counter()
    query = GENERATE_SQL.format(rows=int(rows))
    con = connect_duckdb()
    try:
        for path, options in ((csv_path, "FORMAT csv, HEADER"), (parquet_path, "FORMAT parquet")):
            partial = path.with_name(path.name + ".partial")
            con.execute(f"COPY ({query}) TO {sql_literal(partial)} ({options})")
            os.replace(partial, path)
        problem = verify_ids(con, f"read_parquet({sql_literal(parquet_path)})", rows)
    finally:
        con.close()
    if problem:
        raise SystemExit(f"the generated {parquet_path} is wrong: {problem}")
    marker.write_text(json.dumps(expected))
    console.print(f"generated in {time.perf_counter() - started:.1f} s")
    return csv_path, parquet_path


def verify_ids(con: Any, relation: str, rows: int) -> str | None:
    """Check that ``relation`` holds ids 1..rows exactly once each; describe what is wrong.

    Count, bounds, sum and sum of squares are streaming aggregates (no hash table, so cheap in
    memory) and together catch dropped, duplicated or altered rows, not just a wrong count.
    """
    got = con.execute(
        f"SELECT count(*), min(id), max(id), sum(id), sum(id * id) FROM {relation}"
    ).fetchone()
    n = rows
    expected = (n, 1, n, n * (n + 1) // 2, n * (n + 1) * (2 * n + 1) // 6)
    if got is None or tuple(int(v) if v is not None else None for v in got) != expected:
        return f"ids are not exactly 1..{n}: (count, min, max, sum, sum of squares) = {got}"
    return None


def count_and_verify(con: Any, relation: str, rows: int) -> tuple[int, str | None]:
    count = con.execute(f"SELECT count(*) FROM {relation}").fetchone()
    return (count[0] if count else -1), verify_ids(con, relation, rows)


def connect_duckdb(database: Path | None = None, read_only: bool = False) -> Any:
    """A DuckDB connection that never downloads extensions or draws progress bars."""
    import duckdb

    config = {"autoinstall_known_extensions": False}
    con = duckdb.connect(str(database or ":memory:"), read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")
    return con


# --- child operations: duckdb ------------------------------------------------------------------


def duckdb_csv_to_parquet(task: dict[str, Any]) -> ChildOutcome:
    out = Path(task["scratch"]) / "orders.parquet"
    con = connect_duckdb()
    with Stopwatch() as timed:
        con.execute(
            f"COPY (SELECT * FROM read_csv({sql_literal(Path(task['input']))})) "
            f"TO {sql_literal(out)} (FORMAT parquet)"
        )
    outcome = timed.outcome(
        *count_and_verify(con, f"read_parquet({sql_literal(out)})", task["rows"])
    )
    con.close()
    return outcome


def duckdb_parquet_to_table(task: dict[str, Any]) -> ChildOutcome:
    con = connect_duckdb(Path(task["scratch"]) / "bench.duckdb")
    with Stopwatch() as timed:
        con.execute(
            f"CREATE TABLE orders AS SELECT * FROM read_parquet({sql_literal(Path(task['input']))})"
        )
        con.execute("CHECKPOINT")  # the table is in the database file, not only in the WAL
    outcome = timed.outcome(*count_and_verify(con, "orders", task["rows"]))
    con.close()
    return outcome


# --- child operations: dlt ---------------------------------------------------------------------


def dlt_ingest(task: dict[str, Any]) -> ChildOutcome:
    """dlt's Arrow path: a resource yielding Arrow record batches, into the duckdb destination."""
    try:
        import dlt
    except ImportError as exc:
        raise ToolUnavailable(f"dlt is not installed ({exc}); pip install 'dlt[duckdb]'") from exc
    import pyarrow.csv as pa_csv
    import pyarrow.dataset as pa_ds

    source, scratch = Path(task["input"]), Path(task["scratch"])
    # The file name becomes DuckDB's catalog name: keep it distinct from the dataset (schema).
    database = scratch / "dlt_destination.duckdb"

    def batches() -> Any:
        if task["format"] == "csv":
            options = pa_csv.ReadOptions(block_size=task["dlt_csv_block_mb"] * 1024 * 1024)
            yield from pa_csv.open_csv(source, read_options=options)
        else:
            yield from pa_ds.dataset(source, format="parquet").to_batches()

    pipeline = dlt.pipeline(
        pipeline_name="bench_file_ingest",
        pipelines_dir=str(scratch / "pipelines"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="ingest",
    )
    resource = dlt.resource(batches(), name="orders", write_disposition="replace")
    with Stopwatch() as timed:
        info = pipeline.run(resource)
    info.raise_on_failed_jobs()
    con = connect_duckdb(database, read_only=True)
    outcome = timed.outcome(*count_and_verify(con, "ingest.orders", task["rows"]))
    con.close()
    return outcome


# --- child operations: headwater ---------------------------------------------------------------

PIPELINE_YAML = """\
name: bench_{fmt}
steps:
  - name: extract_orders
    type: extract
    connection: bench
    stream: {stream}
    options:
      format: {fmt}
    to: raw.orders
    mode: overwrite
"""


SUCCESS_STATUSES = {"success", "succeeded", "successful", "ok", "complete", "completed", "done"}


def headwater_ingest(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: a one-step pipeline extracting the file into the managed dataset ``raw.orders``.

    This is the only function that knows Headwater's API; adjust it as the API settles.
    Relies on: ``Workspace.init(path)``, ``ws.add_connection(name, type=, config=)``,
    ``ws.run(pipeline_path) -> RunResult(status, steps)``, and the lake layout
    ``<workspace>/lake/<zone>/<name>/`` holding a Delta table.
    """
    try:
        import headwater
    except ImportError as exc:
        raise ToolUnavailable(f"the headwater package is not importable ({exc})") from exc
    workspace_cls = getattr(headwater, "Workspace", None)
    if workspace_cls is None:
        raise ToolUnavailable(
            "headwater.Workspace does not exist yet; the bench needs Workspace.init(path), "
            "add_connection() and run(pipeline_path)"
        )
    source, scratch, fmt = Path(task["input"]), Path(task["scratch"]), task["format"]

    root = scratch / "workspace"
    ws = workspace_cls.init(str(root))
    ws.add_connection("bench", type="files", config={"path": str(source.parent)})
    pipeline_path = root / "pipelines" / f"bench_{fmt}.yaml"
    pipeline_path.parent.mkdir(parents=True, exist_ok=True)
    pipeline_path.write_text(PIPELINE_YAML.format(fmt=fmt, stream=source.name))

    with Stopwatch() as timed:
        result = ws.run(str(pipeline_path))

    status = getattr(result, "status", None)
    status_text = str(getattr(status, "value", status)).rsplit(".", 1)[-1].lower()
    if status_text not in SUCCESS_STATUSES:
        raise RuntimeError(f"headwater run ended with status {status!r}: {result!r}")
    table_path = root / "lake" / "raw" / "orders"
    if not table_path.is_dir():
        raise RuntimeError(f"the run succeeded but no dataset was found at {table_path}")
    from deltalake import DeltaTable

    con = connect_duckdb()
    con.register("dataset", DeltaTable(str(table_path)).to_pyarrow_dataset())
    outcome = timed.outcome(*count_and_verify(con, "dataset", task["rows"]))
    con.close()
    return outcome


CHILD_OPERATIONS = {
    "duckdb_csv_to_parquet": duckdb_csv_to_parquet,
    "duckdb_parquet_to_table": duckdb_parquet_to_table,
    "dlt_csv": dlt_ingest,
    "dlt_parquet": dlt_ingest,
    "headwater_csv": headwater_ingest,
    "headwater_parquet": headwater_ingest,
}


# --- parent ------------------------------------------------------------------------------------


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
        help="where the generated files are cached and scratch output is written "
        "(default bench/data, git-ignored)",
    )
    parser.add_argument(
        "--dlt-csv-block-mb",
        type=positive_int,
        default=DEFAULT_DLT_CSV_BLOCK_MB,
        help="CSV block size of dlt's Arrow reader in MiB: larger is faster and uses more memory "
        f"(default {DEFAULT_DLT_CSV_BLOCK_MB}; pyarrow's own default is 1)",
    )
    args = parser.parse_args()

    csv_path, parquet_path = ensure_data(args.data_dir.resolve(), args.rows)
    console.print(
        f"input: {args.rows:,} rows; {csv_path} ({human_bytes(csv_path.stat().st_size)}), "
        f"{parquet_path.name} ({human_bytes(parquet_path.stat().st_size)}); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"Python {sys.version.split()[0]}"
    )
    inputs = {"csv": csv_path, "parquet": parquet_path}
    ops = [op for tool in args.tools for op in OPS if op.tool == tool]
    scratch_root = args.data_dir.resolve() / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)

    runs: dict[Op, list[Measurement]] = {op: [] for op in ops}
    for repeat in range(args.repeat):
        # Interleave tools within each round so drift (thermal, page cache) hits all of them.
        for op in ops:
            if any(m.error for m in runs[op]):
                continue  # failed once: do not spend more rounds on it
            scratch = Path(tempfile.mkdtemp(prefix=f"{op.child}-", dir=scratch_root))
            label = f"[{repeat + 1}/{args.repeat}] {op.tool}: {op.operation}"
            try:
                with console.status(label):
                    m = measure(
                        SCRIPT,
                        tool=op.tool,
                        operation=op.operation,
                        child=op.child,
                        rows=args.rows,
                        group=op.input,
                        task={
                            "input": str(inputs[op.input]),
                            "format": op.input,
                            "rows": args.rows,
                            "scratch": str(scratch),
                            "dlt_csv_block_mb": args.dlt_csv_block_mb,
                        },
                        env=CHILD_ENV,
                    )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            outcome = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"{label}: {outcome}")
            runs[op].append(m)

    results = [median_of(r) for r in runs.values() if r]
    console.print()
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"File ingest, {args.rows:,} rows{suffix}")
    print_ratios(results, subject="headwater", peers=("dlt", "duckdb"))
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
