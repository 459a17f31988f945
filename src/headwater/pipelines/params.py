"""Pipeline parameters: declarations (``params:``), values from the CLI, type coercion.

A parameter is declared with a ``type`` (``string`` by default), an optional
``default``, ``choices`` and ``description``. Values come from
``headwater run FILE --param key=value`` (text, converted to the declared type) or from
Python (``ws.run(path, params={...})``, already typed or text). A parameter without a
default must be given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml

__all__ = ["PARAM_TYPES", "ParamIssue", "coerce", "parse_cli_params", "resolve_params"]

PARAM_TYPES = ("string", "integer", "number", "boolean", "date", "datetime", "list")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class ParamIssue:
    """A problem with one parameter value: which parameter, what, and what to do."""

    name: str
    message: str
    hint: str | None = None
    unknown: bool = False  # a value for a parameter that is not declared


def parse_cli_params(items: list[str] | None) -> dict[str, str]:
    """``["region=eu", "limit=10"]`` -> ``{"region": "eu", "limit": "10"}``.

    Raises ``ValueError`` naming the item without ``=``.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(item)
        out[key.strip()] = value
    return out


def coerce(kind: str, value: Any) -> Any:
    """``value`` as the parameter type ``kind``; raises ``ValueError`` with the reason."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float | date):
            return str(value).lower() if isinstance(value, bool) else str(value)
        raise ValueError("expected text")
    if kind == "integer":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                raise ValueError("expected an integer such as `10`") from None
        raise ValueError("expected an integer")
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, int | float):
            number = float(value) if isinstance(value, float) else value
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("expected a number such as `2.5`") from None
        else:
            raise ValueError("expected a number")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected `true` or `false`")
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("expected a date such as `2024-01-31`") from None
        raise ValueError("expected a date")
    if kind == "datetime":
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("expected a timestamp such as `2024-01-31T06:00:00`") from None
        raise ValueError("expected a timestamp")
    if kind == "list":
        if isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    parsed = yaml.safe_load(text)
                except yaml.YAMLError:
                    raise ValueError("expected a list such as `[a, b]` or `a,b`") from None
                if isinstance(parsed, list):
                    return parsed
            return [part.strip() for part in text.split(",") if part.strip()] if text else []
        raise ValueError("expected a list")
    raise ValueError(f"unknown parameter type `{kind}`")


def to_json(value: Any) -> Any:
    """A parameter value as JSON (dates as ISO text), to record with the run."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def resolve_params(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> tuple[dict[str, Any], list[ParamIssue]]:
    """The value of every declared parameter: given, else its default.

    ``declared`` maps names to ``{type, default, choices}`` (already checked for shape).
    """
    values: dict[str, Any] = {}
    issues: list[ParamIssue] = []
    for name in given:
        if name not in declared:
            from headwater.errors import did_you_mean

            close = did_you_mean(name, declared)
            listed = ", ".join(declared) or "(none)"
            issues.append(
                ParamIssue(
                    name,
                    f"unknown parameter `{name}`." + (f" {close}" if close else ""),
                    f"The pipeline declares: {listed}. Declare it under `params:` first.",
                    unknown=True,
                )
            )
    for name, decl in declared.items():
        kind = str(decl.get("type") or "string")
        if name in given:
            raw, source = given[name], "given"
        elif decl.get("default") is not None:
            raw, source = decl["default"], "default"
        else:
            issues.append(
                ParamIssue(
                    name,
                    f"parameter `{name}` has no default and no value was given",
                    f"Pass it: `headwater run FILE --param {name}=...`, or give it a `default:`.",
                )
            )
            continue
        try:
            value = coerce(kind, raw)
        except ValueError as exc:
            shown = raw if isinstance(raw, str) else json.dumps(to_json(raw))
            what = "the value given" if source == "given" else "its default"
            issues.append(
                ParamIssue(
                    name,
                    f"parameter `{name}` is of type `{kind}`, but {what} `{shown}` is not: {exc}",
                    f"Pass `--param {name}=<{kind}>`" if source == "given" else None,
                )
            )
            continue
        choices = decl.get("choices")
        if isinstance(choices, list) and choices:
            allowed = [coerce(kind, c) if not isinstance(c, list) else c for c in choices]
            if value not in allowed:
                issues.append(
                    ParamIssue(
                        name,
                        f"parameter `{name}` must be one of "
                        + ", ".join(f"`{c}`" for c in choices)
                        + f", got `{value}`",
                    )
                )
                continue
        values[name] = value
    return values, issues
