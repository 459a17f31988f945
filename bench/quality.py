"""Quality checks: the same 10 checks over the synthetic orders, by Headwater and its peers.

    python bench/quality.py --rows 10M --repeat 3 --json bench/quality.json

The orders (id, customer_id, ts, amount, country, email; the shape of bench/file_ingest.py) get
deterministic defects in about 1% of rows: NULL customer ids, negative amounts, bad e-mails,
unknown countries, duplicated ids. The checks: not_null on the 6 columns, unique id, amount
between 0 and 100000, e-mail regex, country in an accepted list.

* headwater: a `check` step run by `ws.run()` on the managed dataset: every count, the failing
  rows quarantined (rule, reason, run id, load id), the dataset rewritten without them, samples
  stored with each result;
* duckdb: one hand-written SQL query over the Parquet file computing the 10 counts (the
  engine's limit: no quarantine, nothing written);
* great_expectations: 1.x, pandas datasource (its fastest local one), the parquet read into a
  DataFrame inside the timed block, one suite of 10 expectations;
* soda: soda-core-duckdb (SodaCL scan) over the same Parquet file through a DuckDB connection.

Great Expectations and Soda pin versions that conflict with Headwater's (pandas, duckdb), so they
run from their own virtualenv, bench/.venv-quality by default (see bench/README.md); each
measurement is a fresh process. Every tool's failure counts must agree with the SQL's.
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
    print_ratios,
    print_results,
    tool_list,
    write_json,
)

SCRIPT = Path(__file__).resolve()
DEFAULT_DATA_DIR = SCRIPT.parent / "data"
DEFAULT_PEER_PYTHON = SCRIPT.parent / ".venv-quality" / "bin" / "python"
DEFAULT_ROWS = 10_000_000
TOOLS = ("headwater", "duckdb", "great_expectations", "soda", "profile")
DATA_VERSION = 1
CHILD_ENV = {"DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}

COLUMNS = ("id", "customer_id", "ts", "amount", "country", "email")
COUNTRIES = ("US", "DE", "GB", "FR", "NL", "ES", "IT", "CA", "AU", "JP")
EMAIL_PATTERN = r"^[a-z0-9_.+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$"
AMOUNT_MIN, AMOUNT_MAX = 0, 100_000
# check name -> what fails it; every tool reports its counts under these names
CHECKS = (
    *(f"not_null_{c}" for c in COLUMNS),
    "unique_id",
    "range_amount",
    "regex_email",
    "accepted_values_country",
)

# Defects in rows i % 100 == 7, cycling over five kinds; kind 4 repeats the previous row's id.
GENERATE_SQL = """
SELECT
    CASE WHEN d = 4 THEN i ELSE i + 1 END AS id,
    CASE WHEN d = 0 THEN NULL ELSE (i * 2654435761) % 1000003 + 1 END AS customer_id,
    TIMESTAMP '2024-01-01 00:00:00' + to_milliseconds(i * 3000 + (i * 7919) % 3000) AS ts,
    CASE WHEN d = 1 THEN -5.0 ELSE round(((i * 48271) % 250000) / 100.0 + 1, 2) END AS amount,
    CASE WHEN d = 3 THEN 'XX'
         ELSE ['US', 'DE', 'GB', 'FR', 'NL', 'ES', 'IT', 'CA', 'AU', 'JP'][(i * 40503) % 10 + 1]
    END AS country,
    CASE WHEN d = 2 THEN 'not an e-mail'
         ELSE 'customer_' || lpad(((i * 2654435761) % 1000003 + 1)::VARCHAR, 7, '0') || '@'
              || ['mail.example.com', 'shop.example.org', 'customers.example.net']
                 [(i * 69069) % 3 + 1]
    END AS email
FROM (SELECT i, CASE WHEN i % 100 = 7 THEN (i // 100) % 5 ELSE -1 END AS d FROM range({rows}) t(i))
"""


@dataclass(frozen=True)
class Op:
    tool: str
    operation: str
    child: str
    peer_env: bool = False  # runs in the peers' virtualenv


OPS = (
    Op("headwater", "10 checks + quarantine", "headwater_checks"),
    Op("headwater", "10 checks, warn (count only)", "headwater_checks_warn"),
    Op("duckdb", "10 checks, one SQL query", "duckdb_checks"),
    Op("great_expectations", "10 expectations (pandas)", "gx_checks", peer_env=True),
    Op("soda", "10 checks (duckdb)", "soda_checks", peer_env=True),
    Op("profile", "headwater profile", "headwater_profile"),
)


def sql_literal(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def connect_duckdb() -> Any:
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    return con


def ensure_data(data_dir: Path, rows: int) -> Path:
    folder = data_dir / f"quality_orders_{rows}"
    path = folder / "orders.parquet"
    marker = folder / "complete.json"
    expected = {"rows": rows, "version": DATA_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == expected:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"generating {rows:,} rows in {folder} ...")
    con = connect_duckdb()
    partial = path.with_name(path.name + ".partial")
    con.execute(
        f"COPY ({GENERATE_SQL.format(rows=int(rows))}) TO {sql_literal(partial)} (FORMAT parquet)"
    )
    con.close()
    os.replace(partial, path)
    marker.write_text(json.dumps(expected))
    return path


def save_counts(task: dict[str, Any], counts: dict[str, int]) -> None:
    Path(task["scratch"], "counts.json").write_text(json.dumps(counts))


# --- child: hand-written DuckDB SQL --------------------------------------------------------------


def hand_sql(relation: str) -> str:
    listed = ", ".join(f"'{c}'" for c in COUNTRIES)
    nulls = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in COLUMNS)
    return f"""
        WITH dups AS (SELECT id FROM {relation} GROUP BY id HAVING count(*) > 1)
        SELECT {nulls},
               count(*) FILTER (WHERE id IN (SELECT id FROM dups)),
               count(*) FILTER (WHERE amount < {AMOUNT_MIN} OR amount > {AMOUNT_MAX}),
               count(*) FILTER (WHERE NOT regexp_full_match(email, '{EMAIL_PATTERN}')),
               count(*) FILTER (WHERE country NOT IN ({listed})),
               count(*)
        FROM {relation}
    """


def duckdb_checks(task: dict[str, Any]) -> ChildOutcome:
    con = connect_duckdb()
    relation = f"read_parquet({sql_literal(task['input'])})"
    with Stopwatch() as timed:
        row = con.execute(hand_sql(relation)).fetchone()
    assert row is not None
    save_counts(task, dict(zip(CHECKS, map(int, row[:-1]), strict=True)))
    return timed.outcome(int(row[-1]))


# --- child: headwater ---------------------------------------------------------------------------

PIPELINE_YAML = f"""\
name: bench_quality
steps:
  - name: check_orders
    type: check
    dataset: raw.orders
    checks:
      - {{type: not_null, column: id}}
      - {{type: not_null, column: customer_id}}
      - {{type: not_null, column: ts}}
      - {{type: not_null, column: amount}}
      - {{type: not_null, column: country}}
      - {{type: not_null, column: email}}
      - {{type: unique, column: id}}
      - {{type: range, column: amount, min: {AMOUNT_MIN}, max: {AMOUNT_MAX}}}
      - {{type: regex, column: email, pattern: '{EMAIL_PATTERN}'}}
      - {{type: accepted_values, column: country, values: [{", ".join(COUNTRIES)}]}}
"""


def _headwater_workspace(task: dict[str, Any]) -> Any:
    """A workspace holding raw.orders (loaded from the Parquet file; not timed)."""
    try:
        import pyarrow.parquet as pq

        from headwater import Workspace
    except ImportError as exc:
        raise ToolUnavailable(f"headwater is not importable ({exc})") from exc
    root = Path(task["scratch"]) / "workspace"
    ws = Workspace.init(str(root))
    ws.lake.write("raw.orders", pq.ParquetFile(task["input"]).iter_batches(), mode="overwrite")
    return ws


def headwater_checks(task: dict[str, Any], *, warn: bool = False) -> ChildOutcome:
    from headwater.quality.quarantine import quarantine_name

    ws = _headwater_workspace(task)
    path = Path(task["scratch"]) / "workspace" / "pipelines" / "bench_quality.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = PIPELINE_YAML.replace("}\n", ", severity: warn}\n") if warn else PIPELINE_YAML
    path.write_text(text)
    # imports are setup, as for the peers (their imports and contexts are not timed either)
    import headwater.pipelines.check_step
    import headwater.pipelines.loader
    import headwater.pipelines.runner  # noqa: F401

    with Stopwatch() as timed:
        result = ws.run(str(path))
    if not result.ok:
        raise RuntimeError(f"headwater run failed: {result.error}")
    step = result.steps[0]
    counts = {c["name"]: int(c["rows_failed"]) for c in step.details["checks"]}
    save_counts(task, counts)
    kept = int(ws.lake.dataset("raw.orders").count_rows())
    qname = quarantine_name("raw.orders")
    quarantined = int(ws.lake.dataset(qname).count_rows()) if ws.lake.exists(qname) else 0
    problem = None
    if kept + quarantined != step.rows_in or quarantined != step.rows_quarantined:
        problem = (
            f"counts do not reconcile: {kept} kept + {quarantined} quarantined != {step.rows_in}"
        )
    ws.close()
    return timed.outcome(step.rows_in, problem)


def headwater_checks_warn(task: dict[str, Any]) -> ChildOutcome:
    """The same checks with `severity: warn`: counted and sampled, nothing moved."""
    return headwater_checks(task, warn=True)


def headwater_profile(task: dict[str, Any]) -> ChildOutcome:
    # HOOK: `headwater profile` is built on another branch. When `Workspace.profile(dataset)`
    # exists this measures profiling the 10M rows; until then the row reads "not available".
    ws = _headwater_workspace(task)
    profile = getattr(ws, "profile", None)
    if profile is None:
        raise ToolUnavailable("headwater profile is not built yet (Workspace.profile missing)")
    with Stopwatch() as timed:
        profile("raw.orders")
    ws.close()
    return timed.outcome(task["rows"])


# --- child: great expectations ------------------------------------------------------------------


def gx_checks(task: dict[str, Any]) -> ChildOutcome:
    try:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        import pandas as pd
    except ImportError as exc:
        raise ToolUnavailable(
            f"great_expectations is not installed ({exc}); see bench/README.md"
        ) from exc
    context = gx.get_context(mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("orders")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="orders"))
    names: list[str] = []
    for column in COLUMNS:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
        names.append(f"not_null_{column}")
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="amount", min_value=AMOUNT_MIN, max_value=AMOUNT_MAX
        )
    )
    suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(column="country", value_set=list(COUNTRIES))
    )
    names += ["unique_id", "range_amount", "regex_email", "accepted_values_country"]
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_definition, suite=suite, name="orders")
    )
    with Stopwatch() as timed:
        frame = pd.read_parquet(task["input"])
        result = validation.run(
            batch_parameters={"dataframe": frame}, result_format={"result_format": "BASIC"}
        )
    counts = {}
    by_type = {}
    for r in result.results:
        config = r.expectation_config
        by_type[(config.type, config.kwargs.get("column"))] = int(
            r.result.get("unexpected_count") or 0
        )
    for column in COLUMNS:
        counts[f"not_null_{column}"] = by_type[("expect_column_values_to_not_be_null", column)]
    counts["unique_id"] = by_type[("expect_column_values_to_be_unique", "id")]
    counts["range_amount"] = by_type[("expect_column_values_to_be_between", "amount")]
    counts["regex_email"] = by_type[("expect_column_values_to_match_regex", "email")]
    counts["accepted_values_country"] = by_type[("expect_column_values_to_be_in_set", "country")]
    save_counts(task, counts)
    return timed.outcome(len(frame))


# --- child: soda --------------------------------------------------------------------------------


def soda_checks(task: dict[str, Any]) -> ChildOutcome:
    try:
        import duckdb
        from soda.scan import Scan
    except ImportError as exc:
        raise ToolUnavailable(
            f"soda-core-duckdb is not installed ({exc}); see bench/README.md"
        ) from exc
    con = duckdb.connect()
    con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet({sql_literal(task['input'])})")
    listed = ", ".join(COUNTRIES)
    checks = "\n".join(
        [
            "checks for orders:",
            "  - row_count > 0",
            *(f"  - missing_count({c}) = 0" for c in COLUMNS),
            "  - duplicate_count(id) = 0",
            "  - invalid_count(amount) = 0:",
            f"      valid min: {AMOUNT_MIN}",
            f"      valid max: {AMOUNT_MAX}",
            "  - invalid_count(email) = 0:",
            f"      valid regex: '{EMAIL_PATTERN}'",
            "  - invalid_count(country) = 0:",
            f"      valid values: [{listed}]",
        ]
    )
    scan = Scan()
    scan.set_data_source_name("bench")
    scan.add_duckdb_connection(duckdb_connection=con, data_source_name="bench")
    scan.add_sodacl_yaml_str(checks)
    with Stopwatch() as timed:
        scan.execute()
    results = scan.get_scan_results()
    values: dict[str, int] = {}
    for check in results["checks"]:
        name = check.get("name") or check.get("definition") or ""
        diagnostics = check.get("diagnostics") or {}
        values[str(name)] = int(diagnostics.get("value") or 0)
    counts: dict[str, int] = {}
    total = 0
    for name, value in values.items():
        if name.startswith("row_count"):
            total = value
        elif name.startswith("missing_count("):
            counts[f"not_null_{name.split('(')[1].split(')')[0]}"] = value
        elif name.startswith("duplicate_count(id)"):
            counts["unique_id_keys"] = value  # soda counts duplicated values, not rows
        elif name.startswith("invalid_count(amount)"):
            counts["range_amount"] = value
        elif name.startswith("invalid_count(email)"):
            counts["regex_email"] = value
        elif name.startswith("invalid_count(country)"):
            counts["accepted_values_country"] = value
    save_counts(task, counts)
    con.close()
    return timed.outcome(total)


CHILD_OPERATIONS = {
    "duckdb_checks": duckdb_checks,
    "headwater_checks": headwater_checks,
    "headwater_checks_warn": headwater_checks_warn,
    "headwater_profile": headwater_profile,
    "gx_checks": gx_checks,
    "soda_checks": soda_checks,
}


# --- parent -------------------------------------------------------------------------------------


def expected_counts(path: Path) -> dict[str, int]:
    """The counts by the hand-written SQL, plus duplicated id values (Soda's unit)."""
    con = connect_duckdb()
    relation = f"read_parquet({sql_literal(path)})"
    row = con.execute(hand_sql(relation)).fetchone()
    keys = con.execute(
        f"SELECT count(*) FROM (SELECT id FROM {relation} GROUP BY id HAVING count(*) > 1)"
    ).fetchone()
    con.close()
    assert row is not None and keys is not None
    counts = dict(zip(CHECKS, map(int, row[:-1]), strict=True))
    counts["unique_id_keys"] = int(keys[0])
    return counts


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0], DEFAULT_ROWS)
    parser.add_argument(
        "--tools",
        type=tool_list(TOOLS),
        default=list(TOOLS),
        help=f"comma-separated tools to run (default {','.join(TOOLS)})",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("HEADWATER_BENCH_PEER_PYTHON", str(DEFAULT_PEER_PYTHON)),
        help="interpreter of the virtualenv holding great_expectations and soda-core-duckdb "
        "(default bench/.venv-quality/bin/python)",
    )
    args = parser.parse_args()
    data = ensure_data(args.data_dir.resolve(), args.rows)
    expected = expected_counts(data)
    failing = sum(expected[c] for c in CHECKS)
    console.print(
        f"input: {args.rows:,} rows, {data} ({human_bytes(data.stat().st_size)}); check failures "
        f"{failing:,} ({100 * failing / args.rows:.2f}% of rows); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}"
    )
    ops = [op for tool in args.tools for op in OPS if op.tool == tool]
    scratch_root = args.data_dir.resolve() / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)
    runs: dict[Op, list[Measurement]] = {op: [] for op in ops}
    disagreements: list[str] = []
    for repeat in range(args.repeat):
        for op in ops:  # interleaved: drift on a busy machine hits every tool alike
            if any(m.error for m in runs[op]):
                continue
            scratch = Path(tempfile.mkdtemp(prefix=f"{op.child}-", dir=scratch_root))
            label = f"[{repeat + 1}/{args.repeat}] {op.tool}: {op.operation}"
            python = args.peer_python if op.peer_env else None
            if python and not Path(python).exists():
                m = Measurement(op.tool, op.operation, args.rows, None, None, None)
                m.error = f"not available: no peer virtualenv at {python} (see bench/README.md)"
            else:
                task = {"input": str(data), "rows": args.rows, "scratch": str(scratch)}
                with console.status(label):
                    m = measure(
                        SCRIPT,
                        tool=op.tool,
                        operation=op.operation,
                        child=op.child,
                        rows=args.rows,
                        task=task,
                        env=CHILD_ENV,
                        python=python,
                    )
                counts_file = scratch / "counts.json"
                if m.error is None and counts_file.exists():
                    got = json.loads(counts_file.read_text())
                    wrong = {
                        k: (v, expected.get(k)) for k, v in got.items() if expected.get(k) != v
                    }
                    if wrong:
                        m.data_error = f"failure counts differ (got, expected): {wrong}"
                        disagreements.append(f"{op.tool}: {wrong}")
            shutil.rmtree(scratch, ignore_errors=True)
            outcome = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"{label}: {outcome}" + (f" [{m.data_error}]" if m.data_error else ""))
            runs[op].append(m)
            time.sleep(0.5)
    results = [median_of(r) for r in runs.values() if r]
    console.print()
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"Quality checks, {args.rows:,} rows{suffix}")
    print_ratios(results, subject="headwater", peers=("great_expectations", "soda", "duckdb"))
    console.print("failure counts (hand-written SQL): " + json.dumps(expected))
    if args.json:
        write_json(args.json, results)
    ok = all(m.ok or (m.error or "").startswith("not available") for m in results)
    return 0 if ok and not disagreements else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
