"""Mapping rules: Headwater's `map` step against the same transformation hand-written in DuckDB.

    python bench/map_rules.py --rows 1000000
    python bench/map_rules.py --rows 5M --repeat 3 --json bench/map_rules.json

Input: the orders Parquet file of file_ingest.py (id, customer_id, ts, amount, country, email),
loaded once into a managed dataset (Headwater) or read directly (DuckDB). Both sides rename a
column, cast one, derive one, filter (keeping every row, so ids 1..N can be verified), look up
the country name in a 10-row reference table with a default, and hash the e-mail with a salt;
Headwater writes a Delta dataset and records column lineage, DuckDB writes a Parquet file.
The DuckDB query is what an engineer would write by hand: the floor Headwater's compiled
query, Delta commit and bookkeeping are measured against.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
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
    print_ratios,
    print_results,
    tool_list,
    write_json,
)
from file_ingest import DEFAULT_DATA_DIR, connect_duckdb, count_and_verify, ensure_data, sql_literal

SCRIPT = Path(__file__).resolve()
TOOLS = ("headwater", "duckdb")
COUNTRIES = [
    ("US", "United States"), ("DE", "Germany"), ("GB", "United Kingdom"), ("FR", "France"),
    ("NL", "Netherlands"), ("ES", "Spain"), ("IT", "Italy"), ("CA", "Canada"), ("AU", "Australia"),
]  # fmt: skip  # JP is missing on purpose: it gets the default
SALT = "0123456789abcdef" * 4

PIPELINE = """\
name: bench_map
steps:
  - type: map
    from: raw.orders
    to: clean.orders
    rules:
      - rename: {customer_id: cust}
      - cast: {amount: "DECIMAL(12,2)"}
      - derive: {amount_cents: "CAST(amount * 100 AS BIGINT)"}
      - filter: "amount >= 0"
      - lookup: {dataset: ref.countries, on: {country: code}, columns: {name: country_name},
                 default: {country_name: unknown}}
      - mask: {email: hash}
"""

DUCKDB_SQL = """
SELECT o.id, o.customer_id AS cust, o.ts, CAST(o.amount AS DECIMAL(12,2)) AS amount, o.country,
       sha256('{salt}' || CAST(o.email AS VARCHAR)) AS email,
       CAST(CAST(o.amount AS DECIMAL(12,2)) * 100 AS BIGINT) AS amount_cents,
       coalesce(c.name, 'unknown') AS country_name
FROM read_parquet({source}) AS o
LEFT JOIN (VALUES {values}) AS c(code, name) ON o.country = c.code
WHERE CAST(o.amount AS DECIMAL(12,2)) >= 0
"""


def duckdb_map(task: dict[str, Any]) -> ChildOutcome:
    out = Path(task["scratch"]) / "clean.parquet"
    values = ", ".join(f"('{c}', '{n}')" for c, n in COUNTRIES)
    query = DUCKDB_SQL.format(salt=SALT, source=sql_literal(Path(task["input"])), values=values)
    con = connect_duckdb()
    with Stopwatch() as timed:
        con.execute(f"COPY ({query}) TO {sql_literal(out)} (FORMAT parquet)")
    outcome = timed.outcome(
        *count_and_verify(con, f"read_parquet({sql_literal(out)})", task["rows"])
    )
    con.close()
    return outcome


def headwater_map(task: dict[str, Any]) -> ChildOutcome:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from headwater import Workspace
    except ImportError as exc:
        raise ToolUnavailable(f"headwater is not importable ({exc})") from exc
    root = Path(task["scratch"]) / "workspace"
    ws = Workspace.init(root)
    # setup, not timed: the input as a managed dataset and the reference table
    ws.write("raw.orders", pq.ParquetFile(task["input"]).iter_batches(), mode="overwrite")
    codes, names = zip(*COUNTRIES, strict=True)
    ws.write("ref.countries", pa.table({"code": list(codes), "name": list(names)}))
    (root / "pipelines" / "bench_map.yaml").write_text(PIPELINE)
    # imported before the timer, as the peer's duckdb is: a once-per-process cost
    import headwater.lineage
    import headwater.pipelines.runner
    import headwater.transform.mapping  # noqa: F401

    with Stopwatch() as timed:
        result = ws.run("bench_map")
    if not result.ok:
        raise RuntimeError(f"headwater run failed: {result.error}")
    con = connect_duckdb()
    con.register("dataset", ws.lake.dataset("clean.orders"))
    outcome = timed.outcome(*count_and_verify(con, "dataset", task["rows"]))
    con.close()
    ws.close()
    return outcome


CHILD_OPERATIONS = {"duckdb_map": duckdb_map, "headwater_map": headwater_map}
OPS = (("headwater", "map rules -> Delta dataset", "headwater_map"),
       ("duckdb", "hand-written SQL -> parquet", "duckdb_map"))  # fmt: skip


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument("--tools", type=tool_list(TOOLS), default=list(TOOLS))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    _, parquet_path = ensure_data(args.data_dir.resolve(), args.rows)
    scratch_root = args.data_dir.resolve() / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)
    ops = [op for op in OPS if op[0] in args.tools]
    runs: dict[str, list[Measurement]] = {op[2]: [] for op in ops}
    for repeat in range(args.repeat):
        for tool, operation, child in ops:  # interleaved round by round
            scratch = Path(tempfile.mkdtemp(prefix=f"{child}-", dir=scratch_root))
            try:
                m = measure(
                    SCRIPT,
                    tool=tool,
                    operation=operation,
                    child=child,
                    rows=args.rows,
                    group="map",
                    task={"input": str(parquet_path), "rows": args.rows, "scratch": str(scratch)},
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            shown = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"[{repeat + 1}/{args.repeat}] {tool}: {operation}: {shown}")
            runs[child].append(m)
    results = [median_of(r) for r in runs.values() if r]
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"Mapping rules, {args.rows:,} rows{suffix}")
    print_ratios(results, subject="headwater", peers=("duckdb",))
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
