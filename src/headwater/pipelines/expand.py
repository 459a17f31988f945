"""Before validation: parameters, variables, ``for_each`` fan-out and templates.

The loader hands the plain data of a pipeline file (and where each node sits) to
:func:`prepare`, which

1. resolves ``params:`` (values given on the command line or in Python, else defaults,
   converted to the declared types);
2. renders ``vars:`` in order (a variable may use parameters and earlier variables);
3. expands every step with ``for_each`` into one child step per item, named
   ``<name>-<item>`` (or ``<name>-<index>`` when items are not plain text), and points
   ``depends_on`` entries naming the parent at all its children;
4. renders every template in the steps (each child with its ``item``);
5. checks ``when:`` conditions (names of steps and their outputs), and makes each step
   depend on the steps its condition reads.

Every problem found keeps the path and character offset of the original text, so the
loader reports it at ``file:line:col``. The result is concrete data that the spec models
validate as usual, with a source map whose child steps point at their parent's lines.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.pipelines._errors import STEP_ADAPTER, Problem, describe, raw_name
from headwater.pipelines._positions import SourceMap, SpecPath
from headwater.pipelines.intervals import EVERY, Interval, intervals
from headwater.pipelines.params import PARAM_TYPES, resolve_params
from headwater.pipelines.templating import (
    Scope,
    TemplateRenderError,
    check_template,
    evaluate,
    expression_text,
    has_template,
    render,
)

__all__ = ["Bindings", "Prepared", "prepare", "when_steps"]

_SINGLE = re.compile(r"\s*\{\{(.*)\}\}\s*", re.S)
#: Fields whose text is not rendered when the file is loaded.
_DEFERRED = ("when", "for_each")


@dataclass
class Bindings:
    """The values templates saw when the pipeline was loaded."""

    params: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    interval: Interval | None = None
    items: dict[str, Any] = field(default_factory=dict)  # child step name -> its item
    parents: dict[str, str] = field(default_factory=dict)  # child step name -> parent name

    def context(self, item: Any = None, *, with_item: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"params": self.params, "vars": self.vars}
        if self.interval is not None:
            out["interval"] = self.interval.as_context()
        if with_item:
            out["item"] = item
        return out


@dataclass
class Prepared:
    data: Any
    bindings: Bindings
    problems: list[Problem]  # located with the *original* source map
    origin: list[int] | None = None  # expanded step index -> index in the file


def _suffix(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)).strip("_-")


def when_steps(condition: str) -> list[str]:
    """Step names a condition reads (``steps.x...`` / ``steps['x']``), in order."""
    text = expression_text(condition)
    found = re.findall(
        r"\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"])", text
    )
    return list(dict.fromkeys(a or b for a, b in found))


def prepare(
    data: dict[Any, Any],
    *,
    params: Mapping[str, Any] | None = None,
    interval: Interval | None = None,
) -> Prepared:
    """Resolve, expand and render ``data`` (see the module docstring)."""
    problems: list[Problem] = []
    bindings = Bindings(interval=interval)
    data = dict(data)
    declared = _declared_params(data)
    values, issues = resolve_params(declared, dict(params or {}))
    has_params = isinstance(data.get("params"), dict)
    for issue in issues:
        if issue.unknown:
            path: SpecPath = ("params",) if has_params else ()
            problems.append(Problem(path, issue.message, issue.hint, key=has_params))
        else:
            problems.append(Problem(("params", issue.name), issue.message, issue.hint, key=True))
    bindings.params = values
    if problems:  # nothing renders without every parameter
        return Prepared(data, bindings, problems)
    raw_vars = data.get("vars")
    if isinstance(raw_vars, dict):
        rendered: dict[str, Any] = {}
        for name, value in raw_vars.items():
            if not isinstance(name, str):
                continue  # the model reports it
            scope = Scope(params=values, vars=rendered, interval=interval is not None)
            ctx = {**bindings.context(), "vars": rendered}
            rendered[name] = _render_tree(value, ("vars", name), ctx, scope, problems)
        bindings.vars = rendered
        data["vars"] = rendered
    steps = data.get("steps")
    if not isinstance(steps, list):
        return Prepared(data, bindings, problems)
    expanded, origin, items = _expand(steps, bindings, problems)
    if problems:
        return Prepared(data, bindings, problems)
    # render each step's templates
    for j, raw in enumerate(expanded):
        if not isinstance(raw, dict):
            continue
        child = j in items
        scope = Scope(params=values, vars=bindings.vars, interval=interval is not None, item=child)
        ctx = bindings.context(items.get(j), with_item=child)
        out = {}
        for key, value in raw.items():
            path = ("steps", origin[j], key)
            out[key] = (
                value
                if key in _DEFERRED or (child and key == "name")
                else _render_tree(value, path, ctx, scope, problems)
            )
        expanded[j] = out
    names = [raw_name(raw, STEP_ADAPTER) for raw in expanded]
    for j, name in enumerate(names):
        if j in items and name is not None:
            bindings.items[name] = items[j]
            parent = steps[origin[j]].get("name") if isinstance(steps[origin[j]], dict) else None
            bindings.parents[name] = str(parent)
    known = [n for n in names if n is not None]
    for j, raw in enumerate(expanded):
        if isinstance(raw, dict) and isinstance(raw.get("when"), str):
            _check_when(raw, j in items, origin[j], names[j], known, bindings, problems)
    data["steps"] = expanded
    return Prepared(data, bindings, problems, None if problems else origin)


def remap_source(source_map: SourceMap | None, origin: list[int] | None) -> SourceMap | None:
    """A source map in which expanded step ``j`` sits where its original step was."""
    if source_map is None or origin is None:
        return source_map
    if origin == list(range(len(origin))):
        return source_map
    nodes = {
        p: info for p, info in source_map.nodes.items() if not (p[:1] == ("steps",) and len(p) > 1)
    }
    by_index: dict[int, list[tuple[SpecPath, Any]]] = {}
    for p, info in source_map.nodes.items():
        if p[:1] == ("steps",) and len(p) > 1 and isinstance(p[1], int):
            by_index.setdefault(p[1], []).append((p[2:], info))
    for j, i in enumerate(origin):
        for rest, info in by_index.get(i, []):
            nodes[("steps", j, *rest)] = info
    return SourceMap(source_map.source, nodes)


# --------------------------------------------------------------------------- params


def _declared_params(data: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    """Well-formed declarations only; the models report malformed ones at their place."""
    raw = data.get("params")
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, dict):
        return out
    for name, decl in raw.items():
        if not isinstance(name, str) or not isinstance(decl, dict):
            continue
        kind = decl.get("type", "string")
        if kind not in PARAM_TYPES:
            continue
        out[name] = decl
    return out


# --------------------------------------------------------------------------- rendering


def _render_tree(
    value: Any, path: SpecPath, ctx: dict[str, Any], scope: Scope, problems: list[Problem]
) -> Any:
    if isinstance(value, str):
        if not has_template(value):
            return value
        issues = check_template(value, scope)
        if issues:
            for issue in issues:
                problems.append(
                    Problem(
                        path,
                        issue.message,
                        _hint(issue.message, issue.hint),
                        offset=issue.offset,
                        value=value,
                    )
                )
            return value
        try:
            single = _SINGLE.fullmatch(value)
            if single and "{{" not in single.group(1) and "}}" not in single.group(1):
                native = evaluate(single.group(1), ctx)
                if isinstance(native, bool | int | float | list | dict) and native is not None:
                    return native  # `retries: "{{ params.n }}"` stays a number
            return render(value, ctx)
        except TemplateRenderError as exc:
            problems.append(Problem(path, exc.message, exc.hint, offset=exc.offset, value=value))
            return value
    if isinstance(value, list):
        return [_render_tree(v, (*path, k), ctx, scope, problems) for k, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_tree(v, (*path, k), ctx, scope, problems) for k, v in value.items()}
    return value


def _hint(message: str, hint: str | None) -> str | None:
    if message.startswith("unknown name `var`"):
        return (
            "A variable is `{{ vars.name }}` (declared under `vars:`), a parameter "
            "`{{ params.name }}` (under `params:`)."
        )
    return hint


# --------------------------------------------------------------------------- for_each


def _expand(
    steps: list[Any], bindings: Bindings, problems: list[Problem]
) -> tuple[list[Any], list[int], dict[int, Any]]:
    expanded: list[Any] = []
    origin: list[int] = []
    items_of: dict[int, Any] = {}
    children: dict[str, list[str]] = {}
    for i, raw in enumerate(steps):
        if not isinstance(raw, dict) or "for_each" not in raw:
            expanded.append(raw)
            origin.append(i)
            continue
        path: SpecPath = ("steps", i, "for_each")
        items = _items(raw["for_each"], path, bindings, problems)
        base = raw.get("name")
        if not isinstance(base, str) or not base:
            problems.append(
                Problem(
                    ("steps", i),
                    "a `for_each` step needs a `name`: its children are named `<name>-<item>`",
                    "Add `name:` to the step.",
                )
            )
            continue
        if items is None:
            continue
        suffixes = [_suffix(_label(item)) if _plain(item) else "" for item in items]
        if any(not s for s in suffixes) or len(set(suffixes)) < len(suffixes):
            suffixes = [str(k) for k in range(len(items))]
        names: list[str] = []
        for item, suffix in zip(items, suffixes, strict=True):
            child = {k: copy.deepcopy(v) for k, v in raw.items() if k != "for_each"}
            child["name"] = f"{base}-{suffix}"
            names.append(child["name"])
            items_of[len(expanded)] = item
            expanded.append(child)
            origin.append(i)
        children[base] = names
    if children:
        for raw in expanded:
            deps = raw.get("depends_on") if isinstance(raw, dict) else None
            if isinstance(deps, list):
                out: list[Any] = []
                for dep in deps:
                    out.extend(children.get(dep, [dep]) if isinstance(dep, str) else [dep])
                raw["depends_on"] = list(dict.fromkeys(out))
    return expanded, origin, items_of


def _plain(item: Any) -> bool:
    if isinstance(item, dict):
        return set(item) == {"start", "end", "every", "key"}  # a partition of a set
    return isinstance(item, str | int | float) and not isinstance(item, bool)


def _label(item: Any) -> Any:
    return item["key"] if isinstance(item, dict) else item


def _items(
    spec: Any, path: SpecPath, bindings: Bindings, problems: list[Problem]
) -> list[Any] | None:
    """The items of ``for_each``: a list, an expression giving one, or a partition set."""
    if isinstance(spec, list):
        if not spec:
            problems.append(Problem(path, "`for_each` is an empty list"))
            return None
        return spec
    if isinstance(spec, str):
        scope = Scope(
            params=bindings.params, vars=bindings.vars, interval=bindings.interval is not None
        )
        text = expression_text(spec)
        issues = check_template(text, scope, expression=True)
        if issues:
            problems.extend(Problem(path, i.message, i.hint, offset=None) for i in issues)
            return None
        try:
            value = evaluate(text, bindings.context())
        except TemplateRenderError as exc:
            problems.append(Problem(path, exc.message, exc.hint))
            return None
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            problems.append(
                Problem(
                    path,
                    f"`for_each` must give a list, `{spec}` gives {describe(value)}",
                    "Use a list parameter (`type: list`), a variable holding a list, or write "
                    "the list in the file.",
                )
            )
            return None
        if not value:
            problems.append(Problem(path, f"`for_each` `{spec}` gives an empty list"))
            return None
        return value
    if isinstance(spec, dict):
        return _partition_items(spec, path, bindings, problems)
    problems.append(
        Problem(
            path,
            f"`for_each` must be a list, an expression or a partition set, got {describe(spec)}",
            'For example `for_each: [eu, us]`, `for_each: "{{ params.regions }}"` or '
            "`for_each: {every: day, from: 2024-01-01, to: 2024-01-08}`.",
        )
    )
    return None


def _partition_items(
    spec: dict[Any, Any], path: SpecPath, bindings: Bindings, problems: list[Problem]
) -> list[Any] | None:
    unknown = [k for k in spec if k not in ("every", "from", "to")]
    if unknown:
        problems.append(
            Problem(
                (*path, unknown[0]),
                f"unknown field `{unknown[0]}` in a `for_each` partition set",
                "A partition set has `every` (hour, day, week, month), `from` and `to`.",
                key=True,
            )
        )
        return None
    missing = [k for k in ("every", "from", "to") if k not in spec]
    if missing:
        problems.append(
            Problem(
                path,
                f"a `for_each` partition set needs `{missing[0]}`",
                "For example `{every: day, from: 2024-01-01, to: 2024-01-08}`.",
            )
        )
        return None
    bounds: dict[str, Any] = {}
    scope = Scope(
        params=bindings.params, vars=bindings.vars, interval=bindings.interval is not None
    )
    for key in ("from", "to"):
        bounds[key] = _render_tree(spec[key], (*path, key), bindings.context(), scope, problems)
    if spec["every"] not in EVERY:
        problems.append(
            Problem(
                (*path, "every"),
                f"`every` must be one of {', '.join(EVERY)}, got {describe(spec['every'])}",
            )
        )
        return None
    try:
        found = intervals(bounds["from"], bounds["to"], str(spec["every"]))
    except ValueError as exc:
        problems.append(Problem(path, f"invalid `for_each` partition set: {exc}"))
        return None
    return [iv.as_context() for iv in found]


# --------------------------------------------------------------------------- when


def _check_when(
    raw: dict[Any, Any],
    child: bool,
    i: int,
    own: str | None,
    known: list[str],
    bindings: Bindings,
    problems: list[Problem],
) -> None:
    condition = raw["when"]
    path: SpecPath = ("steps", i, "when")
    text = expression_text(condition)
    scope = Scope(
        params=bindings.params,
        vars=bindings.vars,
        interval=bindings.interval is not None,
        item=child,
        steps={n: None for n in known},
    )
    issues = check_template(text, scope, expression=True)
    start = condition.find(text) if text else 0
    prefix = f"step `{own}`: " if own else f"steps[{i}]: "
    for issue in issues:
        offset = None if issue.offset is None else start + issue.offset
        problems.append(
            Problem(
                path,
                prefix + "`when`: " + issue.message,
                issue.hint,
                offset=offset,
                value=condition,
                step=own,
            )
        )
    if issues:
        return
    deps = raw.get("depends_on")
    deps = list(deps) if isinstance(deps, list) else []
    for name in when_steps(condition):
        if name == own:
            problems.append(
                Problem(
                    path,
                    prefix + "`when` cannot read the step's own outputs",
                    step=own,
                    offset=start + text.find(name),
                    value=condition,
                )
            )
        elif name not in deps:
            deps.append(name)
    if deps:
        raw["depends_on"] = deps


# --------------------------------------------------------------------------- on_failure


def flow_problems(data: dict[Any, Any]) -> list[Problem]:
    """``on_failure`` handlers that do not exist, handle themselves, or are chained."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    names = [raw_name(raw, STEP_ADAPTER) for raw in steps]
    known = [n for n in names if n is not None]
    handlers: dict[str, int] = {}
    out: list[Problem] = []
    for i, raw in enumerate(steps):
        target = raw.get("on_failure") if isinstance(raw, dict) else None
        if not isinstance(target, str) or target in ("fail", "continue"):
            continue
        prefix = f"step `{names[i]}`: " if names[i] else f"steps[{i}]: "
        path: SpecPath = ("steps", i, "on_failure")
        if target == names[i]:
            out.append(Problem(path, prefix + "a step cannot be its own failure handler"))
        elif target not in known:
            from headwater.errors import did_you_mean

            close = did_you_mean(target, [*known, "fail", "continue"])
            out.append(
                Problem(
                    path,
                    prefix
                    + f"`on_failure` names an unknown step `{target}`."
                    + (f" {close}" if close else ""),
                    "`on_failure` is `fail`, `continue`, or the name of a handler step.",
                    step=names[i],
                )
            )
        else:
            handlers[target] = i
    for target, i in handlers.items():
        handler = steps[names.index(target)]
        if isinstance(handler, dict) and handler.get("on_failure") not in (
            None,
            "fail",
            "continue",
        ):
            out.append(
                Problem(
                    ("steps", names.index(target), "on_failure"),
                    f"step `{target}` handles the failure of `{names[i]}` and cannot have a "
                    "handler itself",
                    "Handle everything in one handler step.",
                    step=target,
                )
            )
    return out
