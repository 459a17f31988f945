"""Tables, columns and primary keys from pg_catalog, with their Arrow types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.connectors.postgres.client import fetch_all
from headwater.connectors.postgres.types import arrow_type, read_cast

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection  # type: ignore[import-untyped]

__all__ = ["Column", "TableInfo", "list_tables", "table_info"]

# one row per column of every table, view and materialized view the user can see; a domain
# column is described by its base type (its values are the base type's)
_COLUMNS = """
SELECT n.nspname, c.relname, c.relkind::text, a.attname, a.attnum,
       coalesce(bt.typname, t.typname),
       coalesce(bt.typtype, t.typtype)::text, coalesce(et.typname, ''),
       CASE WHEN bt.oid IS NULL THEN a.atttypmod ELSE t.typtypmod END, a.attnotnull,
       format_type(a.atttypid, a.atttypmod), coalesce(et.typtype, '')::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_catalog.pg_type et ON coalesce(bt.typcategory, t.typcategory) = 'A'
  AND et.oid = coalesce(bt.typelem, t.typelem)
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND n.nspname NOT LIKE 'pg_temp%' AND has_schema_privilege(n.oid, 'USAGE')
  {filter}
ORDER BY n.nspname, c.relname, a.attnum
"""

_KEYS = """
SELECT n.nspname, c.relname, a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary {filter}
ORDER BY n.nspname, c.relname, k.ord
"""


@dataclass(frozen=True)
class Column:
    name: str
    typname: str
    pg_type: str
    arrow: pa.DataType
    nullable: bool
    is_enum: bool = False
    read_cast: str = ""
    """SQL cast a read applies so ADBC hands over the mapped Arrow type (``::text``, ...)."""


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    kind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow, c.nullable) for c in self.columns])


def _column(row: tuple[object, ...]) -> Column:
    _, _, _, name, _, typname, typtype, element, typmod, notnull, formatted, elem_type = row
    elem = str(element) or None
    arrow = arrow_type(str(typname), int(str(typmod)), elem)
    is_enum = typtype == "e"
    cast = read_cast(
        str(typname),
        elem,
        is_enum=is_enum,
        element_is_enum=elem_type == "e",
        typmod=int(str(typmod)),
    )
    return Column(str(name), str(typname), str(formatted), arrow, not notnull, is_enum, cast)


def _collect(conn: Connection, where: str, params: tuple[str, ...]) -> list[TableInfo]:
    rows = fetch_all(conn, _COLUMNS.format(filter=where), params)
    keys: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in fetch_all(conn, _KEYS.format(filter=where), params):
        keys.setdefault((str(schema), str(table)), []).append(str(column))
    tables: dict[tuple[str, str], tuple[str, list[Column]]] = {}
    for row in rows:
        key = (str(row[0]), str(row[1]))
        tables.setdefault(key, (str(row[2]), []))[1].append(_column(row))
    return [
        TableInfo(s, t, kind, tuple(cols), tuple(keys.get((s, t), ())))
        for (s, t), (kind, cols) in tables.items()
    ]


def list_tables(conn: Connection, schema: str | None = None) -> list[TableInfo]:
    if schema is None:
        return _collect(conn, "", ())
    return _collect(conn, "AND n.nspname = $1", (schema,))


def table_info(conn: Connection, schema: str, table: str) -> TableInfo | None:
    found = _collect(conn, "AND n.nspname = $1 AND c.relname = $2", (schema, table))
    return found[0] if found else None
