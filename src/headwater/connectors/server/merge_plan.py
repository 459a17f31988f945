"""Checks of ``mode: merge`` keys and options against the data's schema (no connection)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from headwater.errors import ConfigError, SchemaIncompatibleError, choices_hint

__all__ = ["MERGE_OPTIONS", "check_merge_plan", "fresh_name", "null_key_error"]

MERGE_OPTIONS = ("soft_delete_column",)


def check_merge_plan(
    schema: pa.Schema,
    keys: list[str] | None,
    options: Mapping[str, Any] | None,
    *,
    connector: str,
    ignores_case: str | None = None,
    extra_options: tuple[str, ...] = (),
) -> tuple[tuple[str, ...], str | None]:
    """The merge keys and soft-delete column, checked against ``schema`` before connecting.

    ``ignores_case``: the server's name (``"MariaDB"``) when its column names ignore case;
    keys and the data's columns are then compared case-folded. ``extra_options``: the
    connector's own merge options (already taken out of ``options``), named in the hint of
    an unknown one.
    """
    opts = dict(options or {})
    soft = opts.pop("soft_delete_column", None)
    if opts:
        name = sorted(opts)[0]
        raise ConfigError(
            f"Unknown write option {name!r} for a {connector} merge.",
            connector=connector,
            hint=choices_hint(name, (*MERGE_OPTIONS, *extra_options), "options"),
        )
    if not keys:
        raise ConfigError(
            f"mode: merge on {connector} needs the key columns that identify a row.",
            connector=connector,
            hint="Set `keys: [id]` (one or more columns) on the load step.",
        )
    names = schema.names
    for key in keys:
        if not isinstance(key, str) or key not in names:
            raise ConfigError(
                f"Merge key {key!r} is not a column of the data.",
                connector=connector,
                column=str(key),
                hint=choices_hint(str(key), names, "columns"),
            )
    if len({_fold(k, ignores_case) for k in keys}) != len(keys):
        raise ConfigError(
            f"Merge keys {keys!r} name a column twice.",
            connector=connector,
            hint="List each key column once"
            + (f" ({ignores_case} column names ignore case)." if ignores_case else "."),
        )
    if len({_fold(n, ignores_case) for n in names}) != len(names):
        same = f" ({ignores_case} ignores case in column names)" if ignores_case else ""
        raise ConfigError(
            f"The data has two columns with the same name{same}; a merge cannot tell them apart.",
            connector=connector,
            hint="Rename or drop the duplicate column in a transform.",
        )
    if soft is not None:
        if not isinstance(soft, str) or soft not in names:
            raise ConfigError(
                f"soft_delete_column {soft!r} is not a column of the data.",
                connector=connector,
                column=str(soft),
                hint=choices_hint(str(soft), names, "columns"),
            )
        if soft in keys:
            raise ConfigError(
                f"soft_delete_column {soft!r} is also a merge key.",
                connector=connector,
                column=soft,
                hint="The soft-delete column is a boolean flag, not part of the key.",
            )
        dtype = schema.field(soft).type
        if not pa.types.is_boolean(dtype):
            raise ConfigError(
                f"soft_delete_column {soft!r} has type {dtype}; it must be boolean.",
                connector=connector,
                column=soft,
                hint="Cast it to BOOLEAN in a transform (true = delete the row).",
            )
    return tuple(keys), soft


def null_key_error(key: str, nulls: int, *, connector: str) -> SchemaIncompatibleError:
    """The refusal of a merge whose key ``key`` is null in ``nulls`` incoming rows."""
    return SchemaIncompatibleError(
        f"Merge key {key!r} is null in {nulls} incoming row(s); a null key "
        "can never match a row, so the merge was refused (nothing written).",
        connector=connector,
        column=key,
        hint=f"Filter out or fill the rows where {key!r} is null in a transform.",
    )


def fresh_name(base: str, taken: Iterable[str], *, ignores_case: bool = False) -> str:
    """``base``, or ``base_1``, ``base_2``, ...: the first not in ``taken``."""
    used = {_fold(n, ignores_case) for n in taken}
    name, n = base, 0
    while _fold(name, ignores_case) in used:
        n += 1
        name = f"{base}_{n}"
    return name


def _fold(name: str, ignores_case: object) -> str:
    return name.casefold() if ignores_case else name
