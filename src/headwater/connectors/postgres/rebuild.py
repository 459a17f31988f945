"""The ``rebuild`` strategy of a postgres ``mode: merge``: build a new table, swap it in.

Rewriting rows in place costs PostgreSQL about as much per row however it is phrased
(``UPDATE``, ``DELETE`` + ``INSERT``, ``MERGE``): every updated row leaves a dead tuple
and a new one plus an entry in each index. When the batch is a large share of the target
it is cheaper to write a fresh table: the incoming rows (staged and de-duplicated, or
copied straight in when their keys are known distinct), then the target's rows whose key
is not incoming, then the indexes once (dropped from the empty ``LIKE`` copy, created again
when it is full), and to swap it in by ``RENAME`` like an overwrite does, all in the
merge's transaction.

``auto`` (the default) rebuilds when the staged rows are at least :data:`REBUILD_SHARE`
of the target's estimated rows, the target holds at least :data:`REBUILD_MIN_ROWS` rows,
and nothing else depends on the table (see :func:`blockers`); else it merges in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.connectors.postgres.catalog import TableInfo
from headwater.connectors.postgres.client import fetch_all
from headwater.connectors.postgres.factory import CONNECTOR
from headwater.connectors.postgres.types import qualified, quote_ident
from headwater.crashpoints import crash_point
from headwater.errors import ConfigError, UnsupportedOperationError, choices_hint

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = ["REBUILD_MIN_ROWS", "REBUILD_SHARE", "STRATEGIES", "check_strategy", "choose", "rebuild"]

STRATEGIES = ("auto", "merge", "rebuild")
REBUILD_SHARE = 0.4  # staged rows / target rows from which auto rebuilds
REBUILD_MIN_ROWS = 100_000  # below this, merging in place is cheap whatever the share
_COUNT_BELOW = 1_000_000  # an estimate under this is replaced by an exact count
_MAINTENANCE_WORK_MEM = "256MB"  # sort memory of the index builds, for the transaction

# the new table's indexes (and the primary key, unique and exclusion constraints they
# back) as the SQL that recreates them, with their comments; constraints first
_INDEX_DEFS = """
SELECT 'c', k.conname, pg_catalog.pg_get_constraintdef(k.oid),
       pg_catalog.obj_description(k.oid, 'pg_constraint'),
       pg_catalog.obj_description(k.conindid, 'pg_class')
FROM pg_catalog.pg_constraint k
WHERE k.conrelid = $1::regclass AND k.contype IN ('p', 'u', 'x')
UNION ALL
SELECT 'i', c.relname, pg_catalog.pg_get_indexdef(i.indexrelid),
       NULL, pg_catalog.obj_description(i.indexrelid, 'pg_class')
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1::regclass AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_constraint k
    WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
"""

# what refers to a table and survives (or is recreated by) CREATE TABLE ... (LIKE ...):
# its row type, toast table, indexes, defaults, and its own check/unique/primary/
# exclusion/not-null constraints; anything else (views, foreign keys either way,
# owned sequences, triggers, rules, policies, publications, extended statistics, ...)
# would be lost or would make the DROP fail, so the merge stays in place
_BLOCKERS = """
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_catalog.pg_depend d
WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::regclass
  AND d.deptype IN ('n', 'a', 'i')
  AND d.classid <> 'pg_catalog.pg_type'::regclass
  AND d.classid <> 'pg_catalog.pg_attrdef'::regclass
  AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.objid AND c.relkind IN ('i', 't')))
  AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid
      AND k.conrelid = $1::regclass AND k.contype IN ('c', 'p', 'u', 'x', 'n')))
UNION ALL
SELECT 'foreign key ' || quote_ident(k.conname) || ' of table ' || k.conrelid::regclass::text
FROM pg_catalog.pg_constraint k WHERE k.confrelid = $1::regclass
UNION ALL
SELECT 'table options (' || array_to_string(c.reloptions, ', ') || ')'
FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass AND c.reloptions IS NOT NULL
UNION ALL
SELECT 'privileges granted on it' FROM pg_catalog.pg_class c
WHERE c.oid = $1::regclass AND c.relacl IS NOT NULL
UNION ALL
SELECT 'row-level security' FROM pg_catalog.pg_class c
WHERE c.oid = $1::regclass AND (c.relrowsecurity OR c.relforcerowsecurity)
UNION ALL
SELECT 'an unlogged or temporary table' FROM pg_catalog.pg_class c
WHERE c.oid = $1::regclass AND c.relpersistence <> 'p'
UNION ALL
SELECT 'a tablespace of its own' FROM pg_catalog.pg_class c
WHERE c.oid = $1::regclass AND c.reltablespace <> 0
UNION ALL
SELECT 'an owner other than the loading user' FROM pg_catalog.pg_class c
WHERE c.oid = $1::regclass AND c.relowner <> (
    SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
UNION ALL
SELECT 'inheritance (' || i.inhrelid::regclass::text || ' inherits '
       || i.inhparent::regclass::text || ')'
FROM pg_catalog.pg_inherits i WHERE $1::regclass IN (i.inhrelid, i.inhparent)
"""


def check_strategy(value: Any) -> str:
    """The ``merge_strategy`` option, checked before connecting."""
    if value is None:
        return "auto"
    if value not in STRATEGIES:
        raise ConfigError(
            f"merge_strategy {value!r} is not one of auto, merge, rebuild.",
            connector=CONNECTOR,
            field="options.merge_strategy",
            hint=choices_hint(str(value), STRATEGIES, "strategies"),
        )
    return str(value)


def blockers(conn: Connection, target: TableInfo, written: list[str]) -> list[str]:
    """Why ``target`` cannot be rebuilt (empty when it can)."""
    table = qualified(target.schema, target.name)
    reasons = []
    if target.kind != "r":
        reasons.append("a partitioned table")
    missing = [c.name for c in target.columns if c.name not in written]
    if missing:
        reasons.append(f"the data lacks the table's column(s) {', '.join(missing)}")
    if target.kind == "r":
        reasons.extend(str(r[0]) for r in fetch_all(conn, _BLOCKERS, (table,)))
    return reasons


def choose(
    conn: Connection, strategy: str, target: TableInfo, written: list[str], staged: int
) -> tuple[str, str | None]:
    """(``merge`` or ``rebuild``, why) for ``staged`` incoming rows into ``target``."""
    if strategy == "merge":
        return "merge", None
    reasons = blockers(conn, target, written)
    if strategy == "rebuild":
        if reasons:
            raise UnsupportedOperationError(
                f"merge_strategy: rebuild cannot replace {target.schema}.{target.name}: "
                f"{'; '.join(reasons)}. Nothing was written.",
                connector=CONNECTOR,
                hint="Use merge_strategy: merge (or auto, which merges in place then).",
            )
        return "rebuild", "merge_strategy: rebuild"
    if reasons:
        return "merge", "rebuild impossible: " + "; ".join(reasons)
    table = qualified(target.schema, target.name)
    estimate = float(
        fetch_all(
            conn, "SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1::regclass", (table,)
        )[0][0]
    )
    if estimate < _COUNT_BELOW:  # never analyzed (-1) or small: count exactly
        estimate = float(fetch_all(conn, f"SELECT count(*) FROM {table}")[0][0])
    if estimate < REBUILD_MIN_ROWS:
        return "merge", f"the table holds fewer than {REBUILD_MIN_ROWS:,} rows"
    share = staged / estimate
    if share < REBUILD_SHARE:
        return "merge", f"the batch is {share:.0%} of the table's rows (< {REBUILD_SHARE:.0%})"
    return "rebuild", f"the batch is {share:.0%} of the table's rows (>= {REBUILD_SHARE:.0%})"


def rebuild(
    conn: Connection,
    target: TableInfo,
    keys: tuple[str, ...],
    fill: Callable[[TableInfo], int],
    stage: str | None,
) -> tuple[int, int, int]:
    """Replace ``target`` by incoming rows + its rows with no incoming key, in the transaction.

    ``fill`` writes the incoming rows into the new, index-less table (a :class:`TableInfo`
    of it) and returns how many it wrote; their keys must not repeat. The target's rows
    whose key is not among them are added with an anti-join against ``stage`` (a table of
    ``pg_temp`` holding the incoming keys) or, when None, against the new table itself.
    Returns (rows written by ``fill``, rows kept from the old table, rows of the old table).
    """
    from headwater.connectors.postgres.destination import _execute, _index_renames
    from headwater.connectors.postgres.merge import _count, _rowcount

    q = quote_ident
    old = qualified(target.schema, target.name)
    new_name = f"hw_rebuild_{uuid.uuid4().hex[:12]}"
    new = qualified(target.schema, new_name)
    cols = ", ".join(q(c.name) for c in target.columns)
    t_cols = ", ".join(f"t.{q(c.name)}" for c in target.columns)
    s_table = qualified("pg_temp", stage) if stage is not None else new
    on = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in keys)
    _execute(
        conn,
        f"CREATE TABLE {new} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING INDEXES INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION)",
    )
    # the copied indexes are dropped while the table is empty and built once it is full:
    # one sort per index instead of one insertion per row and index
    deferred = _without_indexes(conn, target.schema, new_name)
    added = fill(TableInfo(target.schema, new_name, "r", target.columns, ()))
    if stage is None:  # the planner sees the new table's size, not its keys' spread
        _execute(conn, f"ANALYZE {new} ({', '.join(q(k) for k in keys)})")
    old_rows = _count(conn, f"SELECT count(*) FROM {old}")
    # a statement does not see its own inserts: with stage None, s is the incoming rows only
    kept = _rowcount(
        conn,
        f"INSERT INTO {new} ({cols}) SELECT {t_cols} FROM {old} t "
        f"WHERE NOT EXISTS (SELECT 1 FROM {s_table} s WHERE {on})",
    )
    if deferred:
        _execute(conn, f"SET LOCAL maintenance_work_mem = '{_MAINTENANCE_WORK_MEM}'")
    for sql in deferred:
        _execute(conn, sql)
    crash_point("load.during_swap")
    renames = _index_renames(conn, target.schema, target.name, new_name)
    _execute(conn, f"DROP TABLE {old}")
    _execute(conn, f"ALTER TABLE {new} RENAME TO {q(target.name)}")
    for name, was in renames:  # the new indexes (and their constraints) get the old names
        _execute(conn, f"ALTER INDEX {qualified(target.schema, name)} RENAME TO {q(was)}")
    _execute(conn, f"ANALYZE {old}")  # the new table has no statistics yet
    return added, kept, old_rows


def _without_indexes(conn: Connection, schema: str, name: str) -> list[str]:
    """Drop the (empty) table's indexes; returns the SQL that recreates them as they were."""
    from headwater.connectors.postgres.destination import _execute

    q = quote_ident
    table = qualified(schema, name)
    drops: list[str] = []
    creates: list[str] = []
    for kind, index, sql, con_comment, idx_comment in fetch_all(conn, _INDEX_DEFS, (table,)):
        if kind == "c":
            drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {q(str(index))}")
            creates.append(f"ALTER TABLE {table} ADD CONSTRAINT {q(str(index))} {sql}")
            if con_comment is not None:
                creates.append(
                    f"COMMENT ON CONSTRAINT {q(str(index))} ON {table} IS {_literal(con_comment)}"
                )
        else:
            drops.append(f"DROP INDEX {qualified(schema, str(index))}")
            creates.append(str(sql))
        if idx_comment is not None:
            creates.append(
                f"COMMENT ON INDEX {qualified(schema, str(index))} IS {_literal(idx_comment)}"
            )
    for sql in drops:
        _execute(conn, sql)
    return creates


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"
