"""YAML -> :class:`PipelineSpec`, with every error pointing at ``file:line:col``.

The file is composed with PyYAML into a node tree (each node keeps its marks),
converted to plain data while recording where every key and value sits, then
validated by the pydantic models. Validation errors are translated from the
pydantic ``loc`` path back to positions in the file, and the checks the models
cannot make on their own (unique step names, SQL that parses, ...) are added. All
the problems of a file are reported at once in one :class:`PipelineSyntaxError`
whose ``details["errors"]`` lists ``{location, message, hint}``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from headwater.errors import PipelineError, PipelineSyntaxError, choices_hint, did_you_mean
from headwater.pipelines.spec import (
    CHECK_TYPES,
    DATASET_NAME_PATTERN,
    IDENTIFIER_PATTERN,
    STEP_TYPES,
    Check,
    CheckStep,
    NodeInfo,
    PipelineSpec,
    Position,
    SourceMap,
    SpecPath,
    Step,
    TextLayout,
    format_path,
)
from headwater.transform.refs import check_sql

__all__ = ["load_pipeline", "parse_pipeline", "spec_from_data"]

_EXAMPLE = "name: orders\nsteps:\n  - type: extract\n    connection: landing\n    ..."
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class _Problem:
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


# --------------------------------------------------------------------------- entry points


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline file; the name defaults to the file stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"pipeline file `{path}` does not exist", location=str(path)) from None
    except UnicodeDecodeError as exc:
        raise PipelineSyntaxError(
            f"pipeline file is not UTF-8 text ({exc.reason} at byte {exc.start})",
            location=f"{path}:1:1",
            hint="Save the file as UTF-8.",
        ) from None
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline file `{path}`: {exc.strerror}") from None
    return parse_pipeline(text, source=str(path), default_name=_name_from_stem(path.stem))


def parse_pipeline(
    text: str, *, source: str = "<string>", default_name: str | None = None
) -> PipelineSpec:
    """Validate pipeline YAML ``text``; ``source`` names it in error locations.

    The pipeline name defaults to ``default_name``, else to the stem of ``source``
    when that is a file name.
    """
    if default_name is None and not source.startswith("<"):
        default_name = _name_from_stem(Path(source).stem)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        _raise([_yaml_problem(exc, pos)], None, source, default_name)
    except yaml.YAMLError as exc:  # reader errors: bad characters, no marks
        index = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, index) + 1
        pos = Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)
        _raise([_yaml_problem(exc, pos)], None, source, default_name)
    except RecursionError:
        _raise([_Problem((), "YAML nesting is too deep", position=Position(1, 1))], None, source)
    if root is None:
        problem = _Problem((), "the pipeline file is empty", "Start with:\n" + _EXAMPLE)
        problem.position = Position(1, 1)
        _raise([problem], None, source, default_name)
    builder = _Builder(text)
    try:
        data = builder.convert(root, ())
    except RecursionError:
        _raise([_Problem((), "YAML nesting is too deep", position=Position(1, 1))], None, source)
    source_map = SourceMap(source, builder.nodes)
    return _build(data, source_map, source, default_name, builder.problems)


def spec_from_data(
    data: Any, *, source: str | None = None, default_name: str | None = None
) -> PipelineSpec:
    """Validate plain data; error locations are field paths such as ``steps[2].sql``."""
    return _build(data, None, source, default_name, [])


# --------------------------------------------------------------------------- YAML -> data


def _name_from_stem(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    return name if re.match(IDENTIFIER_PATTERN, name) else f"pipeline_{name}"


def _yaml_problem(exc: yaml.YAMLError, pos: Position) -> _Problem:
    what = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    hint = "Indent YAML with spaces, not tabs." if "\\t" in repr(what) else None
    return _Problem((), message, hint, position=pos)


class _Builder:
    """Convert a composed node tree to plain data, recording a :class:`NodeInfo` per path."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.nodes: dict[SpecPath, NodeInfo] = {}
        self.problems: list[_Problem] = []
        self.constructor = yaml.SafeLoader("")
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: SpecPath, key: Position | None = None) -> Any:
        start = Position(node.start_mark.line + 1, node.start_mark.column + 1)
        self.nodes[path] = NodeInfo(start, key, self._layout(node))
        if id(node) in self.active:
            self.problems.append(_Problem(path, "recursive YAML alias", position=start))
            return None
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            self.problems.append(
                _Problem(path, f"unsupported YAML tag `{node.tag}`", position=start)
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, path, start)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.Node, path: SpecPath, start: Position) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            what = getattr(exc, "problem", None) or str(exc)
            self.problems.append(_Problem(path, f"invalid YAML value: {what}", position=start))
            return None

    def _mapping(self, node: yaml.MappingNode, path: SpecPath) -> dict[Any, Any]:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.constructor.flatten_mapping(node)  # `<<: *anchor` pairs go first
        except yaml.YAMLError as exc:
            pos = Position(node.start_mark.line + 1, node.start_mark.column + 1)
            self.problems.append(_Problem(path, f"invalid YAML merge: {exc}", position=pos))
        merged, explicit = node.value[: len(node.value) - own], node.value[len(node.value) - own :]
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in explicit:
            kpos = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    _Problem(path, "mapping keys must be plain text", position=kpos)
                )
                continue
            key = self._scalar(key_node, path, kpos)
            if key in first_line:
                message = f"duplicate key `{key}` (first set at line {first_line[key]})"
                hint = "Each key may appear once in a mapping; remove or rename one."
                self.problems.append(_Problem((*path, key), message, hint, position=kpos))
                continue
            first_line[key] = kpos.line
            out[key] = self.convert(value_node, (*path, key), kpos)
        for key_node, value_node in reversed(merged):  # later merges lose to earlier ones
            kpos = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            key = self._scalar(key_node, path, kpos)
            if key not in first_line:
                out[key] = self.convert(value_node, (*path, key), kpos)
        return out

    def _layout(self, node: yaml.Node) -> TextLayout | None:
        if not isinstance(node, yaml.ScalarNode):
            return None
        line, column = node.start_mark.line, node.start_mark.column
        if node.style == "|":
            body = self.lines[line + 1 : node.end_mark.line + 1]
            indent = next((len(s) - len(s.lstrip(" ")) for s in body if s.strip()), 0)
            return TextLayout("block", line + 2, indent + 1)
        if node.style in (None, "'", '"') and node.end_mark.line == line:
            return TextLayout("inline", line + 1, column + 1 + (node.style is not None))
        return None


# --------------------------------------------------------------------------- validation


def _build(
    data: Any,
    source_map: SourceMap | None,
    source: str | None,
    default_name: str | None,
    problems: list[_Problem],
) -> PipelineSpec:
    if not isinstance(data, dict):
        problems.append(
            _Problem(
                (),
                "a pipeline must be a mapping with `name` and `steps`, got " + _describe(data),
                "Start with:\n" + _EXAMPLE,
            )
        )
        _raise(problems, source_map, source, default_name)
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(data, context={"default_name": default_name})
    except ValidationError as exc:
        known = {p.path for p in problems}  # YAML problems already reported at these paths
        translated = [_translate(err, data) for err in exc.errors()]
        problems.extend(p for p in _without_echoes(translated) if p.path not in known)

    def where(path: SpecPath) -> str:
        pos = source_map.position(path) if source_map is not None else None
        return f"line {pos.line}" if pos is not None else format_path(path)

    problems.extend(_semantic_problems(data, where))
    if problems or spec is None:
        _raise(problems, source_map, source, _pipeline_name(data, default_name))
    spec._attach(source_map)
    return spec


def _without_echoes(problems: list[_Problem]) -> list[_Problem]:
    """Drop "missing `sql`" when the same mapping has `sqll` and we suggested `sql`."""
    suggested = {
        (p.path[:-1], p.about[1]) for p in problems if p.about and p.about[0] == "suggests"
    }
    return [
        p
        for p in problems
        if not (p.about and p.about[0] == "missing" and (p.path, p.about[1]) in suggested)
    ]


def _pipeline_name(data: Any, default: str | None) -> str | None:
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else default


def _raise(
    problems: list[_Problem],
    source_map: SourceMap | None,
    source: str | None,
    pipeline: str | None = None,
) -> NoReturn:
    """Locate every problem, sort them by position and raise one PipelineSyntaxError."""
    located: list[tuple[tuple[int, int, int], str, _Problem]] = []
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


# --------------------------------------------------------------------------- pydantic -> problems

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


def _describe(value: Any) -> str:
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
    name = _raw_name(_get(data, ("steps", step)), _STEP_ADAPTER)
    prefix = f"step `{name}`: " if name else f"steps[{step}]: "
    if check is not None:
        cname = _raw_name(_get(data, ("steps", step, "checks", check)), _CHECK_ADAPTER)
        prefix += f"check `{cname}`: " if cname else f"checks[{check}]: "
    return prefix, name


def _raw_name(raw: Any, adapter: TypeAdapter[Any]) -> str | None:
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


def _translate(err: ErrorDetails, data: Any) -> _Problem:
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
            message = f"each {noun} must be a mapping of `type:` and fields, got {_describe(value)}"
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
        message = f"keys of `{_field_label(path[:-1])}` must be text, got {_describe(path[-1])}"
    elif kind == "invalid_key":
        message, key = f"keys must be text, got {_describe(path[-1])}", True
    else:
        text = err["msg"]
        if text.startswith("Input should"):
            text = f"`{field}` should{text[len('Input should') :]}, got {_describe(value)}"
        message = text
    prefix, name = _label(data, step, check)
    return _Problem(path, prefix + message, hint, key=key, step=name, about=about)


def _missing_hint(field: str, owner: Any) -> str | None:
    if field == "steps":
        return "A pipeline lists its work under `steps:`, e.g.\n" + _EXAMPLE
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
    return f"`{field}` does not match the pattern `{pattern}`, got {_describe(value)}", None


# --------------------------------------------------------------------------- cross-node checks

_CHECK_ADAPTER: TypeAdapter[Any] = TypeAdapter(Check)


def _semantic_problems(data: dict[Any, Any], where: Any) -> list[_Problem]:
    """Rules spanning nodes: unique names, depends_on targets, SQL and regexes that parse."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    out: list[_Problem] = []
    first: dict[str, int] = {}
    names: list[str | None] = []
    for i, raw in enumerate(steps):
        name = _raw_name(raw, _STEP_ADAPTER)
        names.append(name)
        if not isinstance(raw, dict):
            continue
        if name is not None and name in first:
            explicit = isinstance(raw.get("name"), str)
            out.append(
                _Problem(
                    ("steps", i, "name") if explicit else ("steps", i),
                    f"duplicate step name `{name}` (also used by the step at "
                    f"{where(('steps', first[name]))})",
                    "Step names must be unique; give one of them another `name:`."
                    if explicit
                    else f"Both steps get the default name `{name}`; set `name:` on one.",
                    step=name,
                )
            )
        elif name is not None:
            first[name] = i
        prefix = f"step `{name}`: " if name else f"steps[{i}]: "
        if raw.get("type") == "transform" and isinstance(raw.get("sql"), str):
            out.extend(_sql_problems(raw["sql"], ("steps", i, "sql"), prefix, name))
        if raw.get("type") == "check" and isinstance(raw.get("checks"), list):
            out.extend(_check_problems(raw["checks"], i, prefix, name, where))
    for i, raw in enumerate(steps):
        deps = raw.get("depends_on") if isinstance(raw, dict) else None
        for j, dep in enumerate(deps if isinstance(deps, list) else []):
            if not isinstance(dep, str) or (dep in first and dep != names[i]):
                continue
            path = ("steps", i, "depends_on", j)
            prefix = f"step `{names[i]}`: " if names[i] else f"steps[{i}]: "
            if dep == names[i]:
                out.append(_Problem(path, prefix + "a step cannot depend on itself"))
            else:
                close = did_you_mean(dep, first)
                out.append(
                    _Problem(
                        path,
                        f"{prefix}`depends_on` names an unknown step `{dep}`."
                        + (f" {close}" if close else ""),
                        None if close else choices_hint(dep, first, "steps"),
                        step=names[i],
                    )
                )
    return out


def _check_problems(
    checks: list[Any], i: int, prefix: str, step: str | None, where: Any
) -> list[_Problem]:
    out: list[_Problem] = []
    seen: dict[str, int] = {}
    for j, raw in enumerate(checks):
        name = _raw_name(raw, _CHECK_ADAPTER)
        if not isinstance(raw, dict):
            continue
        path: SpecPath = ("steps", i, "checks", j)
        if name is not None and name in seen:
            explicit = isinstance(raw.get("name"), str)
            out.append(
                _Problem(
                    (*path, "name") if explicit else path,
                    f"{prefix}duplicate check name `{name}` (also used by the check at "
                    f"{where((*path[:-1], seen[name]))})",
                    "Check names must be unique within a step; set `name:` on one of them.",
                    step=step,
                )
            )
        elif name is not None:
            seen[name] = j
        label = f"{prefix}check `{name}`: " if name else f"{prefix}checks[{j}]: "
        if raw.get("type") == "expression" and isinstance(raw.get("expression"), str):
            out.extend(_sql_problems(raw["expression"], (*path, "expression"), label, step))
        if raw.get("type") == "regex" and isinstance(raw.get("pattern"), str):
            problem = _regex_problem(raw["pattern"])
            if problem:
                out.append(_Problem((*path, "pattern"), label + problem, step=step))
    return out


@functools.lru_cache(maxsize=256)
def _regex_problem(pattern: str) -> str | None:
    """Compile with DuckDB (RE2), the engine that will run the check."""
    import duckdb

    with duckdb.connect(config={"autoinstall_known_extensions": False}) as con:
        try:
            con.execute("select regexp_full_match('', ?)", [pattern]).fetchall()
        except duckdb.Error as exc:
            reason = str(exc).split("Error: ", 1)[-1]
            return f"invalid regular expression `{pattern}`: {reason}"
    return None


def _sql_problems(sql: str, path: SpecPath, prefix: str, step: str | None) -> list[_Problem]:
    issue = check_sql(sql, expression=path[-1] == "expression")
    if issue is None:
        return []
    return [
        _Problem(
            path, prefix + issue.message, issue.hint, offset=issue.offset, value=sql, step=step
        )
    ]
