"""DuckDB type names, classified once for every module that reasons about columns."""

from __future__ import annotations

__all__ = ["NUMERIC_TYPES", "is_numeric_type", "is_temporal_type"]

NUMERIC_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "FLOAT",
        "DOUBLE",
        "REAL",
    }
)


def is_numeric_type(duck_type: str) -> bool:
    """A number column: integers, floats and ``DECIMAL(p, s)`` (not lists of them)."""
    upper = duck_type.upper()
    return upper in NUMERIC_TYPES or (upper.startswith("DECIMAL") and not upper.endswith("]"))


def is_temporal_type(duck_type: str) -> bool:
    """A date, time or timestamp column (with or without time zone)."""
    upper = duck_type.upper()
    return upper in ("DATE", "TIME") or (upper.startswith("TIMESTAMP") and not upper.endswith("]"))
