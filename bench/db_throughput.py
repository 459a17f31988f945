"""Database throughput: Headwater against dlt, a raw ADBC read, COPY write and connectorx read.

Measures, each in a fresh process, on one synthetic orders shape (see bench/README.md):

* ``read``: PostgreSQL into a dataset. Headwater (a one-step ``extract`` pipeline into
  ``raw.orders``), dlt (``sql_database`` with the connectorx or pyarrow backend into its duckdb
  destination) and a raw ADBC read into Arrow batches (the reference);
* ``append``: a dataset into an empty PostgreSQL table. Headwater (a ``load`` step,
  ``mode: append``), dlt (its ``postgres`` destination fed the same rows as Arrow,
  ``write_disposition="append"``) and a raw psycopg ``COPY ... FROM STDIN`` (the reference);
* ``merge``: a dataset upserted on ``id`` into a PostgreSQL table that already holds half of the
  keys with other amounts. Headwater (``mode: merge, keys: [id]``) and dlt
  (``write_disposition="merge"``, ``primary_key="id"``); the raw COPY above is the reference;
* ``mariadb``: MariaDB into a dataset. Headwater, dlt (``sql_database`` into duckdb) and a raw
  connectorx read into Arrow (the reference).

The orders table (``id`` primary key, ``customer_id, ts, amount, country, email``) is generated
once per row count in PostgreSQL with ``generate_series`` and kept as ``public.orders_<N>``; a
Parquet snapshot of it (read through ADBC) is the dataset the write measurements start from, and
is loaded into MariaDB as ``orders_<N>`` for the MariaDB read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ChildOutcome,
    Measurement,
    Ratio,
    Stopwatch,
    ToolUnavailable,
    base_parser,
    child_main,
    console,
    human_bytes,
    is_child_invocation,
    measure,
    median_of,
    print_results,
    tool_list,
    write_json,
)
from rich.table import Table

SCRIPT = Path(__file__).resolve()
DEFAULT_DATA_DIR = SCRIPT.parent / "data"
DEFAULT_ROWS = 10_000_000
DEFAULT_PG_URL = os.environ.get(
    "HEADWATER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/headwater_bench"
)
DEFAULT_MARIADB_URL = os.environ.get(
    "HEADWATER_BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/headwater_bench"
)
TOOLS = ("headwater", "dlt", "adbc", "copy", "connectorx")
# Operation groups, for --only; ratios compare within a group (and merge against append's COPY).
GROUPS = ("read", "append", "merge", "mariadb")
# Bump when the generated tables change, so cached tables and snapshots are rebuilt.
DATA_VERSION = 1
# The PostgreSQL source table alone: 2 added its primary key on id (its rows, the snapshot
# and the MariaDB copy are unchanged).
PG_TABLE_VERSION = 2

CHILD_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"}

DLT_BACKENDS = ("connectorx", "pyarrow")
DEFAULT_DLT_BACKEND = "connectorx"
COPY_FORMATS = ("csv", "binary")
# Measured on 1M rows (see bench/README.md): pyarrow's CSV writer feeding COPY (FORMAT csv) beat
# psycopg's binary COPY, whose rows have to pass through Python objects.
DEFAULT_COPY_FORMAT = "csv"
# How dlt's postgres destination loads Arrow input: "parquet" (ADBC bulk ingest, i.e. binary
# COPY), "csv" (COPY FROM STDIN of pyarrow-written CSV) or "insert_values" (its default). On 200k
# rows parquet took 2.3 s, csv 5.1 s, insert_values 15.5 s (see bench/README.md).
DLT_LOAD_FORMATS = ("parquet", "csv", "insert_values")
DEFAULT_DLT_LOAD_FORMAT = "parquet"
# dlt's default merge strategy is delete-insert; upsert (a MERGE from its staging table) was
# faster here: 6.3-9.1 s against 12.0-14.3 s on 1M rows.
DLT_MERGE_STRATEGIES = ("upsert", "delete-insert")
DEFAULT_DLT_MERGE_STRATEGY = "upsert"
# connectorx materialising the table ("arrow") was faster than streaming it ("arrow_stream", as
# Headwater's connector does): 1.43 s against 1.72 s on 1M rows, medians of 3 runs.
CX_RETURN_TYPES = ("arrow", "arrow_stream")
DEFAULT_CX_RETURN_TYPE = "arrow"
# The memory target for every Headwater operation (the peak RSS the table reports, in MB).
RSS_TARGET_MB = 1500


@dataclass(frozen=True)
class Op:
    tool: str
    operation: str
    group: str  # one of GROUPS
    child: str  # key in CHILD_OPERATIONS
    # What the parent prepares in PostgreSQL before the child runs, and drops after it:
    # "" nothing; "empty" an empty public.bench_target_<id> shaped like the source; "prefilled"
    # that table holding the even ids with other amounts; "dlt" a fresh schema for dlt's dataset;
    # "dlt-prefilled" that schema holding a prefilled table "orders".
    target: str = ""
    reference_for: tuple[str, ...] = ()  # other groups whose ratios use this operation


OPS = (
    Op("headwater", "postgres -> dataset", "read", "headwater_read"),
    Op(
        "headwater",
        "postgres -> dataset (partition: 2 ranges, one snapshot)",
        "read",
        "headwater_read_ranges",
    ),
    Op("dlt", "postgres -> duckdb table", "read", "dlt_read"),
    Op("adbc", "postgres -> arrow batches", "read", "adbc_read"),
    Op("headwater", "dataset -> postgres (append)", "append", "headwater_append", "empty"),
    Op("dlt", "dataset -> postgres (append)", "append", "dlt_append", "dlt"),
    Op("copy", "parquet -> postgres (COPY)", "append", "copy_append", "empty", ("merge",)),
    Op("headwater", "dataset -> postgres (merge)", "merge", "headwater_merge", "prefilled"),
    Op("dlt", "dataset -> postgres (merge)", "merge", "dlt_merge", "dlt-prefilled"),
    Op("headwater", "mariadb -> dataset", "mariadb", "headwater_mariadb_read"),
    Op(
        "headwater",
        "mariadb -> dataset (opt-in partition: 2 ranges)",
        "mariadb",
        "headwater_mariadb_read_ranges",
    ),
    Op("dlt", "mariadb -> duckdb table", "mariadb", "dlt_mariadb_read"),
    Op("connectorx", "mariadb -> arrow", "mariadb", "cx_mariadb_read"),
)


@dataclass(frozen=True)
class RatioSpec:
    """A Headwater-vs-reference comparison, with the requirement's target where it sets one."""

    label: str
    subject: str  # child of the Headwater operation
    peer: str  # child of the peer or reference operation
    target: float | None = None  # minimum speed ratio (peer seconds / Headwater seconds)


RATIO_SPECS = (
    RatioSpec("PG read vs dlt", "headwater_read", "dlt_read", 2.0),
    RatioSpec("PG read vs raw ADBC", "headwater_read", "adbc_read", 0.85),
    RatioSpec("PG read, 2 ranges in one snapshot, vs dlt", "headwater_read_ranges", "dlt_read"),
    RatioSpec("append vs raw COPY", "headwater_append", "copy_append", 0.85),
    RatioSpec("append vs dlt append", "headwater_append", "dlt_append"),
    RatioSpec("merge vs raw COPY", "headwater_merge", "copy_append", 0.6),
    RatioSpec("merge vs dlt merge", "headwater_merge", "dlt_merge"),
    RatioSpec("MariaDB read vs dlt", "headwater_mariadb_read", "dlt_mariadb_read", 2.0),
    RatioSpec("MariaDB read vs raw connectorx", "headwater_mariadb_read", "cx_mariadb_read", 0.85),
    RatioSpec(
        "MariaDB read, opt-in 2 ranges, vs dlt", "headwater_mariadb_read_ranges", "dlt_mariadb_read"
    ),
)


# --- data: PostgreSQL --------------------------------------------------------------------------

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

# The merge target's starting rows: the even ids (half of the keys), every amount 1000.00 higher
# than the dataset's, so a row the merge failed to update is caught by the amount checksums.
PREFILL_SQL = """
INSERT INTO {target} (id, customer_id, ts, amount, country, email)
SELECT id, customer_id, ts, amount + 1000, country, email FROM public.{source} WHERE id % 2 = 0
"""


def table_name(rows: int) -> str:
    return f"orders_{rows}"


def marker_text(rows: int, version: int = DATA_VERSION) -> str:
    return json.dumps({"headwater_bench": version, "rows": rows})


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


def safe_url(url: str, default_port: int = 5432) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port or default_port}{parts.path}"


def verify_ids(con: Any, relation: str, rows: int) -> tuple[int, str | None]:
    """Count ``relation`` and check that it holds ids 1..rows exactly once each.

    ``relation`` is trusted SQL (a quoted table name or a scan); the check is count, min, max, sum
    and sum of squares of ``id``, which together catch dropped, duplicated or altered rows. Works on
    a psycopg, a DuckDB or a :class:`MysqlCon` connection.
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


def amount_checksums(con: Any, relation: str) -> list[str]:
    """``sum(amount)`` and ``sum(amount * id)`` of ``relation``, as decimal strings.

    Together with :func:`verify_ids` they tell that every id carries the dataset's amount: a row
    left with its old amount, or amounts moved between ids, changes one of the two.
    """
    got = con.execute(
        f"SELECT sum(amount), sum(CAST(amount AS DECIMAL(38, 2)) * id) FROM {relation}"
    ).fetchone()
    return [str(Decimal(v)) if v is not None else "NULL" for v in got]


def compare_amounts(got: Sequence[str], expected: Sequence[str]) -> str | None:
    def as_decimal(values: Sequence[str]) -> list[Decimal | None]:
        return [Decimal(v) if v != "NULL" else None for v in values]

    if as_decimal(got) == as_decimal(expected):
        return None
    return (
        f"amounts are not the dataset's: (sum(amount), sum(amount * id)) = {tuple(got)}, "
        f"expected {tuple(expected)}"
    )


def ensure_table(url: str, rows: int) -> str:
    """Create ``public.orders_<rows>`` once (kept across runs); return its name."""
    table = table_name(rows)
    with pg_connect(url) as con:
        found = con.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"public.{table}",)
        ).fetchone()
        if found and found[0] == marker_text(rows, PG_TABLE_VERSION):
            return table
        console.print(f"generating {rows:,} rows in PostgreSQL table public.{table} ...")
        started = time.perf_counter()
        con.execute(f'DROP TABLE IF EXISTS public."{table}"')
        con.execute(GENERATE_SQL.format(table=f'"{table}"', last=int(rows) - 1))
        # an orders table has a primary key (the merge target, made LIKE it, does not)
        con.execute(f'ALTER TABLE public."{table}" ADD PRIMARY KEY (id)')
        con.execute(f'VACUUM ANALYZE public."{table}"')  # hint bits and visibility map set once
        _, problem = verify_ids(con, f'public."{table}"', rows)
        if problem:
            raise SystemExit(f"the generated table public.{table} is wrong: {problem}")
        from psycopg import sql

        con.execute(
            sql.SQL("COMMENT ON TABLE public.{} IS {}").format(
                sql.Identifier(table), sql.Literal(marker_text(rows, PG_TABLE_VERSION))
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


@dataclass(frozen=True)
class Target:
    """A PostgreSQL table a write measurement loads into, prepared and dropped by the parent."""

    schema: str
    table: str
    own_schema: bool  # dlt's dataset: the schema (and dlt's ``<schema>_staging``) is dropped

    @property
    def relation(self) -> str:
        return f'"{self.schema}"."{self.table}"'


def prepare_target(url: str, rows: int, kind: str) -> Target | None:
    """Make the target an operation writes into (see :class:`Op`), outside any timer."""
    if not kind:
        return None
    suffix = uuid.uuid4().hex[:12]
    if kind.startswith("dlt"):
        target = Target(f"bench_dlt_{suffix}", "orders", own_schema=True)
    else:
        target = Target("public", f"bench_target_{suffix}", own_schema=False)
    if kind == "dlt":
        return target  # dlt creates its dataset's schema and table itself
    source = f'"{table_name(rows)}"'
    with pg_connect(url) as con:
        if target.own_schema:
            con.execute(f'CREATE SCHEMA "{target.schema}"')
        con.execute(f"CREATE TABLE {target.relation} (LIKE public.{source})")
        if kind.endswith("prefilled"):
            con.execute(PREFILL_SQL.format(target=target.relation, source=source))
            con.execute(f"VACUUM ANALYZE {target.relation}")
    return target


def drop_target(url: str, target: Target) -> None:
    with pg_connect(url) as con:
        if target.own_schema:
            for schema in (target.schema, f"{target.schema}_staging"):
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            con.execute(f"DROP TABLE IF EXISTS {target.relation}")


def verify_target(task: dict[str, Any]) -> tuple[int, str | None]:
    """Check the write's target: ids 1..N exactly and the dataset's amounts on every id."""
    relation = f'"{task["target_schema"]}"."{task["target"]}"'
    with pg_connect(task["url"]) as con:
        count, problem = verify_ids(con, relation, task["rows"])
        if problem is None:
            problem = compare_amounts(amount_checksums(con, relation), task["amounts"])
    return count, problem


def pg_amounts(url: str, table: str) -> list[str]:
    with pg_connect(url) as con:
        return amount_checksums(con, f'public."{table}"')


# --- data: MariaDB -----------------------------------------------------------------------------

MARIADB_CREATE_SQL = """
CREATE TABLE `{table}` (
    id BIGINT NOT NULL PRIMARY KEY,
    customer_id BIGINT,
    ts DATETIME(6),
    amount DECIMAL(12, 2),
    country VARCHAR(255),
    email VARCHAR(255)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT={comment}
"""

MARIADB_LOAD_SQL = """
LOAD DATA LOCAL INFILE {path} INTO TABLE `{table}` CHARACTER SET utf8mb4
FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY ''
LINES TERMINATED BY '\\n' (id, customer_id, ts, amount, country, email)
"""

MARIADB_LOAD_CHUNK_ROWS = 1_000_000


class MysqlCon:
    """A PyMySQL connection with the ``execute(sql).fetchone()`` shape verify_ids expects."""

    def __init__(self, url: str, with_database: bool = True) -> None:
        import pymysql

        params = mariadb_params(url)
        if not with_database:
            params.pop("database")
        self.raw = pymysql.connect(**params, local_infile=True, autocommit=True)

    def execute(self, sql: str, args: Any = None) -> Any:
        cur = self.raw.cursor()
        cur.execute(sql, args)
        return cur

    def close(self) -> None:
        self.raw.close()


def mariadb_params(url: str) -> dict[str, Any]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    if not database:
        raise SystemExit(f"--mariadb-url must name a database: {safe_url(url, 3306)}")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": database,
    }


def ensure_mariadb_table(url: str, rows: int, snapshot: Path, amounts: Sequence[str]) -> str:
    """Load the snapshot into MariaDB as ``orders_<rows>`` once (kept across runs).

    The rows are written as CSV by pyarrow, 1M rows a file, and loaded with ``LOAD DATA LOCAL
    INFILE`` into a staging table, checked (ids and amounts) and renamed into place; the table
    comment marks the data version.
    """
    import pymysql

    table = table_name(rows)
    database = mariadb_params(url)["database"]
    try:
        admin = MysqlCon(url, with_database=False)
    except pymysql.Error as exc:
        raise SystemExit(
            f"cannot connect to MariaDB at {safe_url(url, 3306)}: {exc} "
            "(use --only read,append,merge to skip the MariaDB measurements)"
        ) from None
    admin.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    admin.close()
    con = MysqlCon(url)
    try:
        found = con.execute(
            "SELECT table_comment FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = %s",
            (database, table),
        ).fetchone()
        if found and found[0] == marker_text(rows):
            return table
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        console.print(f"loading {rows:,} rows into MariaDB table {database}.{table} ...")
        started = time.perf_counter()
        partial = f"{table}__partial"
        con.execute(f"DROP TABLE IF EXISTS `{partial}`")
        con.execute(
            MARIADB_CREATE_SQL.format(table=partial, comment=con.raw.escape(marker_text(rows)))
        )
        options = pa_csv.WriteOptions(include_header=False)
        with tempfile.TemporaryDirectory(prefix="hw-bench-mariadb-", dir=snapshot.parent) as tmp:
            csv_path = Path(tmp) / "chunk.csv"
            parquet = pq.ParquetFile(snapshot)
            for batch in parquet.iter_batches(batch_size=MARIADB_LOAD_CHUNK_ROWS):
                pa_csv.write_csv(batch, csv_path, write_options=options)
                con.execute(
                    MARIADB_LOAD_SQL.format(path=con.raw.escape(str(csv_path)), table=partial)
                )
                warnings = con.execute("SHOW WARNINGS").fetchall()
                if warnings:
                    raise SystemExit(f"loading MariaDB table {partial} warned: {warnings[:3]}")
        con.execute(f"ANALYZE TABLE `{partial}`").fetchall()
        _, problem = verify_ids(con, f"`{partial}`", rows)
        problem = problem or compare_amounts(amount_checksums(con, f"`{partial}`"), amounts)
        if problem:
            raise SystemExit(f"the MariaDB table {partial} is wrong: {problem}")
        con.execute(f"DROP TABLE IF EXISTS `{table}`")
        con.execute(f"RENAME TABLE `{partial}` TO `{table}`")
        console.print(f"loaded in {time.perf_counter() - started:.1f} s")
        return table
    finally:
        con.close()


def cx_mariadb_url(url: str) -> str:
    """The URL connectorx takes for MariaDB: ``mysql://`` without a ``+driver`` suffix."""
    scheme, rest = url.split("://", 1)
    return f"mysql://{rest}" if scheme.split("+")[0] in ("mysql", "mariadb") else url


# --- child operations: references --------------------------------------------------------------


class IdTally:
    """Count, min, max and sum of ``id`` over streamed batches, for references that keep nothing."""

    def __init__(self) -> None:
        self.count = self.total = 0
        self.lo: int | None = None
        self.hi: int | None = None

    def add(self, batch: Any) -> None:
        import pyarrow.compute as pc

        if batch.num_rows == 0:
            return
        ids = batch.column("id")
        bounds = pc.min_max(ids)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        self.lo = low if self.lo is None else min(self.lo, low)
        self.hi = high if self.hi is None else max(self.hi, high)
        self.total += pc.sum(ids).as_py()
        self.count += batch.num_rows

    def problem(self, n: int) -> str | None:
        got, expected = (self.count, self.lo, self.hi, self.total), (n, 1, n, n * (n + 1) // 2)
        if got == expected:
            return None
        return f"(count, min, max, sum) of id = {got}, expected {expected}"


def adbc_read(task: dict[str, Any]) -> ChildOutcome:
    """The raw read: ADBC's PostgreSQL driver streaming the table as Arrow record batches.

    Batches are counted and their ids aggregated as they arrive (cheap vectorised kernels), then
    dropped: nothing is kept, so this is the read's speed and memory floor.
    """
    import adbc_driver_postgresql.dbapi as adbc

    con = adbc.connect(task["url"])
    cur = con.cursor()
    tally = IdTally()
    with Stopwatch() as timed:
        cur.execute(f'SELECT * FROM public."{task["table"]}"')
        for batch in cur.fetch_record_batch():
            tally.add(batch)
    cur.close()
    con.close()
    return timed.outcome(tally.count, tally.problem(task["rows"]))


def cx_mariadb_read(task: dict[str, Any]) -> ChildOutcome:
    """The raw MariaDB read: connectorx decoding the MySQL protocol into Arrow in Rust.

    ``arrow_stream`` yields record batches that are tallied and dropped like the ADBC reference;
    ``arrow`` materialises the whole table (then tallied by batch).
    """
    try:
        import connectorx as cx
    except ImportError as exc:
        raise ToolUnavailable(f"connectorx is not installed ({exc})") from exc
    url, query = cx_mariadb_url(task["mariadb_url"]), f"SELECT * FROM `{task['mariadb_table']}`"
    return_type = task["cx_return_type"]
    tally = IdTally()
    with Stopwatch() as timed:
        if return_type == "arrow_stream":
            reader = cx.read_sql(url, query, return_type="arrow_stream", batch_size=250_000)
            for batch in reader:
                tally.add(batch)
        else:
            for batch in cx.read_sql(url, query, return_type="arrow").to_batches():
                tally.add(batch)
    return timed.outcome(tally.count, tally.problem(task["rows"]))


def copy_append(task: dict[str, Any]) -> ChildOutcome:
    """The raw write: psycopg ``COPY ... FROM STDIN`` of the snapshot's rows, one transaction.

    ``csv``: each Parquet batch is turned into CSV by pyarrow's (C++) writer and sent as bytes.
    ``binary``: psycopg's binary COPY, whose rows pass through Python objects (``write_row``).
    The Parquet file is read inside the timer, as Headwater reads its dataset inside its own.
    """
    import io

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    url, fmt = task["url"], task["copy_format"]
    relation = f'"{task["target_schema"]}"."{task["target"]}"'
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    parquet = pq.ParquetFile(task["snapshot"])
    con = pg_connect(url, autocommit=False)
    options = "FORMAT csv" if fmt == "csv" else "FORMAT binary"
    sql = f"COPY {relation} ({columns}) FROM STDIN ({options})"
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
    return timed.outcome(*verify_target(task))


# --- child operations: dlt ---------------------------------------------------------------------


def import_dlt() -> Any:
    try:
        import dlt
    except ImportError as exc:
        raise ToolUnavailable(f"dlt is not installed ({exc})") from exc
    return dlt


def dlt_read(task: dict[str, Any]) -> ChildOutcome:
    """dlt's ``sql_database`` source (connectorx or pyarrow backend) into the duckdb destination.

    ``task["source"]`` is ``postgres`` or ``mariadb``; SQLAlchemy reflects the table (through
    psycopg 3 or PyMySQL) and the backend reads it with its own client.
    """
    dlt = import_dlt()
    try:
        from dlt.sources.sql_database import sql_database
    except ImportError as exc:
        raise ToolUnavailable(f"dlt's sql_database source is not importable ({exc})") from exc
    backend = task["dlt_backend"]
    try:
        __import__(backend)
    except ImportError as exc:
        raise ToolUnavailable(f"the {backend} backend is not installed ({exc})") from exc

    scratch = Path(task["scratch"])
    database = scratch / "dlt_destination.duckdb"
    if task["source"] == "mariadb":
        url, table, schema = cx_mariadb_url(task["mariadb_url"]), task["mariadb_table"], None
        sa_url = url.replace("mysql://", "mysql+pymysql://", 1)
    else:
        url, table, schema = task["url"], task["table"], "public"
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    kwargs: dict[str, Any] = {}
    if backend == "connectorx":
        kwargs["backend_kwargs"] = {"conn": url, "return_type": "arrow"}
    else:
        kwargs["chunk_size"] = 100_000
    source = sql_database(
        credentials=sa_url,
        schema=schema,
        table_names=[table],
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
    outcome = timed.outcome(*verify_ids(con, f'ingest."{table}"', task["rows"]))
    con.close()
    return outcome


def dlt_write(task: dict[str, Any]) -> ChildOutcome:
    """dlt's ``postgres`` destination fed the Parquet snapshot's record batches (its Arrow path).

    ``append`` into a fresh dataset (dlt creates the schema and table); ``merge`` with
    ``primary_key="id"`` into a dataset whose ``orders`` table the parent pre-filled (dlt adds its
    ``_dlt_load_id``/``_dlt_id`` columns to it). The Parquet read is inside the timer, as for COPY.
    """
    dlt = import_dlt()
    import pyarrow.parquet as pq

    mode, load_format = task["mode"], task["dlt_load_format"]
    parquet = pq.ParquetFile(task["snapshot"])
    hints: dict[str, Any] = {"write_disposition": "append"}
    if mode == "merge":
        hints = {
            "write_disposition": {"disposition": "merge", "strategy": task["dlt_merge_strategy"]},
            "primary_key": "id",
        }

    @dlt.resource(name=task["target"], **hints)
    def orders() -> Any:
        yield from parquet.iter_batches(batch_size=250_000)

    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    # dlt requires a password; with none in the URL, pass libpq's own (or none: trust, .pgpass).
    credentials = PostgresCredentials(task["url"])
    if credentials.password is None:
        credentials.password = os.environ.get("PGPASSWORD", "")
    scratch = Path(task["scratch"])
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_db_throughput_{mode}",
        pipelines_dir=str(scratch / "pipelines"),
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name=task["target_schema"],
    )
    with Stopwatch() as timed:
        info = pipeline.run(orders(), loader_file_format=load_format)
    info.raise_on_failed_jobs()
    return timed.outcome(*verify_target(task))


# --- child operations: headwater ---------------------------------------------------------------

READ_PIPELINE_YAML = """\
name: bench_db_read
steps:
  - name: extract_orders
    type: extract
    connection: {connection}
    stream: {stream}
    to: raw.orders
    mode: overwrite
{extra}"""

LOAD_PIPELINE_YAML = """\
name: bench_pg_{mode}
steps:
  - name: load_orders
    type: load
    from: raw.orders
    connection: pg
    target: {target}
    mode: {mode}{keys}
"""

PARTITION_TWO = "    partition: {column: id, partitions: 2}\n"

SUCCESS_STATUSES = {"success", "succeeded", "successful", "ok", "complete", "completed", "done"}


def headwater_workspace(
    task: dict[str, Any], pipeline_yaml: str, connection: tuple[str, str, str]
) -> tuple[Any, Path, Path]:
    """A workspace in the scratch dir with one connection ``(name, type, url)`` and one pipeline."""
    try:
        import headwater
    except ImportError as exc:
        raise ToolUnavailable(f"the headwater package is not importable ({exc})") from exc
    name, kind, url = connection
    root = Path(task["scratch"]) / "workspace"
    ws = headwater.Workspace.init(str(root))
    ws.add_connection(name, type=kind, config={"url": url})
    pipeline_path = root / "pipelines" / "bench.yaml"
    pipeline_path.write_text(pipeline_yaml)
    return ws, root, pipeline_path


def check_status(result: Any) -> None:
    status = getattr(result, "status", None)
    status_text = str(getattr(status, "value", status)).rsplit(".", 1)[-1].lower()
    if status_text not in SUCCESS_STATUSES:
        raise RuntimeError(f"headwater run ended with status {status!r}: {result!r}")


def headwater_extract(
    task: dict[str, Any], connection: tuple[str, str, str], stream: str, extra: str = ""
) -> Any:
    """Headwater: a one-step pipeline extracting ``stream`` into the dataset ``raw.orders``."""
    pipeline = READ_PIPELINE_YAML.format(connection=connection[0], stream=stream, extra=extra)
    ws, root, pipeline_path = headwater_workspace(task, pipeline, connection)
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


def headwater_read(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: extract ``public.orders_<N>`` from PostgreSQL into ``raw.orders``."""
    return headwater_extract(task, ("pg", "postgres", task["url"]), f"public.{task['table']}")


def headwater_read_ranges(task: dict[str, Any]) -> ChildOutcome:
    """Headwater, two key ranges read in parallel inside one exported snapshot."""
    stream = f"public.{task['table']}"
    return headwater_extract(task, ("pg", "postgres", task["url"]), stream, PARTITION_TWO)


def headwater_mariadb_read_ranges(task: dict[str, Any]) -> ChildOutcome:
    """Headwater, MariaDB in two key ranges (opt-in: each range is its own transaction)."""
    connection = ("mdb", "mariadb", task["mariadb_url"])
    return headwater_extract(task, connection, task["mariadb_table"], PARTITION_TWO)


def headwater_mariadb_read(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: extract ``orders_<N>`` from MariaDB into ``raw.orders``."""
    connection = ("mdb", "mariadb", task["mariadb_url"])
    return headwater_extract(task, connection, task["mariadb_table"])


def headwater_load(task: dict[str, Any]) -> ChildOutcome:
    """Headwater: a ``load`` step writing the dataset ``raw.orders`` into the target table.

    ``append`` into an empty table, or ``merge`` with ``keys: [id]`` into the pre-filled one. The
    dataset is written from the Parquet snapshot before the timer starts.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    mode = task["mode"]
    pipeline = LOAD_PIPELINE_YAML.format(
        mode=mode,
        target=f"{task['target_schema']}.{task['target']}",
        keys="\n    keys: [id]" if mode == "merge" else "",
    )
    ws, _, pipeline_path = headwater_workspace(task, pipeline, ("pg", "postgres", task["url"]))
    snapshot = pq.ParquetFile(task["snapshot"])
    reader = pa.RecordBatchReader.from_batches(
        snapshot.schema_arrow, snapshot.iter_batches(batch_size=250_000)
    )
    ws.lake.write("raw.orders", reader, mode="overwrite")
    with Stopwatch() as timed:
        result = ws.run(str(pipeline_path))
    check_status(result)
    ws.close()
    return timed.outcome(*verify_target(task))


def with_mode(child: Callable[[dict[str, Any]], ChildOutcome], mode: str) -> Any:
    return lambda task: child({**task, "mode": mode})


CHILD_OPERATIONS: dict[str, Callable[[dict[str, Any]], ChildOutcome]] = {
    "adbc_read": adbc_read,
    "copy_append": copy_append,
    "cx_mariadb_read": cx_mariadb_read,
    "dlt_read": lambda task: dlt_read({**task, "source": "postgres"}),
    "dlt_mariadb_read": lambda task: dlt_read({**task, "source": "mariadb"}),
    "dlt_append": with_mode(dlt_write, "append"),
    "dlt_merge": with_mode(dlt_write, "merge"),
    "headwater_read": headwater_read,
    "headwater_read_ranges": headwater_read_ranges,
    "headwater_mariadb_read_ranges": headwater_mariadb_read_ranges,
    "headwater_mariadb_read": headwater_mariadb_read,
    "headwater_append": with_mode(headwater_load, "append"),
    "headwater_merge": with_mode(headwater_load, "merge"),
}


# --- parent ------------------------------------------------------------------------------------


def operation_label(op: Op, args: argparse.Namespace) -> str:
    """The operation as the table shows it, naming the peer's settings."""
    if op.tool == "copy":
        return f"{op.operation[:-1]} {args.copy_format})"
    if op.tool == "connectorx":
        return f"{op.operation} ({args.cx_return_type})"
    if op.tool == "dlt" and op.group in ("read", "mariadb"):
        return f"{op.operation} ({args.dlt_backend})"
    if op.tool == "dlt" and op.group == "merge":
        return f"{op.operation[:-1]}, {args.dlt_merge_strategy}, {args.dlt_load_format})"
    if op.tool == "dlt":
        return f"{op.operation[:-1]}, {args.dlt_load_format})"
    return op.operation


def print_targets(by_child: dict[str, Measurement]) -> None:
    """The Headwater-vs-reference ratios, each against the requirement's target where it has one."""
    table = Table(
        title="headwater vs peers and references (speed > 1: headwater faster; "
        "memory < 1: headwater leaner)",
        title_justify="left",
    )
    for name in ("comparison", "peer", "speed", "memory", "target", ""):
        table.add_column(name, justify="right" if name in ("speed", "memory") else "left")
    shown = 0
    for spec in RATIO_SPECS:
        subject, peer = by_child.get(spec.subject), by_child.get(spec.peer)
        if subject is None or peer is None:
            continue  # not selected with --tools / --only
        target = f">= {spec.target:g}x" if spec.target is not None else ""
        peer_text = f"{peer.tool} {peer.operation}"
        shown += 1
        if not (subject.ok and peer.ok):
            table.add_row(spec.label, peer_text, "-", "-", target, "[red]not measured[/red]")
            continue
        ratio = Ratio(subject.group, subject, peer)
        memory = f"{ratio.memory:.2f}x" if ratio.memory is not None else "-"
        verdict = ""
        if spec.target is not None:
            met = ratio.speedup >= spec.target
            verdict = "[green]met[/green]" if met else "[red]not met[/red]"
        table.add_row(spec.label, peer_text, f"{ratio.speedup:.2f}x", memory, target, verdict)
    headwater = [m for m in by_child.values() if m.tool == "headwater" and m.peak_rss_mb]
    if headwater:
        top = max(headwater, key=lambda m: m.peak_rss_mb or 0.0)
        rss = top.peak_rss_mb or 0.0
        met = rss < RSS_TARGET_MB
        table.add_row(
            "headwater peak RSS",
            f"max: {top.operation}",
            f"{rss:,.0f} MB",
            "",
            f"< {RSS_TARGET_MB:,} MB",
            "[green]met[/green]" if met else "[red]not met[/red]",
        )
        shown += 1
    if shown:
        console.print(table)
    else:
        console.print("[yellow]no ratios: no Headwater operation ran with its peer[/yellow]")


def group_list(text: str) -> list[str]:
    groups = [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(
            f"unknown operation group {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(GROUPS)}"
        )
    return list(dict.fromkeys(groups))


def parse_args() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0], DEFAULT_ROWS)
    parser.add_argument(
        "--tools",
        type=tool_list(TOOLS),
        default=list(TOOLS),
        help=f"comma-separated tools to run (default {','.join(TOOLS)})",
    )
    parser.add_argument(
        "--only",
        type=group_list,
        default=list(GROUPS),
        metavar="GROUPS",
        help="comma-separated operation groups to run: read (PostgreSQL -> dataset), append and "
        "merge (dataset -> PostgreSQL), mariadb (MariaDB -> dataset) (default all)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL database for the source table and the write targets; created if "
        "missing (default $HEADWATER_BENCH_PG_URL or postgresql://postgres@127.0.0.1:5432/"
        "headwater_bench)",
    )
    parser.add_argument(
        "--mariadb-url",
        default=DEFAULT_MARIADB_URL,
        help="MariaDB database for the mariadb group's source table; created if missing "
        "(default $HEADWATER_BENCH_MARIADB_URL or mysql://root@127.0.0.1:3306/headwater_bench)",
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
        help=f"dlt sql_database backend for the reads (default {DEFAULT_DLT_BACKEND})",
    )
    parser.add_argument(
        "--dlt-load-format",
        choices=DLT_LOAD_FORMATS,
        default=DEFAULT_DLT_LOAD_FORMAT,
        help="loader file format of dlt's postgres destination for the writes "
        f"(default {DEFAULT_DLT_LOAD_FORMAT})",
    )
    parser.add_argument(
        "--dlt-merge-strategy",
        choices=DLT_MERGE_STRATEGIES,
        default=DEFAULT_DLT_MERGE_STRATEGY,
        help=f"dlt merge strategy (default {DEFAULT_DLT_MERGE_STRATEGY})",
    )
    parser.add_argument(
        "--copy-format",
        choices=COPY_FORMATS,
        default=DEFAULT_COPY_FORMAT,
        help=f"format of the raw COPY reference (default {DEFAULT_COPY_FORMAT})",
    )
    parser.add_argument(
        "--cx-return-type",
        choices=CX_RETURN_TYPES,
        default=DEFAULT_CX_RETURN_TYPE,
        help=f"return type of the raw connectorx reference (default {DEFAULT_CX_RETURN_TYPE})",
    )
    return parser.parse_args()


def run_op(
    op: Op,
    args: argparse.Namespace,
    repeat: int,
    url: str,
    table: str,
    snapshot: Path,
    amounts: list[str],
    mariadb_table: str | None,
    scratch_root: Path,
) -> Measurement:
    """One measurement of ``op`` in a fresh child process, its target prepared and dropped."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{op.child}-", dir=scratch_root))
    operation = operation_label(op, args)
    label = f"[{repeat + 1}/{args.repeat}] {op.tool}: {operation}"
    target = None
    try:
        with console.status(f"{label} (preparing)"):
            target = prepare_target(url, args.rows, op.target)
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
                    "target_schema": target.schema if target else None,
                    "target": target.table if target else None,
                    "amounts": amounts,
                    "mariadb_url": args.mariadb_url,
                    "mariadb_table": mariadb_table,
                    "rows": args.rows,
                    "scratch": str(scratch),
                    "dlt_backend": args.dlt_backend,
                    "dlt_load_format": args.dlt_load_format,
                    "dlt_merge_strategy": args.dlt_merge_strategy,
                    "copy_format": args.copy_format,
                    "cx_return_type": args.cx_return_type,
                },
                env=CHILD_ENV,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if target:
            drop_target(url, target)
    return m


def main() -> int:
    args = parse_args()
    url = args.pg_url
    data_dir = args.data_dir.resolve()
    # Group by group, tools in the given order; the COPY reference also runs for merge alone.
    selected = [
        op
        for group in args.only
        for tool in args.tools
        for op in OPS
        if op.tool == tool and (op.group == group or group in op.reference_for)
    ]
    ops = list(dict.fromkeys(selected))
    if not ops:
        raise SystemExit(
            f"nothing to run: no operation of {', '.join(args.tools)} in {', '.join(args.only)}"
        )
    groups = {op.group for op in ops}

    ensure_database(url)
    table = ensure_table(url, args.rows)
    snapshot = ensure_snapshot(url, args.rows, data_dir)
    amounts = pg_amounts(url, table)
    with pg_connect(url) as con:
        size = con.execute(
            "SELECT pg_total_relation_size(to_regclass(%s))", (f"public.{table}",)
        ).fetchone()[0]
        server = con.execute("SHOW server_version").fetchone()[0].split()[0]
    mariadb_table, mariadb_text = None, ""
    if "mariadb" in groups:
        mariadb_table = ensure_mariadb_table(args.mariadb_url, args.rows, snapshot, amounts)
        con = MysqlCon(args.mariadb_url)
        version = con.execute("SELECT version()").fetchone()[0].split("-")[0]
        con.close()
        mariadb_text = (
            f"; MariaDB table {mariadb_table} on {safe_url(args.mariadb_url, 3306)} "
            f"(MariaDB {version})"
        )
    console.print(
        f"input: {args.rows:,} rows; public.{table} on {safe_url(url)} ({human_bytes(size)}, "
        f"PostgreSQL {server}); snapshot {snapshot.name} "
        f"({human_bytes(snapshot.stat().st_size)}){mariadb_text}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}",
        highlight=False,
    )
    scratch_root = data_dir / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)

    runs: dict[Op, list[Measurement]] = {op: [] for op in ops}
    for repeat in range(args.repeat):
        for op in ops:
            if sum(1 for m in runs[op] if m.error) >= 2:
                continue  # failed twice: do not spend more rounds on it
            for attempt in range(2):  # a failed round is run again once, in its place
                m = run_op(
                    op, args, repeat, url, table, snapshot, amounts, mariadb_table, scratch_root
                )
                if m.error is None or attempt:
                    break
                console.print(
                    f"[{repeat + 1}/{args.repeat}] {op.tool}: failed, once more: "
                    f"{m.error.splitlines()[0][:120]}",
                    highlight=False,
                )
            label = f"[{repeat + 1}/{args.repeat}] {op.tool}: {operation_label(op, args)}"
            outcome = f"{m.seconds:.2f} s, {m.peak_rss_mb:,.0f} MB" if m.error is None else m.error
            console.print(f"{label}: {outcome}", highlight=False)
            runs[op].append(m)

    # the median of the rounds that succeeded: on the shared machine another job's tests may
    # terminate every session of the server, failing a round through no fault of the tool
    medians = {op: median_of([m for m in r if m.error is None] or r) for op, r in runs.items() if r}
    results = list(medians.values())
    console.print()
    suffix = f", median of {args.repeat}" if args.repeat > 1 else ""
    print_results(results, title=f"Database throughput, {args.rows:,} rows{suffix}")
    print_targets({op.child: m for op, m in medians.items()})
    if args.json:
        write_json(args.json, results)
    return 0 if all(m.ok for m in results) else 1


if __name__ == "__main__":
    if is_child_invocation():
        sys.exit(child_main(CHILD_OPERATIONS))
    sys.exit(main())
