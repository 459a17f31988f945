"""Load-time checks of map rules: every SQL expression parses (before any data is read)."""

from __future__ import annotations

from typing import Any

from headwater.pipelines._errors import Problem
from headwater.pipelines._positions import SpecPath
from headwater.transform.refs import check_sql

__all__ = ["map_rule_problems"]


def _expressions(rule: dict[Any, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """(path inside the rule, SQL expression text) of every expression a rule holds."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    derive = rule.get("derive")
    if isinstance(derive, dict):
        out += [(("derive", k), v) for k, v in derive.items() if isinstance(v, str)]
    if isinstance(rule.get("filter"), str):
        out.append((("filter",), rule["filter"]))
    aggregate = rule.get("aggregate")
    if isinstance(aggregate, dict) and isinstance(aggregate.get("aggregates"), dict):
        out += [
            (("aggregate", "aggregates", k), v)
            for k, v in aggregate["aggregates"].items()
            if isinstance(v, str)
        ]
    return out


def map_rule_problems(rules: list[Any], i: int, prefix: str, step: str | None) -> list[Problem]:
    """A located problem for each rule expression that is not valid SQL."""
    out: list[Problem] = []
    for j, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        for inner, text in _expressions(rule):
            issue = check_sql(text, expression=True)
            if issue is None:
                continue
            path: SpecPath = ("steps", i, "rules", j, *inner)
            out.append(
                Problem(
                    path,
                    f"{prefix}map rule {j + 1} (`{inner[0]}`): {issue.message}",
                    issue.hint,
                    offset=issue.offset,
                    value=text,
                    step=step,
                )
            )
    return out
