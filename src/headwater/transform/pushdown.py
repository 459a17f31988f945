"""Push a SQL transform down to the database its tables live in.

A `transform` step with `connection:` naming a SQL database (PostgreSQL, MariaDB/MySQL,
SQLite or a DuckDB file) runs there: its SQL, written in DuckDB's dialect like every
Headwater query, is transpiled by sqlglot and executed as ``CREATE TABLE ... AS`` (mode
``overwrite``) or ``INSERT INTO ... SELECT`` (mode ``append``), so no row leaves the
database.

Transpiling is refused, with the construct named, when sqlglot reports a feature the
target lacks or when the construct is one whose transpiled form is known to differ in
meaning (``QUALIFY`` together with ``LIMIT``/``ORDER BY``: sqlglot moves them into the
subquery; ``SELECT * EXCLUDE``; ``UNION BY NAME``; list literals outside DuckDB and
PostgreSQL). Running different SQL than what was written is never an option.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import sqlglot
from sqlglot import ErrorLevel, exp

from headwater.errors import QueryError, UnsupportedOperationError

__all__ = ["DIALECTS", "PushdownResult", "run_pushdown", "transpile"]

#: connector name -> sqlglot dialect
DIALECTS = {"postgres": "postgres", "mariadb": "mysql", "sqlite": "sqlite", "duckdb": "duckdb"}


@dataclass(frozen=True)
class PushdownResult:
    """What a pushed-down transform did: the table written, rows, the SQL that ran."""

    table: str
    rows: int
    sql: str
    dialect: str


def _refuse(construct: str, dialect: str, why: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"cannot push `{construct}` down to {dialect}: {why}",
        hint="Rewrite the query without it (a subquery with row_number() instead of "
        "QUALIFY, explicit column lists instead of EXCLUDE), or drop `connection:` to run "
        "the transform in DuckDB over lake datasets.",
    )


def _check_constructs(tree: exp.Expr, dialect: str) -> None:
    if dialect == "duckdb":
        return
    for select in tree.find_all(exp.Select):
        if select.args.get("qualify") is not None and (
            select.args.get("limit") is not None or select.args.get("order") is not None
        ):
            raise _refuse(
                "QUALIFY ... LIMIT/ORDER BY",
                dialect,
                "sqlglot rewrites QUALIFY as a subquery and moves LIMIT/ORDER BY into it, "
                "which changes the result",
            )
    for star in tree.find_all(exp.Star):
        for arg in ("except_", "except", "replace", "rename"):
            if star.args.get(arg):
                raise _refuse("SELECT * EXCLUDE/REPLACE", dialect, "only DuckDB has it")
    for union in tree.find_all(exp.Union):
        if union.args.get("by_name"):
            raise _refuse("UNION BY NAME", dialect, "only DuckDB has it")
    if dialect in ("mysql", "sqlite") and tree.find(exp.Array) is not None:
        raise _refuse("list literals", dialect, f"{dialect} has no list type")


def _postgres_round(node: exp.Expr) -> exp.Expr:
    """PostgreSQL has round(numeric, int) only: DuckDB's round(double, n) needs a cast."""
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        node.set("this", exp.cast(node.this, exp.DataType.build("DECIMAL")))
    return node


#: small rewrites applied (in order) before generating SQL for a dialect
REWRITES: dict[str, list[Callable[[exp.Expr], exp.Expr]]] = {
    "postgres": [_postgres_round],
}


def transpile(sql: str, dialect: str) -> str:
    """``sql`` (DuckDB dialect, one query) in ``dialect``; refuses what would change meaning."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"invalid SQL: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise QueryError("a pushed-down transform must be exactly one query (SELECT, WITH, ...)")
    tree: exp.Expr = statements[0]
    _check_constructs(tree, dialect)
    for rewrite in REWRITES.get(dialect, []):
        tree = tree.transform(rewrite)
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise _refuse(type(tree).__name__.upper(), dialect, str(exc).splitlines()[0]) from None


# --------------------------------------------------------------------------- execution


def _quote(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)  # type: ignore[no-any-return]


def _table_name(target: str, dialect: str) -> tuple[str, str, str]:
    """(schema, table, quoted full name) of ``schema.table``."""
    schema, _, table = target.partition(".")
    return schema, table, f"{_quote(schema, dialect)}.{_quote(table, dialect)}"


@contextmanager
def _connect(connector: str, config: Any) -> Iterator[Any]:
    """A DB-API connection for the connection's database, closed afterwards."""
    if connector == "postgres":
        import psycopg

        with psycopg.connect(config.libpq_url) as pg:
            yield pg
    elif connector == "mariadb":
        import pymysql  # type: ignore[import-untyped]

        conn: Any = pymysql.connect(
            host=config.host,
            port=config.port,
            user=config.user,
            password=config.password,
            database=config.database,
            autocommit=False,
        )
        try:
            yield conn
        finally:
            conn.close()
    elif connector == "sqlite":
        lite: Any = sqlite3.connect(str(config.file), isolation_level=None)
        try:
            yield lite
        finally:
            lite.close()
    elif connector == "duckdb":
        import duckdb

        duck: Any = duckdb.connect(str(config.file), config={"autoinstall_known_extensions": False})
        try:
            yield duck
        finally:
            duck.close()
    else:
        raise UnsupportedOperationError(
            f"connector `{connector}` cannot run transforms",
            connector=connector,
            hint="Push-down works with connections of type " + ", ".join(DIALECTS) + ".",
        )


def _exists(cur: Any, connector: str, schema: str, table: str) -> bool:
    if connector == "sqlite":
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    elif connector == "postgres" or connector == "mariadb":
        cur.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
    else:
        cur.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
    return cur.fetchone() is not None


def run_pushdown(
    connector: str,
    config: Any,
    sql: str,
    target: str,
    *,
    mode: Literal["overwrite", "append"] = "overwrite",
) -> PushdownResult:
    """Run ``sql`` (DuckDB dialect) in the connection's database into table ``target``.

    ``target`` is ``schema.table`` (for SQLite the schema is ``main``; for MariaDB it is
    the database). ``overwrite`` builds the new table under a temporary name and swaps it
    in, so readers see the old or the new table; ``append`` inserts (creating the table
    when it does not exist).
    """
    dialect = DIALECTS.get(connector)
    if dialect is None:
        raise UnsupportedOperationError(
            f"connector `{connector}` cannot run transforms",
            connector=connector,
            hint="Push-down works with connections of type " + ", ".join(DIALECTS) + ".",
        )
    query = transpile(sql, dialect)
    schema, table, full = _table_name(target, dialect)
    if connector == "sqlite" and schema != "main":
        raise UnsupportedOperationError(
            f"SQLite has no schema `{schema}`: write to `main.{table}`",
            connector=connector,
            field="to",
        )
    staging = f"{table}__hw_new"
    staged = f"{_quote(schema, dialect)}.{_quote(staging, dialect)}"
    with _connect(connector, config) as conn:
        # DuckDB runs statements on the connection; the others through a cursor
        cur = conn if connector == "duckdb" else conn.cursor()
        try:
            if connector in ("postgres", "duckdb"):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema, dialect)}")
            exists = _exists(cur, connector, schema, table)
            if mode == "append" and exists:
                _begin(cur, connector)
                before = _count(cur, full)
                cur.execute(f"INSERT INTO {full} {query}")
                rows = _count(cur, full) - before
                _commit(conn, cur, connector)
            else:
                cur.execute(f"DROP TABLE IF EXISTS {staged}")
                cur.execute(f"CREATE TABLE {staged} AS {query}")
                _begin(cur, connector)
                if connector == "mariadb":  # RENAME TABLE swaps atomically
                    old = f"{_quote(schema, dialect)}.{_quote(table + '__hw_old', dialect)}"
                    if exists:
                        cur.execute(f"DROP TABLE IF EXISTS {old}")
                        cur.execute(f"RENAME TABLE {full} TO {old}, {staged} TO {full}")
                        cur.execute(f"DROP TABLE {old}")
                    else:
                        cur.execute(f"RENAME TABLE {staged} TO {full}")
                else:
                    cur.execute(f"DROP TABLE IF EXISTS {full}")
                    cur.execute(f"ALTER TABLE {staged} RENAME TO {_quote(table, dialect)}")
                _commit(conn, cur, connector)
                rows = _count(cur, full)
        except Exception as exc:
            _rollback(conn, cur, connector)
            if isinstance(exc, UnsupportedOperationError | QueryError):
                raise
            raise QueryError(
                f"{connector} refused the pushed-down transform: "
                f"{str(exc).strip().splitlines()[0]}",
                connector=connector,
                sql=query if len(query) < 2000 else None,
            ) from None
    return PushdownResult(target, rows, query, dialect)


def _count(cur: Any, full: str) -> int:
    cur.execute(f"SELECT count(*) FROM {full}")
    return int(cur.fetchone()[0])


def _begin(cur: Any, connector: str) -> None:
    # PostgreSQL and MariaDB drivers open a transaction by themselves
    if connector in ("sqlite", "duckdb"):
        cur.execute("BEGIN TRANSACTION")


def _commit(conn: Any, cur: Any, connector: str) -> None:
    if connector in ("sqlite", "duckdb"):
        cur.execute("COMMIT")
    else:
        conn.commit()


def _rollback(conn: Any, cur: Any, connector: str) -> None:
    try:
        if connector in ("sqlite", "duckdb"):
            cur.execute("ROLLBACK")
        else:
            conn.rollback()
    except Exception:  # no transaction open: nothing to undo
        return
