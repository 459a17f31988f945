"""PostgreSQL throughput: Headwater against dlt and the raw ADBC read and COPY write.

Measures, each in a fresh process:

* ``postgres -> dataset``: Headwater (a one-step ``extract`` pipeline into ``raw.orders``), dlt
  (``sql_database`` with the connectorx or pyarrow backend into its duckdb destination) and a raw
  ADBC read into Arrow batches (the reference);
* ``dataset -> postgres`` append: Headwater (a ``load`` step, ``mode: append``) and a raw
  psycopg ``COPY ... FROM STDIN`` of the same rows (the reference).

The orders table (``id, customer_id, ts, amount, country, email``) is generated once per row count
in PostgreSQL with ``generate_series`` and kept as ``public.orders_<N>``; a Parquet snapshot of it
(read through ADBC) is the dataset the write measurements start from. See bench/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
DEFAULT_ROWS = 10_000_000
DEFAULT_PG_URL = os.environ.get(
    "HEADWATER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/headwater_bench"
)
TOOLS = ("headwater", "dlt", "adbc", "copy")
# Bump when the generated table changes, so cached tables and snapshots are rebuilt.
DATA_VERSION = 1

CHILD_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"}

DLT_BACKENDS = ("connectorx", "pyarrow")
COPY_FORMATS = ("csv", "binary")
# Measured on 1M rows (see bench/README.md): pyarrow's CSV writer feeding COPY (FORMAT csv) beat
# psycopg's binary COPY, whose rows have to pass through Python objects.
DEFAULT_COPY_FORMAT = "csv"
DEFAULT_DLT_BACKEND = "connectorx"


@dataclass(frozen=True)
class Op:
    tool: str
    operation: str
    group: str  # "read" or "append": what ratios compare across tools
    child: str  # key in CHILD_OPERATIONS


OPS = (
    Op("headwater", "postgres -> dataset", "read", "headwater_read"),
    Op("dlt", "postgres -> duckdb table", "read", "dlt_read"),
    Op("adbc", "postgres -> arrow batches", "read", "adbc_read"),
    Op("headwater", "dataset -> postgres (append)", "append", "headwater_append"),
    Op("copy", "parquet -> postgres (COPY)", "append", "copy_append"),
)


# --- data --------------------------------------------------------------------------------------

# The same deterministic arithmetic as file_ingest.py's generator, in PostgreSQL: ids are exactly
# 1..N, which verify_ids checks.
GENERATE_SQL = """
CREATE TABLE public.{table} AS
SELECT
    i + 1 AS id,
    (i * 2654435761) % 1000003 + 1 AS customer_id,
    TIMESTAMP '2024-01-01 00:00:00' + (i * 3000 + (i * 7919) % 3000) * INTERVAL '1 millisecond'
        AS ts,
    round(((i * 48271) % 250000) / 100.0 + 1, 2)::numeric(12, 2) AS amount,
    (ARRAY['US', 'DE', 'GB', 'FR', 'NL', 'ES', 'IT', 'CA', 'AU', 'JP'])[(i * 40503) % 10 + 1]
        AS country,
    'customer_' || lpad(((i * 2654435761) % 1000003 + 1)::text, 7, '0') || '@'
        || (ARRAY['mail.example.com', 'shop.example.org', 'customers.example.net'])
           [(i * 69069) % 3 + 1]
        AS email
FROM generate_series(0::bigint, {last}::bigint) AS t(i)
"""

COLUMNS = ("id", "customer_id", "ts", "amount", "country", "email")


def table_name(rows: int) -> str:
    return f"orders_{rows}"


def marker_text(rows: int) -> str:
    return json.dumps({"headwater_bench": DATA_VERSION, "rows": rows})


def pg_connect(url: str, autocommit: bool = True) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=autocommit)


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist (connecting to ``postgres``)."""
    import psycopg
    from psycopg import sql

    try:
        pg_connect(url).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise SystemExit(f"cannot connect to PostgreSQL at {safe_url(url)}: {exc}") from None
    info = psycopg.conninfo.conninfo_to_dict(url)
    dbname = info.pop("dbname")
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    console.print(f"created database {dbname}")


def safe_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port or 5432}{parts.path}"


def verify_ids(con: Any, relation: str, rows: int) -> tuple[int, str | None]:
    """Count ``relation`` and check that it holds ids 1..rows exactly once each.

    ``relation`` is trusted SQL (a quoted table name or a scan); the check is count, min, max, sum
    and sum of squares of ``id``, which together catch dropped, duplicated or altered rows. Works on
    a psycopg or a DuckDB connection.
    """
    got = con.execute(
        f"SELECT count(*), min(id), max(id), sum(id), sum(CAST(id AS DECIMAL(38, 0)) * id) "
        f"FROM {relation}"
    ).fetchone()
    n = rows
    expected = (n, 1, n, n * (n + 1) // 2, n * (n + 1) * (2 * n + 1) // 6)
    values = tuple(int(v) if v is not None else None for v in got) if got else None
    count = values[0] if values and values[0] is not None else -1
    if values != expected:
        return count, (
            f"ids are not exactly 1..{n}: (count, min, max, sum, sum of squares) = {values}"
        )
    return count, None


def ensure_table(url: str, rows: int) -> str:
    """Create ``public.orders_<rows>`` once (kept across runs); return its name."""
    table = table_name(rows)
    with pg_connect(url) as con:
        found = con.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"public.{table}",)
        ).fetchone()
        if found and found[0] == marker_text(rows):
            return table
        console.print(f"generating {rows:,} rows in PostgreSQL table public.{table} ...")
        started = time.perf_counter()
        con.execute(f'DROP TABLE IF EXISTS public."{table}"')
        con.execute(GENERATE_SQL.format(table=f'"{table}"', last=int(rows) - 1))
        con.execute(f'VACUUM ANALYZE public."{table}"')  # hint bits and visibility map set once
        _, problem = verify_ids(con, f'public."{table}"', rows)
        if problem:
            raise SystemExit(f"the generated table public.{table} is wrong: {problem}")
        from psycopg import sql

        con.execute(
            sql.SQL("COMMENT ON TABLE public.{} IS {}").format(
                sql.Identifier(table), sql.Literal(marker_text(rows))
            )
        )
        console.print(f"generated in {time.perf_counter() - started:.1f} s")
    return table


# The Arrow types Headwater's connector maps the table's columns to (docs/connectors/postgres.md).
# Raw ADBC returns ``numeric`` as an opaque extension over its text form, so the snapshot casts it.
def snapshot_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("customer_id", pa.int64()),
            ("ts", pa.timestamp("us")),
            ("amount", pa.decimal128(12, 2)),
            ("country", pa.string()),
            ("email", pa.string()),
        ]
    )


def as_snapshot_batch(batch: Any) -> Any:
    import pyarrow as pa

    schema = snapshot_schema()
    columns = []
    for field in schema:
        column = batch.column(field.name)
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        columns.append(column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def ensure_snapshot(url: str, rows: int, data_dir: Path) -> Path:
    """A Parquet copy of the table (read through ADBC): the dataset the write benchmarks load."""
    folder = data_dir / f"pg_orders_{rows}"
    path = folder / "orders.parquet"
    marker = folder / "complete.json"
    if marker.exists() and marker.read_text() == marker_text(rows):
        return path
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    console.print(f"writing the Parquet snapshot {path} ...")
    partial = path.with_name(path.name + ".partial")
    with adbc.connect(url) as con, con.cursor() as cur:
        cur.execute(f'SELECT * FROM public."{table_name(rows)}" ORDER BY id')
        reader = cur.fetch_record_batch()
        with pq.ParquetWriter(partial, snapshot_schema()) as writer:
            for batch in reader:
                writer.write_batch(as_snapshot_batch(batch))
    os.replace(partial, path)
    con = connect_duckdb()
    _, problem = verify_ids(con, f"read_parquet('{path}')", rows)
    con.close()
    if problem:
        raise SystemExit(f"the snapshot {path} is wrong: {problem}")
    marker.write_text(marker_text(rows))
    return path


def connect_duckdb(database: Path | None = None, read_only: bool = False) -> Any:
    """A DuckDB connection that never downloads extensions or draws progress bars."""
    import duckdb

    config = {"autoinstall_known_extensions": False}
    con = duckdb.connect(str(database or ":memory:"), read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")
    return con


def fresh_target(url: str, rows: int) -> str:
    """An empty table shaped like the source (same column types), for one append measurement."""
    name = f"bench_target_{uuid.uuid4().hex[:12]}"
    with pg_connect(url) as con:
        con.execute(f'CREATE TABLE public."{name}" (LIKE public."{table_name(rows)}")')
    return name


def drop_table(url: str, name: str) -> None:
    with pg_connect(url) as con:
        con.execute(f'DROP TABLE IF EXISTS public."{name}"')


def verify_pg_table(url: str, name: str, rows: int) -> tuple[int, str | None]:
    with pg_connect(url) as con:
        return verify_ids(con, f'public."{name}"', rows)


# --- child operations: references --------------------------------------------------------------


def adbc_read(task: dict[str, Any]) -> ChildOutcome:
    """The raw read: ADBC's PostgreSQL driver streaming the table as Arrow record batches.

    Batches are counted and their ids aggregated as they arrive (cheap vectorised kernels), then
    dropped: nothing is kept, so this is the read's speed and memory floor.
    """
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.compute as pc

    con = adbc.connect(task["url"])
    cur = con.cursor()
    count = id_sum = 0
    lo: int | None = None
    hi: int | None = None
    with Stopwatch() as timed:
        cur.execute(f'SELECT * FROM public."{task["table"]}"')
        for batch in cur.fetch_record_batch():
            if batch.num_rows == 0:
                continue
            ids = batch.column("id")
            bounds = pc.min_max(ids)
            lo = bounds["min"].as_py() if lo is None else min(lo, bounds["min"].as_py())
            hi = bounds["max"].as_py() if hi is None else max(hi, bounds["max"].as_py())
            id_sum += pc.sum(ids).as_py()
            count += batch.num_rows
    cur.close()
    con.close()
    n = task["rows"]
    got, expected = (count, lo, hi, id_sum), (n, 1, n, n * (n + 1) // 2)
    problem = (
        None if got == expected else f"(count, min, max, sum) of id = {got}, expected {expected}"
    )
    return timed.outcome(count, problem)


def copy_append(task: dict[str, Any]) -> ChildOutcome:
    """The raw write: psycopg ``COPY ... FROM STDIN`` of the snapshot's rows, one transaction.

    ``csv``: each Parquet batch is turned into CSV by pyarrow's (C++) writer and sent as bytes.
    ``binary``: psycopg's binary COPY, whose rows pass through Python objects (``write_row``).
    The Parquet file is read inside the timer, as Headwater reads its dataset inside its own.
    """
    import io

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    url, target, fmt = task["url"], task["target"], task["copy_format"]
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    parquet = pq.ParquetFile(task["snapshot"])
    con = pg_connect(url, autocommit=False)
    options = "FORMAT csv" if fmt == "csv" else "FORMAT binary"
    sql = f'COPY public."{target}" ({columns}) FROM STDIN ({options})'
    with Stopwatch() as timed, con.cursor() as cur:
        with cur.copy(sql) as copy:
            if fmt == "binary":
                copy.set_types(["int8", "int8", "timestamp", "numeric", "text", "text"])
            for batch in parquet.iter_batches(batch_size=250_000, columns=list(COLUMNS)):
                if fmt == "csv":
                    buf = io.BytesIO()
                    pa_csv.write_csv(
                        batch, buf, write_options=pa_csv.WriteOptions(include_header=False)
                    )
                    copy.write(buf.getbuffer())
                else:
                    for row in zip(*(col.to_pylist() for col in batch.columns), strict=True):
                        copy.write_row(row)
        con.commit()
    con.close()
    outcome = timed.outcome(*verify_pg_table(url, target, task["rows"]))
    drop_table(url, target)
    return outcome


# --- child operations: dlt ---------------------------------------------------------------------


def dlt_read(task: dict[str, Any]) -> ChildOutcome:
    """dlt's ``sql_database`` source (connectorx or pyarrow backend) into the duckdb destination."""
    try:
        import dlt
        from dlt.sources.sql_database import sql_database
    except ImportError as exc:
        raise ToolUnavailable(f"dlt's sql_database source is not importable ({exc})") from exc
    backend = task["dlt_backend"]
    try:
        __import__(backend)
    except ImportError as exc:
        raise ToolUnavailable(f"the {backend} backend is not installed ({exc})") from exc

    scratch, url = Path(task["scratch"]), task["url"]
    database = scratch / "dlt_destination.duckdb"
    # SQLAlchemy reflects the table through psycopg 3; connectorx reads with its own client.
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    kwargs: dict[str, Any] = {}
    if backend == "connectorx":
        kwargs["backend_kwargs"] = {"conn": url, "return_type": "arrow"}
    else:
        kwargs["chunk_size"] = 100_000
    source = sql_database(
        credentials=sa_url,
        schema="public",
        table_names=[task["table"]],
        backend=backend,
        reflection_level="full_with_precision",
        **kwargs,
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_db_throughput",
        pipelines_dir=str(scratch / "pipelines"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="ingest",
    )
    with Stopwatch() as timed:
        info = pipeline.run(source, write_disposition="replace")
    info.raise_on_failed_jobs()
    con = connect_duckdb(database, read_only=True)
    outcome = timed.outcome(*verify_ids(con, f'ingest."{task["table"]}"', task["rows"]))
    con.close()
    return outcome


# --- child operations: headwater ---------------------------------------------------------------

READ_PIPELINE_YAML = """\
name: bench_pg_read
steps:
  - name: extract_orders
    type: extract
    connection: pg
    stream: public.{table}
    to: raw.orders
    mode: overwrite
"""

APPEND_PIPELINE_YAML = """\
name: bench_pg_append
steps:
  - name: load_orders
    type: load
    from: raw.orders
    connection: pg
    target: public.{target}
    mode: append
"""

SUCCESS_STATUSES = {"success", "succeeded", "successful", "ok", "complete", "completed", "done"}


def headwater_workspace(task: dict[str, Any], pipeline_yaml: str) -> tuple[Any, Path, Path]:
    """A workspace in the scratch dir with a ``postgres`` connection ``pg`` and one pipeline."""
    try:
        import headwater
    except ImportError as exc:
        raise ToolUnavailable(f"the headwater package is not importable ({exc})") from exc
    root = Path(task["scratch"]) / "workspace"
    ws = headwater.Workspace.init(str(root))
    ws.add_connection("pg", type="postgres", config={"url": task["url"]})
    pipeline_path = root / "pipelines" / "bench.yaml"
    pipeline_path.write_text(pipeline_yaml)
    return ws, root, pipeline_path


def check_status(result: Any) -> None:
    status = getattr(result, "status", None)
    status_text = str(getattr(status, "value", status)).rsplit(".", 1)[-1].lower()
    if status_text not in SUCCESS_STATUSES:
        raise RuntimeError(f"headwater run ended with status {status!r}: {result!r}")


def headwater_read(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: a one-step pipeline extracting ``public.orders_<N>`` into ``raw.orders``."""
    ws, root, pipeline_path = headwater_workspace(
        task, READ_PIPELINE_YAML.format(table=task["table"])
    )
    with Stopwatch() as timed:
        result = ws.run(str(pipeline_path))
    check_status(result)
    table_path = root / "lake" / "raw" / "orders"
    if not table_path.is_dir():
        raise RuntimeError(f"the run succeeded but no dataset was found at {table_path}")
    from deltalake import DeltaTable

    con = connect_duckdb()
    con.register("dataset", DeltaTable(str(table_path)).to_pyarrow_dataset())
    outcome = timed.outcome(*verify_ids(con, "dataset", task["rows"]))
    con.close()
    ws.close()
    return outcome


def headwater_append(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: a ``load`` step appending the dataset ``raw.orders`` into an empty table.

    The dataset is written from the Parquet snapshot before the timer starts.
    """
    import pyarrow.parquet as pq

    url, target = task["url"], task["target"]
    ws, _, pipeline_path = headwater_workspace(task, APPEND_PIPELINE_YAML.format(target=target))
    snapshot = pq.ParquetFile(task["snapshot"])
    import pyarrow as pa

    reader = pa.RecordBatchReader.from_batches(
        snapshot.schema_arrow, snapshot.iter_batches(batch_size=250_000)
    )
    ws.lake.write("raw.orders", reader, mode="overwrite")
    with Stopwatch() as timed:
        result = ws.run(str(pipeline_path))
    check_status(result)
    ws.close()
    outcome = timed.outcome(*verify_pg_table(url, target, task["rows"]))
    drop_table(url, target)
    return outcome


CHILD_OPERATIONS = {
    "adbc_read": adbc_read,
    "copy_append": copy_append,
    "dlt_read": dlt_read,
    "headwater_read": headwater_read,
    "headwater_append": headwater_append,
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
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL database for the source table and the append targets; created if "
        "missing (default $HEADWATER_BENCH_PG_URL or postgresql://postgres@127.0.0.1:5432/"
        "headwater_bench)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the Parquet snapshot is cached and scratch output is written "
        "(default bench/data, git-ignored)",
    )
    parser.add_argument(
        "--dlt-backend",
        choices=DLT_BACKENDS,
        default=DEFAULT_DLT_BACKEND,
        help=f"dlt sql_database backend (default {DEFAULT_DLT_BACKEND})",
    )
    parser.add_argument(
        "--copy-format",
        choices=COPY_FORMATS,
        default=DEFAULT_COPY_FORMAT,
        help=f"format of the raw COPY reference (default {DEFAULT_COPY_FORMAT})",
    )
    args = parser.parse_args()
    url = args.pg_url
    data_dir = args.data_dir.resolve()

    ensure_database(url)
    table = ensure_table(url, args.rows)
    snapshot = ensure_snapshot(url, args.rows, data_dir)
    with pg_connect(url) as con:
        size = con.execute(
            "SELECT pg_total_relation_size(to_regclass(%s))", (f"public.{table}",)
        ).fetchone()[0]
        server = con.execute("SHOW server_version").fetchone()[0]
    console.print(
        f"input: {args.rows:,} rows; public.{table} on {safe_url(url)} ({human_bytes(size)}, "
        f"PostgreSQL {server}); snapshot {snapshot.name} "
        f"({human_bytes(snapshot.stat().st_size)}); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}; "
        f"dlt backend {args.dlt_backend}; COPY format {args.copy_format}"
    )
    ops = [op for tool in args.tools for op in OPS if op.tool == tool]
    scratch_root = data_dir / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)

    runs: dict[Op, list[Measurement]] = {op: [] for op in ops}
    for repeat in range(args.repeat):
        for op in ops:
            if any(m.error for m in runs[op]):
                continue  # failed once: do not spend more rounds on it
            scratch = Path(tempfile.mkdtemp(prefix=f"{op.child}-", dir=scratch_root))
            target = fresh_target(url, args.rows) if op.group == "append" else None
            label = f"[{repeat + 1}/{args.repeat}] {op.tool}: {op.operation}"
            operation = op.operation
            if op.tool == "copy":
                operation = f"{op.operation[:-1]} {args.copy_format})"
            elif op.tool == "dlt":
                operation = f"{op.operation} ({args.dlt_backend})"
            try:
                with console.status(label):
                    m = measure(
                        SCRIPT,
                        tool=op.tool,
                        operation=operation,
                        child=op.child,
                        rows=args.rows,
                        group=op.group,
                        task={
                            "url": url,
                            "table": table,
                            "snapshot": str(snapshot),
                            "target": target,
                            "rows": args.rows,
                            "scratch": str(scratch),
                            "dlt_backend": args.dlt_backend,
                            "copy_format": args.copy_format,
                        },
                        env=CHILD_ENV,
                    )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
                if target:
                    drop_table(url, target)
            outcome = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"{label}: {outcome}", highlight=False)
            runs[op].append(m)

    results = [median_of(r) for r in runs.values() if r]
    console.print()
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"PostgreSQL throughput, {args.rows:,} rows{suffix}")
    print_ratios(results, subject="headwater", peers=("dlt", "adbc", "copy"))
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
