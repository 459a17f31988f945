"""YAML -> :class:`PipelineSpec`, with every error pointing at ``file:line:col``.

The file is composed with PyYAML into a node tree (each node keeps its marks),
converted to plain data while recording where every key and value sits, then
validated by the pydantic models. Validation errors are translated from the
pydantic ``loc`` path back to positions in the file (:mod:`._errors`), and the
checks the models cannot make on their own (unique step names, SQL that parses,
...) are added. All the problems of a file are reported at once in one
:class:`PipelineSyntaxError` whose ``details["errors"]`` lists
``{location, message, hint}``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from headwater.errors import PipelineError, PipelineSyntaxError, choices_hint, did_you_mean
from headwater.pipelines._errors import (
    CHECK_ADAPTER,
    EXAMPLE,
    STEP_ADAPTER,
    Problem,
    describe,
    raise_problems,
    raw_name,
    translate,
    without_echoes,
    yaml_problem,
)
from headwater.pipelines._map_checks import map_rule_problems
from headwater.pipelines._positions import (
    NodeInfo,
    Position,
    SourceMap,
    SpecPath,
    TextLayout,
    format_path,
)
from headwater.pipelines.expand import flow_problems, prepare, remap_source
from headwater.pipelines.intervals import Interval
from headwater.pipelines.spec import IDENTIFIER_PATTERN, PipelineSpec
from headwater.transform.refs import check_sql, find_ref_spans

__all__ = ["load_pipeline", "parse_pipeline", "spec_from_data"]

_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


# --------------------------------------------------------------------------- entry points


def load_pipeline(
    path: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    interval: Interval | None = None,
) -> PipelineSpec:
    """Read and validate a pipeline file; the name defaults to the file stem.

    ``params`` sets parameters (text is converted to the declared types); ``interval``
    is the backfill interval templates see as ``interval``.
    """
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
    return parse_pipeline(
        text,
        source=str(path),
        default_name=_name_from_stem(path.stem),
        params=params,
        interval=interval,
    )


def parse_pipeline(
    text: str,
    *,
    source: str = "<string>",
    default_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    interval: Interval | None = None,
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
        raise_problems([yaml_problem(exc, pos)], None, source, default_name)
    except yaml.YAMLError as exc:  # reader errors: bad characters, no marks
        index = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, index) + 1
        pos = Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)
        raise_problems([yaml_problem(exc, pos)], None, source, default_name)
    except RecursionError:
        raise_problems(
            [Problem((), "YAML nesting is too deep", position=Position(1, 1))], None, source
        )
    if root is None:
        problem = Problem((), "the pipeline file is empty", "Start with:\n" + EXAMPLE)
        problem.position = Position(1, 1)
        raise_problems([problem], None, source, default_name)
    builder = _Builder(text)
    try:
        data = builder.convert(root, ())
    except RecursionError:
        raise_problems(
            [Problem((), "YAML nesting is too deep", position=Position(1, 1))], None, source
        )
    source_map = SourceMap(source, builder.nodes)
    spec = _build(
        data,
        source_map,
        source,
        default_name,
        builder.problems,
        builder.bool_words,
        params=params,
        interval=interval,
    )
    spec._text = text
    return spec


def spec_from_data(
    data: Any,
    *,
    source: str | None = None,
    default_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    interval: Interval | None = None,
) -> PipelineSpec:
    """Validate plain data; error locations are field paths such as ``steps[2].sql``."""
    return _build(data, None, source, default_name, [], params=params, interval=interval)


# --------------------------------------------------------------------------- YAML -> data


def _name_from_stem(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    return name if re.match(IDENTIFIER_PATTERN, name) else f"pipeline_{name}"


class _Builder:
    """Convert a composed node tree to plain data, recording a :class:`NodeInfo` per path."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.nodes: dict[SpecPath, NodeInfo] = {}
        self.problems: list[Problem] = []
        self.bool_words: dict[SpecPath, str] = {}  # plain yes/no/on/off read as booleans
        self.constructor = yaml.SafeLoader("")
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: SpecPath, key: Position | None = None) -> Any:
        start = Position(node.start_mark.line + 1, node.start_mark.column + 1)
        self.nodes[path] = NodeInfo(start, key, self._layout(node))
        if id(node) in self.active:
            self.problems.append(Problem(path, "recursive YAML alias", position=start))
            return None
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            self.problems.append(
                Problem(path, f"unsupported YAML tag `{node.tag}`", position=start)
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
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            what = getattr(exc, "problem", None) or str(exc)
            self.problems.append(Problem(path, f"invalid YAML value: {what}", position=start))
            return None
        if isinstance(value, bool) and str(node.value).lower() not in ("true", "false"):
            self.bool_words[path] = str(node.value)
        return value

    def _mapping(self, node: yaml.MappingNode, path: SpecPath) -> dict[Any, Any]:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.constructor.flatten_mapping(node)  # `<<: *anchor` pairs go first
        except yaml.YAMLError as exc:
            pos = Position(node.start_mark.line + 1, node.start_mark.column + 1)
            self.problems.append(Problem(path, f"invalid YAML merge: {exc}", position=pos))
        merged, explicit = node.value[: len(node.value) - own], node.value[len(node.value) - own :]
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in explicit:
            kpos = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(path, "mapping keys must be plain text", position=kpos)
                )
                continue
            key = self._scalar(key_node, path, kpos)
            if key in first_line:
                message = f"duplicate key `{key}` (first set at line {first_line[key]})"
                hint = "Each key may appear once in a mapping; remove or rename one."
                self.problems.append(Problem((*path, key), message, hint, position=kpos))
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
    problems: list[Problem],
    bool_words: dict[SpecPath, str] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    interval: Interval | None = None,
) -> PipelineSpec:
    if not isinstance(data, dict):
        problems.append(
            Problem(
                (),
                "a pipeline must be a mapping with `name` and `steps`, got " + describe(data),
                "Start with:\n" + EXAMPLE,
            )
        )
        raise_problems(problems, source_map, source, default_name)
    prepared = prepare(data, params=params, interval=interval)
    if prepared.problems:
        known_paths = {p.path for p in problems}
        problems.extend(p for p in prepared.problems if p.path not in known_paths)
        raise_problems(problems, source_map, source, _pipeline_name(data, default_name))
    data = prepared.data
    source_map = remap_source(source_map, prepared.origin)
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(data, context={"default_name": default_name})
    except ValidationError as exc:
        known = {p.path for p in problems}  # YAML problems already reported at these paths
        translated = [translate(err, data) for err in exc.errors()]
        problems.extend(p for p in without_echoes(translated) if p.path not in known)

    def where(path: SpecPath) -> str:
        pos = source_map.position(path) if source_map is not None else None
        return f"line {pos.line}" if pos is not None else format_path(path)

    problems.extend(_semantic_problems(data, where, bool_words or {}))
    problems.extend(flow_problems(data))
    if problems or spec is None:
        raise_problems(problems, source_map, source, _pipeline_name(data, default_name))
    spec._attach(source_map)
    spec._bindings = prepared.bindings
    return spec


def _pipeline_name(data: Any, default: str | None) -> str | None:
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else default


# --------------------------------------------------------------------------- cross-node checks


def _semantic_problems(
    data: dict[Any, Any], where: Any, bool_words: dict[SpecPath, str]
) -> list[Problem]:
    """Rules spanning nodes: unique names, depends_on targets, SQL and regexes that parse.

    ``bool_words`` maps the paths of plain ``yes``/``no``/``on``/``off`` scalars, which
    YAML read as booleans, to their text (empty when the data did not come from YAML).
    """
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    out: list[Problem] = []
    first: dict[str, int] = {}
    names: list[str | None] = []
    for i, raw in enumerate(steps):
        name = raw_name(raw, STEP_ADAPTER)
        names.append(name)
        if not isinstance(raw, dict):
            continue
        if name is not None and name in first:
            explicit = isinstance(raw.get("name"), str)
            out.append(
                Problem(
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
        if raw.get("type") == "map" and isinstance(raw.get("rules"), list):
            out.extend(map_rule_problems(raw["rules"], i, prefix, name))
        if raw.get("type") == "check" and isinstance(raw.get("checks"), list):
            out.extend(_check_problems(raw["checks"], i, prefix, name, where, bool_words))
    for i, raw in enumerate(steps):
        deps = raw.get("depends_on") if isinstance(raw, dict) else None
        for j, dep in enumerate(deps if isinstance(deps, list) else []):
            if not isinstance(dep, str) or (dep in first and dep != names[i]):
                continue
            path = ("steps", i, "depends_on", j)
            prefix = f"step `{names[i]}`: " if names[i] else f"steps[{i}]: "
            if dep == names[i]:
                out.append(Problem(path, prefix + "a step cannot depend on itself"))
            else:
                close = did_you_mean(dep, first)
                out.append(
                    Problem(
                        path,
                        f"{prefix}`depends_on` names an unknown step `{dep}`."
                        + (f" {close}" if close else ""),
                        None if close else choices_hint(dep, first, "steps"),
                        step=names[i],
                    )
                )
    return out


def _check_problems(
    checks: list[Any],
    i: int,
    prefix: str,
    step: str | None,
    where: Any,
    bool_words: dict[SpecPath, str],
) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for j, raw in enumerate(checks):
        name = raw_name(raw, CHECK_ADAPTER)
        if not isinstance(raw, dict):
            continue
        path: SpecPath = ("steps", i, "checks", j)
        if name is not None and name in seen:
            explicit = isinstance(raw.get("name"), str)
            out.append(
                Problem(
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
            text, at = raw["expression"], (*path, "expression")
            found = _sql_problems(text, at, label, step) or _aggregate_problems(
                text, at, label, step
            )
            out.extend(found)
        if raw.get("type") == "accepted_values" and isinstance(raw.get("values"), list):
            words = _bool_word_problem(raw["values"], (*path, "values"), label, bool_words)
            if words:
                out.append(Problem(*words, step=step))
        if raw.get("type") == "regex" and isinstance(raw.get("pattern"), str):
            problem = _regex_problem(raw["pattern"])
            if problem:
                out.append(Problem((*path, "pattern"), label + problem, step=step))
    return out


def _bool_word_problem(
    values: list[Any], path: SpecPath, label: str, bool_words: dict[SpecPath, str]
) -> tuple[SpecPath, str, str] | None:
    """``values: [yes, no]`` is two booleans in YAML 1.1, which never match a text column."""
    words = [(k, bool_words[(*path, k)]) for k in range(len(values)) if (*path, k) in bool_words]
    if not words:
        return None
    shown = ", ".join(f"`{w}`" for _, w in words)
    booleans = ", ".join(f"`{str(values[k]).lower()}`" for k, _ in words)
    quoted = ", ".join(f"'{w}'" for _, w in words)
    plural = len(words) > 1
    return (
        (*path, words[0][0]),
        f"{label}`values` holds unquoted {shown}, which YAML reads as the "
        + ("booleans " if plural else "boolean ")
        + booleans,
        f"Quote {'them' if plural else 'it'} to accept text, e.g. `values: [{quoted}]`; "
        "write `true`/`false` when the column holds booleans.",
    )


_REGEX_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _regex_connection() -> Any:
    """One in-memory DuckDB connection for every pattern validated by this process (opening
    one per pattern costs more than compiling the pattern)."""
    import duckdb

    return duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 1})


@functools.lru_cache(maxsize=256)
def _regex_problem(pattern: str) -> str | None:
    """Compile with DuckDB (RE2), the engine that will run the check."""
    import duckdb

    with _REGEX_LOCK:
        try:
            _regex_connection().execute("select regexp_full_match('', ?)", [pattern]).fetchall()
        except duckdb.Error as exc:
            reason = str(exc).split("Error: ", 1)[-1]
            return f"invalid regular expression `{pattern}`: {reason}"
    return None


def _aggregate_problems(text: str, path: SpecPath, prefix: str, step: str | None) -> list[Problem]:
    """An expression check is evaluated on each row: refuse aggregates and windows.

    ``count(*) > 5`` or ``x < sum(x) over ()`` would compare each row with the whole
    dataset and flag the wrong rows. Aggregates inside a subquery are scalar, so fine.
    Call only on text that :func:`check_sql` accepts.
    """
    import sqlglot
    from sqlglot import exp

    masked = text
    for span in find_ref_spans(text):  # same length, so offsets stay put
        masked = masked[: span.start] + "_" * (span.end - span.start) + masked[span.end :]
    try:
        tree = sqlglot.parse_one(masked, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return []
    found = _first_aggregate(tree, exp)
    if found is None:
        return []
    kind = "window" if isinstance(found, exp.Window) else "aggregate"
    shown = found.sql(dialect="duckdb")
    name = found.this.sql_name() if isinstance(found, exp.Window) else found.sql_name()
    match = re.search(rf"\b{re.escape(name)}\s*\(", masked, re.IGNORECASE)
    return [
        Problem(
            path,
            f"{prefix}the expression uses the {kind} function `{shown}`, but it is "
            "evaluated on each row",
            "An expression check flags single rows: use `row_count` for the number of rows "
            "and `unique` for duplicates, compare with a subquery "
            "(`x <= (select max(x) from ...)`), or compute the aggregate in a transform "
            "and check its result.",
            offset=match.start() if match else None,
            value=text,
            step=step,
        )
    ]


def _first_aggregate(node: Any, exp: Any) -> Any:
    """The first aggregate or window function outside any subquery, depth first."""
    if isinstance(node, exp.Window | exp.AggFunc):
        return node
    if isinstance(node, exp.Query | exp.Subquery):
        return None
    for child in node.iter_expressions():
        found = _first_aggregate(child, exp)
        if found is not None:
            return found
    return None


def _sql_problems(sql: str, path: SpecPath, prefix: str, step: str | None) -> list[Problem]:
    issue = check_sql(sql, expression=path[-1] == "expression")
    if issue is None:
        return []
    return [
        Problem(path, prefix + issue.message, issue.hint, offset=issue.offset, value=sql, step=step)
    ]
