"""The ``_headwater_loads`` ledger: which load ids a database has committed (exactly-once).

One row per committed load, in the target's database::

    load_id       varchar(128) PRIMARY KEY   the id the engine gave the write
    target_table  varchar(1024)              the table written
    mode          varchar(16)                append / overwrite / merge
    rows          bigint                     rows the write reported
    committed_at  timestamp(6)               UTC (sessions run in UTC)

An append or merge inserts its row in the same InnoDB transaction as the data, so
either both are committed or neither. An overwrite cannot: ``RENAME TABLE`` commits by
itself in MariaDB, so the row is inserted right after the swap (a crash in between
leaves the new table without its ledger row; the rerun overwrites again with the same
rows, which is the same end state). Two writers racing with the same load id: the
second one's insert waits for the first's commit and fails on the primary key; the
write is then rolled back and reported as already loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.connectors.mariadb.client import execute, fetch_all
from headwater.connectors.mariadb.types import qualified
from headwater.errors import ConfigError

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["DUPLICATE_KEY", "LEDGER", "check_load_id", "ensure", "record", "recorded"]

LEDGER = "_headwater_loads"
DUPLICATE_KEY = 1062
_EXISTS = 1050

_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    "`load_id` varchar(128) NOT NULL PRIMARY KEY, "
    "`target_table` varchar(1024) NOT NULL, "
    "`mode` varchar(16) NOT NULL, "
    "`rows` bigint NOT NULL, "
    "`committed_at` timestamp(6) NULL DEFAULT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}"
)


def check_load_id(load_id: str | None) -> str | None:
    """``load_id`` if it is usable as a ledger key, else a ConfigError."""
    if load_id is None:
        return None
    if not isinstance(load_id, str) or not 0 < len(load_id) <= 128:
        raise ConfigError(
            f"load_id must be a string of 1 to 128 characters, got {load_id!r}.",
            connector="mariadb",
            field="load_id",
        )
    return load_id


def ensure(conn: Connection, database: str, collation: str) -> None:
    """Create the ledger table if it is missing (DDL: commits by itself; races are fine)."""
    try:
        execute(conn, _DDL.format(table=qualified(database, LEDGER), collation=collation))
    except Exception as exc:
        if getattr(exc, "args", (None,))[0] != _EXISTS:  # another writer created it just now
            raise
    conn.commit()


def recorded(conn: Connection, database: str, load_id: str) -> int | None:
    """The row count recorded for ``load_id``, or None when it was never committed."""
    rows = fetch_all(
        conn,
        f"SELECT `rows` FROM {qualified(database, LEDGER)} WHERE `load_id` = %s",
        (load_id,),
    )
    return int(rows[0][0]) if rows else None


def record(
    conn: Connection, database: str, load_id: str, target: str, mode: str, rows: int
) -> None:
    """Insert the ledger row inside the open transaction (fails on a duplicate load id)."""
    execute(
        conn,
        f"INSERT INTO {qualified(database, LEDGER)} "
        "(`load_id`, `target_table`, `mode`, `rows`, `committed_at`) "
        "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (load_id, target, mode, rows),
    )
