"""Problems found in a pipeline file, and how they are reported.

The loader and the models find problems at paths in the document; this module turns
them into one :class:`~headwater.errors.PipelineSyntaxError` whose messages name the
file, line and column, quote the offending value and give a hint. Pydantic's
``ValidationError`` entries (``loc``, ``type``, ``ctx``) are translated here into
messages in the language of the pipeline file ("unknown field `sqll`. Did you mean
`sql`?" rather than "Extra inputs are not permitted"), at the path of the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from headwater.errors import PipelineSyntaxError, did_you_mean
from headwater.pipelines._positions import Position, SourceMap, SpecPath, format_path
from headwater.pipelines.spec import (
    CHECK_TYPES,
    DATASET_NAME_PATTERN,
    IDENTIFIER_PATTERN,
    STEP_TYPES,
    Check,
    CheckStep,
    PipelineSpec,
    Step,
)

__all__ = [
    "CHECK_ADAPTER",
    "EXAMPLE",
    "STEP_ADAPTER",
    "Problem",
    "describe",
    "raise_problems",
    "raw_name",
    "translate",
    "without_echoes",
    "yaml_problem",
]

#: The start of a pipeline, shown when a file is empty or has no `steps`.
EXAMPLE = "name: orders\nsteps:\n  - type: extract\n    connection: landing\n    ..."
STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)
CHECK_ADAPTER: TypeAdapter[Any] = TypeAdapter(Check)


@dataclass
class Problem:
    """One thing wrong with a pipeline, before it is given a file position."""

    path: SpecPath
    message: str
    hint: str | None = None
    key: bool = False  # point at the mapping key rather than the value
    offset: int | None = None  # a character offset inside a string value
    position: Position | None = None  # known directly (YAML syntax errors)
    value: str | None = None  # the string ``offset`` points into
    step: str | None = None  # the step concerned, for the error's ``step`` field
    about: tuple[str, str] | None = None  # ("missing" | "suggests", field) to drop echoes


# --------------------------------------------------------------------------- reporting


def raise_problems(
    problems: list[Problem],
    source_map: SourceMap | None,
    source: str | None,
    pipeline: str | None = None,
) -> NoReturn:
    """Locate every problem, sort them by position and raise one PipelineSyntaxError."""
    located: list[tuple[tuple[int, int, int], str, Problem]] = []
    for n, p in enumerate(problems):
        pos = p.position
        if pos is None and source_map is not None:
            pos = source_map.position(p.path, key=p.key, offset=p.offset, value=p.value)
        if pos is not None:
            where = f"{source_map.source if source_map else source}:{pos.line}:{pos.column}"
            located.append(((pos.line, pos.column, n), where, p))
        else:
            where = f"{source}:{format_path(p.path)}" if source else format_path(p.path)
            located.append(((0, 0, n), where, p))
    located.sort(key=lambda item: item[0])
    entries: list[dict[str, Any]] = []
    for _, where, p in located:
        entry = {"location": where, "message": p.message, "hint": p.hint}
        if entry not in entries:
            entries.append(entry)
    first, first_problem = entries[0], located[0][2]
    if len(entries) == 1:
        message, hint = first["message"], first["hint"]
    else:
        lines = [f"{len(entries)} errors" + (f" in pipeline `{pipeline}`:" if pipeline else ":")]
        for e in entries:
            lines.append(f"  {e['location']}: {e['message']}")
            lines.extend(f"      hint: {h}" for h in [e["hint"]] if h)
        message, hint = "\n".join(lines), None
    raise PipelineSyntaxError(
        message,
        location=first["location"],
        hint=hint,
        pipeline=pipeline,
        step=first_problem.step,
        field=format_path(first_problem.path) if first_problem.path else None,
        errors=[{k: v for k, v in e.items() if v is not None} for e in entries],
    )


def yaml_problem(exc: yaml.YAMLError, pos: Position) -> Problem:
    what = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    hint = "Indent YAML with spaces, not tabs." if "\\t" in repr(what) else None
    return Problem((), message, hint, position=pos)


# --------------------------------------------------------------------------- pydantic -> problems


def without_echoes(problems: list[Problem]) -> list[Problem]:
    """Drop "missing `sql`" when the same mapping has `sqll` and we suggested `sql`."""
    suggested = {
        (p.path[:-1], p.about[1]) for p in problems if p.about and p.about[0] == "suggests"
    }
    return [
        p
        for p in problems
        if not (p.about and p.about[0] == "missing" and (p.path, p.about[1]) in suggested)
    ]


_UNIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "steps": ("step", dict(STEP_TYPES)),
    "checks": ("check", dict(CHECK_TYPES)),
}


def _walk_loc(loc: tuple[str | int, ...]) -> tuple[SpecPath, Any, int | None, int | None]:
    """Turn a pydantic ``loc`` into a document path (dropping union tags).

    Returns the path, the model owning the last field (or None), and the indexes of
    the step and check concerned.
    """
    path: list[str | int] = []
    owner: Any = PipelineSpec
    last_owner: Any = None
    pending: tuple[str, dict[str, Any]] | None = None
    step = check = None
    items = list(loc)
    i = 0
    while i < len(items):
        part = items[i]
        i += 1
        last_owner = owner
        path.append(part)
        if pending is not None and isinstance(part, int):
            kind, types = pending
            pending = None
            step, check = (part, None) if kind == "step" else (step, part)
            tag = items[i] if i < len(items) else None
            owner = types.get(tag) if isinstance(tag, str) else None
            i += owner is not None
            continue
        is_union = (owner is PipelineSpec and part == "steps") or (
            owner is CheckStep and part == "checks"
        )
        pending = _UNIONS[str(part)] if is_union else None
        owner = None
    return tuple(path), last_owner, step, check


def _get(data: Any, path: SpecPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"text `{text}`"
    if isinstance(value, int | float):
        return f"number `{value}`"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} `{value}`"


def _field_label(path: SpecPath) -> str:
    """The tail of ``path`` from its last key: ``keys[1]``, ``sql``, ``options``."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], str):
            return format_path(path[i:])
    return format_path(path)


def _fields(model: Any) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _label(data: Any, step: int | None, check: int | None) -> tuple[str, str | None]:
    """A message prefix such as ``step `clean`: check `unique_id`: `` and the step name."""
    if step is None:
        return "", None
    name = raw_name(_get(data, ("steps", step)), STEP_ADAPTER)
    prefix = f"step `{name}`: " if name else f"steps[{step}]: "
    if check is not None:
        cname = raw_name(_get(data, ("steps", step, "checks", check)), CHECK_ADAPTER)
        prefix += f"check `{cname}`: " if cname else f"checks[{check}]: "
    return prefix, name


def raw_name(raw: Any, adapter: TypeAdapter[Any]) -> str | None:
    """The explicit name of a raw step/check, else its default name if it validates."""
    if not isinstance(raw, dict):
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        return name
    try:
        return str(adapter.validate_python(raw).name)
    except ValidationError:
        return None


def translate(err: ErrorDetails, data: Any) -> Problem:
    path, owner, step, check = _walk_loc(tuple(err["loc"]))
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    field = _field_label(path)
    hint: str | None = None
    key = False
    about: tuple[str, str] | None = None
    union = _UNIONS.get(str(path[-2])) if len(path) >= 2 and isinstance(path[-1], int) else None
    if union and kind in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type"):
        noun, types = union
        tag = _get(data, (*path, "type"))
        if kind == "union_tag_invalid":
            close = did_you_mean(str(tag), types)
            message = f"unknown {noun} type `{tag}`." + (f" {close}" if close else "")
            hint, path = f"Valid {noun} types: {', '.join(types)}.", (*path, "type")
        elif kind == "union_tag_not_found":
            message = f"the {noun} has no `type`"
            hint = f"Add `type:` with one of: {', '.join(types)}."
        else:
            message = f"each {noun} must be a mapping of `type:` and fields, got {describe(value)}"
    elif kind == "extra_forbidden":
        key = True
        choices = _fields(owner) if owner is not None else []
        close = did_you_mean(field, choices)
        message = f"unknown field `{field}`." + (f" {close}" if close else "")
        if close:
            about = ("suggests", close.split("`")[1])
        elif choices:
            hint = _other_type_hint(field, owner) or f"Valid fields: {', '.join(choices)}."
    elif kind == "missing":
        message, path = f"missing required field `{field}`", path[:-1]
        about = ("missing", field)
        hint = _missing_hint(field, owner)
    elif kind == "string_pattern_mismatch":
        message, hint = _pattern_message(field, value, ctx.get("pattern"))
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = did_you_mean(str(value), choices)
        message = f"invalid value `{value}` for `{field}`." + (f" {close}" if close else "")
        hint = f"Valid values: {', '.join(choices)}."
    elif "field" in ctx:  # our own cross-field rules (spec validators)
        message, path = err["msg"], (*path, ctx["field"])
    elif kind in ("too_short", "string_too_short"):
        message = f"`{field}` must not be empty"
    elif path and path[-1] == "[key]":
        path, key = path[:-1], True
        message = f"keys of `{_field_label(path[:-1])}` must be text, got {describe(path[-1])}"
    elif kind == "invalid_key":
        message, key = f"keys must be text, got {describe(path[-1])}", True
    else:
        text = err["msg"]
        if text.startswith("Input should"):
            text = f"`{field}` should{text[len('Input should') :]}, got {describe(value)}"
        message = text
    prefix, name = _label(data, step, check)
    return Problem(path, prefix + message, hint, key=key, step=name, about=about)


def _missing_hint(field: str, owner: Any) -> str | None:
    if field == "steps":
        return "A pipeline lists its work under `steps:`, e.g.\n" + EXAMPLE
    for name, info in owner.model_fields.items() if owner is not None else ():
        if field in (name, info.alias) and info.description:
            return f"`{field}`: {info.description}"
    return None


def _other_type_hint(field: str, owner: Any) -> str | None:
    for registry in (STEP_TYPES, CHECK_TYPES):
        if owner in registry.values():
            for name, model in registry.items():
                if model is not owner and field in _fields(model):
                    own = owner.model_fields["type"].annotation.__args__[0]
                    return f"`{field}` belongs to `{name}`; `{own}` takes: " + ", ".join(
                        _fields(owner)
                    )
    return None


def _pattern_message(field: str, value: Any, pattern: Any) -> tuple[str, str | None]:
    if pattern == DATASET_NAME_PATTERN:
        fixed = re.sub(r"[^a-z0-9_.]", "_", str(value).strip().lower())
        hint = (
            f"Did you mean `{fixed}`?"
            if re.match(DATASET_NAME_PATTERN, fixed)
            else "Datasets are named `zone.name`, e.g. `raw.orders`."
        )
        return (
            f"invalid dataset name `{value}` for `{field}`: expected `zone.name` "
            "(lower-case letters, digits and `_`)",
            hint,
        )
    if pattern == IDENTIFIER_PATTERN:
        return (
            f"invalid name `{value}` for `{field}`: use letters, digits, `_` and `-`, "
            "starting with a letter or `_`",
            None,
        )
    return f"`{field}` does not match the pattern `{pattern}`, got {describe(value)}", None
