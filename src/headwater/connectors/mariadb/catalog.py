"""Tables, columns and unique keys of a MariaDB/MySQL database, from ``information_schema``.

Column names are compared case-insensitively by MariaDB (``Id`` and ``id`` are the same
column), so lookups here fold case; table names follow the server's
``lower_case_table_names`` and are matched exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.connectors.mariadb.client import fetch_all
from headwater.connectors.mariadb.types import arrow_type

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

__all__ = ["Column", "TableInfo", "list_tables", "table_info"]

_COLUMNS = """
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.CHARACTER_SET_NAME,
       c.COLLATION_NAME
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = %s {filter}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""

_UNIQUE = """
SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0 {filter}
ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX
"""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    column_type: str
    arrow: pa.DataType | None  # None: not mapped, left as the driver yields it
    nullable: bool
    charset: str | None = None
    collation: str | None = None

    @property
    def ddl(self) -> str:
        """The column's type as DDL (``varchar(20) CHARACTER SET x COLLATE y``), nullable."""
        text = self.column_type
        if self.charset and self.collation:
            text += f" CHARACTER SET {_word(self.charset)} COLLATE {_word(self.collation)}"
        return text

    @property
    def is_binary(self) -> bool:
        return self.data_type in ("binary", "varbinary") or "blob" in self.data_type


def _word(name: str) -> str:
    """A charset/collation name from the catalog (letters, digits, underscores only)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected character set or collation name {name!r}")
    return name


@dataclass(frozen=True)
class TableInfo:
    database: str
    name: str
    kind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...] = ()
    """Every unique index (the primary key first), as column-name tuples."""

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow or pa.string(), c.nullable) for c in self.columns]
        )

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-insensitive, as MariaDB compares names)."""
        folded = name.casefold()
        for c in self.columns:
            if c.name == name:
                return c
        for c in self.columns:
            if c.name.casefold() == folded:
                return c
        return None


def _collect(conn: Connection, database: str, table: str | None) -> list[TableInfo]:
    where = " AND c.TABLE_NAME = %s" if table is not None else ""
    params = (database, table) if table is not None else (database,)
    rows = fetch_all(conn, _COLUMNS.format(filter=where), params)
    uniques: dict[str, dict[str, list[str]]] = {}
    key_filter = " AND TABLE_NAME = %s" if table is not None else ""
    for name, index, column in fetch_all(conn, _UNIQUE.format(filter=key_filter), params):
        uniques.setdefault(str(name), {}).setdefault(str(index), []).append(str(column))
    tables: dict[str, tuple[str, list[Column]]] = {}
    for row in rows:
        _db, name, kind, col, data_type, column_type, prec, scale, nullable, cs, coll = row
        arrow = arrow_type(str(data_type), str(column_type), prec, scale)
        column = Column(
            str(col),
            str(data_type).lower(),
            str(column_type),
            arrow,
            nullable == "YES",
            str(cs) if cs else None,
            str(coll) if coll else None,
        )
        tables.setdefault(str(name), (str(kind), []))[1].append(column)
    out = []
    for name, (kind, cols) in tables.items():
        indexes = uniques.get(name, {})
        primary = tuple(indexes.get("PRIMARY", ()))
        out.append(
            TableInfo(
                database,
                name,
                kind,
                tuple(cols),
                primary,
                tuple(tuple(v) for v in indexes.values()),
            )
        )
    return out


def list_tables(conn: Connection, database: str) -> list[TableInfo]:
    return _collect(conn, database, None)


def table_info(conn: Connection, database: str, table: str) -> TableInfo | None:
    found = _collect(conn, database, table)
    return found[0] if found else None
