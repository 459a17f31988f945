"""``mode: merge`` of the mariadb destination: upsert on keys through a staging table.

1. The (conformed) Arrow stream is loaded with ``LOAD DATA LOCAL INFILE`` into a
   ``TEMPORARY`` staging table whose columns copy the target's types, character sets
   and collations, plus an ``AUTO_INCREMENT`` ordinal that numbers the rows in stream
   order. Temporary tables are private to the session, are created and dropped without
   committing, and vanish if the process dies. Null keys are refused while streaming.
2. Rows sharing a key are de-duplicated in SQL: the last occurrence in the stream wins
   (skipped when Arrow sees no repeated key and every key compares exactly).
3. With a soft-delete column, target rows matched by a staged row whose flag is true
   are deleted (``DELETE t FROM t JOIN staging``), and flagged rows are never inserted.
4. When the target has a primary or unique key on exactly the merge keys (and no other
   unique key the written columns could collide on): one
   ``INSERT INTO t (...) SELECT ... FROM staging ON DUPLICATE KEY UPDATE c = VALUES(c)``.
   Otherwise: ``UPDATE t JOIN staging ON keys SET ...`` then ``INSERT INTO t SELECT ...
   FROM staging WHERE NOT EXISTS (SELECT 1 FROM t WHERE keys match)``.

Everything runs in the write's InnoDB transaction (the ledger row too), so a failure
anywhere leaves the target as it was. Merges (and overwrites) of one table are
serialized by a ``GET_LOCK`` session lock, so two merges cannot both insert one key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.connectors.mariadb.catalog import Column, TableInfo
from headwater.connectors.mariadb.client import execute, fetch_all
from headwater.connectors.mariadb.factory import CONNECTOR
from headwater.connectors.mariadb.types import qualified, quote_ident
from headwater.connectors.server.merge_plan import check_merge_plan, fresh_name, null_key_error
from headwater.errors import SchemaIncompatibleError, choices_hint

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

    from headwater.connectors.mariadb.loading import Counter

__all__ = ["MergeSpec", "merge", "merge_spec"]


@dataclass(frozen=True)
class MergeSpec:
    keys: tuple[str, ...]
    soft_delete: str | None = None

    def resolved(self, dest: TableInfo, written: list[str]) -> MergeSpec:
        """The keys spelled as the table's columns; each must be written by this merge."""
        folded = {n.casefold(): n for n in written}
        keys = []
        for key in self.keys:
            column = dest.column(key)
            if column is None or column.name.casefold() not in folded:
                raise SchemaIncompatibleError(
                    f"Merge key {key!r} is not a column of {dest.database}.{dest.name}, so "
                    "rows cannot be matched. Nothing was written.",
                    connector=CONNECTOR,
                    column=key,
                    hint=choices_hint(key, [c.name for c in dest.columns], "columns"),
                )
            keys.append(column.name)
        return MergeSpec(tuple(keys), self.soft_delete)


def merge_spec(
    schema: pa.Schema, keys: list[str] | None, options: Mapping[str, Any] | None
) -> MergeSpec:
    """Check keys and options against the data's schema before connecting."""
    return MergeSpec(
        *check_merge_plan(schema, keys, options, connector=CONNECTOR, ignores_case="MariaDB")
    )


def merge(
    conn: Connection,
    target: TableInfo,
    spec: MergeSpec,
    batches: pa.RecordBatchReader,
    counter: Counter,
    *,
    created: bool = False,
) -> dict[str, Any]:
    """Merge ``batches`` into ``target`` inside the open transaction; returns the counts.

    ``created``: this write just created ``target`` (empty, its primary key the merge
    keys): with no soft-delete column the stream is loaded straight into it with
    ``LOAD DATA ... REPLACE``, which keeps the last occurrence of a key.
    """
    from headwater.connectors.mariadb.loading import load

    q = quote_ident
    incoming = batches.schema.names
    soft = None
    if spec.soft_delete is not None:
        soft = next((n for n in incoming if n.casefold() == spec.soft_delete.casefold()), None)
    flag_in_table = soft is not None and target.column(soft) is not None
    written = [
        target.column(n).name  # type: ignore[union-attr]
        for n in incoming
        if n != soft or flag_in_table
    ]
    if soft is not None and flag_in_table:
        soft = target.column(soft).name  # type: ignore[union-attr]
    t_table = qualified(target.database, target.name)
    if created and soft is None and _unique_on_keys(target, spec.keys, written):
        seen: list[pa.RecordBatch] = []
        load(conn, target, _checked(batches, spec.keys, seen), counter, replace=True)
        kept = _count(conn, f"SELECT COUNT(*) FROM {t_table}")
        return {
            "rows": kept,
            "keys": list(spec.keys),
            "inserted": kept,
            "updated": 0,
            "deleted": 0,
            "duplicates": counter.rows - kept,
            "merge_statement": "load data replace",
        }

    taken = {n.casefold() for n in incoming}
    seq = fresh_name("hw_seq", taken, ignores_case=True)
    matched = fresh_name("hw_matched", taken | {seq}, ignores_case=True)
    stage = f"hw_merge_{uuid.uuid4().hex[:12]}"
    stage_cols = [target.column(n) for n in written]
    defs = [f"{q(seq)} bigint NOT NULL AUTO_INCREMENT PRIMARY KEY"]
    defs += [f"{q(c.name)} {c.ddl} NULL" for c in stage_cols]  # type: ignore[union-attr]
    if soft is not None and not flag_in_table:
        stage_cols.append(Column(soft, "tinyint", "tinyint(1)", pa.int8(), True))
        defs.append(f"{q(soft)} tinyint(1) NULL")
    defs.append(f"{q(matched)} tinyint NOT NULL DEFAULT 0")
    # the keys are indexed in staging: every join below probes it instead of scanning
    defs.append(f"KEY `hw_keys` ({_key_parts(target, spec.keys)})")
    s_table = qualified(target.database, stage)
    execute(conn, f"CREATE TEMPORARY TABLE {s_table} ({', '.join(defs)}) ENGINE=InnoDB")
    info = TableInfo(target.database, stage, "TEMPORARY", tuple(stage_cols), (seq,))  # type: ignore[arg-type]
    seen = []
    load(conn, info, _checked(batches, spec.keys, seen), counter)
    staged = counter.rows

    keys = ", ".join(q(k) for k in spec.keys)
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in spec.keys)
    duplicates = 0
    if _may_repeat(seen, spec.keys, target):
        dups = qualified(target.database, f"{stage}_d")
        execute(
            conn,
            f"CREATE TEMPORARY TABLE {dups} ENGINE=InnoDB SELECT {keys}, MAX({q(seq)}) AS "
            f"{q(seq)} FROM {s_table} GROUP BY {keys} HAVING COUNT(*) > 1",
        )
        match = " AND ".join(f"s.{q(k)} = d.{q(k)}" for k in spec.keys)
        duplicates = execute(
            conn,
            f"DELETE s FROM {s_table} AS s JOIN {dups} AS d ON {match} "
            f"WHERE s.{q(seq)} < d.{q(seq)}",
        )
        execute(conn, f"DROP TEMPORARY TABLE {dups}")
    flagged = f"s.{q(soft)} <=> 1" if soft is not None else None
    keep = f"NOT ({flagged})" if flagged else "TRUE"
    flags = _count(conn, f"SELECT COUNT(*) FROM {s_table} AS s WHERE {flagged}") if flagged else 0
    deleted = 0
    if flagged:
        deleted = execute(
            conn, f"DELETE t FROM {t_table} AS t JOIN {s_table} AS s ON {on} WHERE {flagged}"
        )
    cols = ", ".join(q(n) for n in written)
    values = ", ".join(f"s.{q(n)}" for n in written)
    non_keys = [n for n in written if n not in spec.keys]
    if _unique_on_keys(target, spec.keys, written):
        method = "on duplicate key update"
        # new rows = the table's growth, read in this transaction's snapshot (rows other
        # sessions commit meanwhile are not in it); cheaper than probing every staged key
        before = _count(conn, f"SELECT COUNT(*) FROM {t_table}")
        if non_keys:
            sets = ", ".join(f"{q(n)} = VALUES({q(n)})" for n in non_keys)
        else:
            sets = ", ".join(f"{t_table}.{q(k)} = {t_table}.{q(k)}" for k in spec.keys)
        execute(
            conn,
            f"INSERT INTO {t_table} ({cols}) SELECT {values} FROM {s_table} AS s WHERE {keep} "
            f"ORDER BY s.{q(seq)} ON DUPLICATE KEY UPDATE {sets}",
        )
        inserted = _count(conn, f"SELECT COUNT(*) FROM {t_table}") - before
    else:
        # no unique key to probe: one UPDATE scans the target, probes the staging index,
        # updates the matched rows and marks their staged rows; the unmarked ones are new
        method = "update join"
        sets = ", ".join([f"t.{q(n)} = s.{q(n)}" for n in non_keys] + [f"s.{q(matched)} = 1"])
        execute(conn, f"UPDATE {t_table} AS t JOIN {s_table} AS s ON {on} SET {sets} WHERE {keep}")
        inserted = execute(
            conn,
            f"INSERT INTO {t_table} ({cols}) SELECT {values} FROM {s_table} AS s "
            f"WHERE {keep} AND s.{q(matched)} = 0 ORDER BY s.{q(seq)}",
        )
    execute(conn, f"DROP TEMPORARY TABLE {s_table}")
    rows = staged - duplicates
    return {
        "rows": rows,
        "keys": list(spec.keys),
        "inserted": inserted,
        "updated": max(0, rows - flags - inserted),
        "deleted": deleted,
        "duplicates": duplicates,
        "merge_statement": method,
    }


_INDEX_BYTES = 3072  # InnoDB's longest index key (DYNAMIC rows)
_PREFIXED = ("char", "varchar", "binary", "varbinary", "tinytext", "text", "mediumtext",
             "longtext", "tinyblob", "blob", "mediumblob", "longblob", "json")  # fmt: skip


def _key_parts(target: TableInfo, keys: tuple[str, ...]) -> str:
    """The staging index's columns; text and binary keys by a prefix that fits InnoDB."""
    share = _INDEX_BYTES // (4 * len(keys))  # characters per key, 4 bytes each (utf8mb4)
    parts = []
    for key in keys:
        column = target.column(key)
        part = quote_ident(key)
        if column is not None and column.data_type in _PREFIXED:
            sized = re.match(r"\w+\((\d+)\)", column.column_type)
            length = int(sized.group(1)) if sized else None  # char(n), varbinary(n), ...
            prefix = min(255, share)
            if length is None or length > prefix:
                part += f"({prefix})"
        parts.append(part)
    return ", ".join(parts)


def _count(conn: Connection, sql: str) -> int:
    return int(fetch_all(conn, sql)[0][0])


def _unique_on_keys(target: TableInfo, keys: tuple[str, ...], written: list[str]) -> bool:
    """A unique index on exactly ``keys``, and no other unique index the insert could hit."""
    wanted = {k.casefold() for k in keys}
    present = {n.casefold() for n in written}
    exact = False
    for index in target.unique_keys:
        columns = {c.casefold() for c in index}
        if columns == wanted:
            exact = True
        elif columns <= present:
            return False  # another unique key could collide: ON DUPLICATE KEY is ambiguous
    return exact


def _exact(column: Column | None) -> bool:
    """Whether equality on ``column`` is Arrow's equality (no case/accent folding)."""
    if column is None or column.collation is None:
        return True
    name = column.collation.lower()
    return name == "binary" or name.endswith(("_nopad_bin", "_0900_bin"))


def _may_repeat(seen: list[pa.RecordBatch], keys: tuple[str, ...], target: TableInfo) -> bool:
    """False when no key repeats in the stream (the SQL de-duplication pass is skipped).

    Text keys in any collation but a no-pad binary one always get the SQL pass: MariaDB
    may see two spellings Arrow tells apart (``'A'``/``'a'``, ``'a'``/``'a '``) as one key.
    """
    if not seen:
        return False
    if not all(_exact(target.column(k)) for k in keys):
        return True
    try:
        table = pa.Table.from_batches(seen)
        return bool(table.group_by(list(keys)).aggregate([]).num_rows != table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return True  # key types Arrow cannot group: let MariaDB find the duplicates


def _checked(
    batches: pa.RecordBatchReader, keys: tuple[str, ...], seen: list[pa.RecordBatch]
) -> pa.RecordBatchReader:
    """``batches`` with null keys refused; the key columns are kept in ``seen``."""
    names = batches.schema.names
    folded = {n.casefold(): n for n in names}
    columns = [folded[k.casefold()] for k in keys]

    def gen() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for key in columns:
                nulls = batch.column(key).null_count
                if nulls:
                    raise null_key_error(key, nulls, connector=CONNECTOR)
            seen.append(batch.select(columns))
            yield batch

    return pa.RecordBatchReader.from_batches(batches.schema, gen())
