"""Compile an ordered list of mapping rules to one DuckDB query (a chain of CTEs).

Rule ``k`` reads the CTE of rule ``k - 1`` (the first reads the input dataset) and
becomes the CTE ``__map_k``; the query selects every column of the last one by name.
The SQL is built with sqlglot expressions, never by pasting strings, and names every
column explicitly, so column lineage can follow it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from headwater.errors import PipelineError
from headwater.transform.mapping.rules import RULES, Locate, Relation, RuleContext

__all__ = ["SALT_VARIABLE", "CompiledMap", "compile_map"]

#: The DuckDB variable holding the workspace salt of `mask: hash` (never in the SQL text).
SALT_VARIABLE = "hw_mask_salt"


@dataclass(frozen=True)
class CompiledMap:
    """The query of a map step, the columns it yields and what it reads."""

    sql: str
    columns: list[str]
    reads: list[str]
    uses_salt: bool


def _default_locate(path: tuple[str | int, ...], offset: int | None) -> str:
    return "rules" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def compile_map(
    source: str,
    schema: pa.Schema,
    rules: Sequence[Mapping[str, Any]],
    *,
    schemas: Mapping[str, pa.Schema] | None = None,
    locate: Locate | None = None,
) -> CompiledMap:
    """The DuckDB SQL applying ``rules`` (plain ``{kind: argument}`` data) to ``source``.

    ``source`` is a dataset ``zone.name`` (read as the view ``"zone"."name"``) with
    ``schema``; ``schemas`` gives the schema of every dataset a lookup or union names;
    ``locate`` turns a path inside ``rules`` into ``file:line:col`` for errors.
    Raises :class:`PipelineError` naming the rule, the column and the columns available.
    """
    others = dict(schemas or {})
    where = locate or _default_locate
    zone, _, name = source.partition(".")
    relation = Relation(exp.table_(name, db=zone, quoted=True), {f.name: f.type for f in schema})
    ctes: list[tuple[str, exp.Query]] = []
    reads: dict[str, None] = {source: None}
    uses_salt = False
    for index, rule in enumerate(rules):
        if len(rule) != 1:
            raise PipelineError(
                f"map rule {index + 1} must have exactly one key, got {sorted(rule)}",
                location=where((index,), None),
            )
        ((kind, argument),) = rule.items()
        function = RULES.get(kind)
        if function is None:
            raise PipelineError(
                f"map rule {index + 1}: unknown rule `{kind}`",
                location=where((index, kind), None),
                hint="Rules: " + ", ".join(RULES),
            )
        for dataset in _datasets(kind, argument):
            if dataset not in others:
                raise PipelineError(
                    f"map rule {index + 1} (`{kind}`): no schema for `{dataset}`",
                    location=where((index, kind), None),
                    dataset=dataset,
                )
        stage = function(argument, relation, RuleContext(index, kind, where, others, SALT_VARIABLE))
        alias = f"__map_{index}"
        ctes.append((alias, stage.query))
        reads.update(dict.fromkeys(stage.reads))
        uses_salt = uses_salt or stage.uses_salt
        relation = Relation(exp.table_(alias), stage.columns)
    final = exp.select(*(exp.column(c, quoted=True) for c in relation.columns)).from_(
        relation.table.copy()
    )
    for alias, query in ctes:
        final = final.with_(alias, as_=query)
    return CompiledMap(final.sql(dialect="duckdb"), list(relation.columns), list(reads), uses_salt)


def _datasets(kind: str, argument: Any) -> list[str]:
    if kind == "lookup":
        return [str(argument["dataset"])]
    if kind == "union":
        return [argument] if isinstance(argument, str) else [str(a) for a in argument]
    return []
