"""Jinja templates in pipeline files: sandboxed rendering and static name checks.

Any string field of a pipeline may hold ``{{ ... }}``, ``{% ... %}`` or ``{# ... #}``.
Templates run in Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: no access to Python internals (``__class__``,
``mro``, ...), no mutation of the values passed in, and an unknown name is an error
instead of an empty string.

Before anything renders, :func:`check_template` parses a template and walks its syntax
tree, so that a syntax error or a name that does not exist (``params.regoin``,
``steps.extract_ordrs.rows_out``) is reported at its character offset inside the string;
the loader turns that offset into ``file:line:col``.

The names a template sees (its :class:`Scope`):

``params``   the pipeline's parameters (``params:``), with values from ``--param``
``vars``     the pipeline's variables (``vars:``), rendered in order
``interval`` a backfill interval: ``start``, ``end``, ``every``, ``key``
``item``     the current element of a ``for_each`` step
``steps``    (``when:`` only) the outcome of upstream steps: ``steps.<name>.<output>``
``ref``      ``ref('zone.name')`` in SQL stays a dataset reference
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from headwater.errors import did_you_mean

__all__ = [
    "INTERVAL_FIELDS",
    "STEP_OUTPUTS",
    "Scope",
    "TemplateIssue",
    "TemplateRenderError",
    "check_template",
    "environment",
    "evaluate",
    "expression_text",
    "has_template",
    "render",
]

#: What ``steps.<name>`` offers in a ``when:`` condition.
STEP_OUTPUTS: dict[str, str] = {
    "status": "`succeeded`, `failed`, `skipped` or `reused`",
    "succeeded": "true when the step succeeded (or was reused by a resume)",
    "failed": "true when the step failed",
    "skipped": "true when the step was skipped",
    "passed": "for a check step: true when every check passed (warn ones too)",
    "checks": "for a check step: `checks.<name>.passed`, `.rows_failed`, `.severity`",
    "rows_in": "rows the step read",
    "rows_out": "rows the step wrote",
    "rows_quarantined": "rows the step sent to quarantine",
    "bytes": "bytes the step wrote",
    "seconds": "how long the step took",
    "error": "the error message of a failed step (else empty)",
    "outputs": "the datasets the step wrote",
}
INTERVAL_FIELDS = ("start", "end", "every", "key")

_OPENERS = ("{{", "{%", "{#")
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})


def _ref(name: str) -> str:
    """``ref('raw.orders')`` renders back to itself, so the planner still sees the ref."""
    return "{{ ref('" + str(name) + "') }}"


def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox every pipeline template renders in."""
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.globals["ref"] = _ref
    env.filters["sql"] = sql_literal
    return env


def sql_literal(value: Any) -> str:
    """The ``sql`` filter: ``{{ params.day | sql }}`` renders ``CAST('2026-02-03' AS DATE)``.

    Strings are quoted and escaped, dates and timestamps cast to their type, ``None`` is
    ``NULL`` and a list becomes ``(a, b, ...)`` for ``IN``; a bare ``{{ params.day }}``
    pastes the text as it is, which SQL reads as an expression (``2026-02-03`` is 2021).
    """
    from headwater.pipelines.incremental import literal_sql

    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(sql_literal(v) for v in value) + ")"
    return literal_sql(value)


_ENV = environment()


def has_template(text: str) -> bool:
    return any(opener in text for opener in _OPENERS)


class TemplateRenderError(Exception):
    """Rendering failed; ``offset`` points into the template text."""

    def __init__(self, message: str, offset: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.offset, self.hint = message, offset, hint


@dataclass(frozen=True)
class TemplateIssue:
    """One problem in a template: what, where (character offset) and what to do."""

    message: str
    offset: int | None = None
    hint: str | None = None


@dataclass
class Scope:
    """The names a template may use, and the attributes known for each.

    A value of ``None`` means any attribute is allowed (``item``); a mapping of names
    means exactly those (``params``); for ``steps`` the mapping is of step names to the
    outputs in :data:`STEP_OUTPUTS`.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    interval: bool = False
    item: bool = False
    steps: Mapping[str, Any] | None = None  # step name -> anything; None outside `when`

    def roots(self) -> list[str]:
        out = ["params", "vars"]
        if self.interval:
            out.append("interval")
        if self.item:
            out.append("item")
        if self.steps is not None:
            out.append("steps")
        return [*out, "ref"]


# --------------------------------------------------------------------------- checking


def _line_offset(text: str, lineno: int | None) -> int:
    if not lineno or lineno <= 1:
        return 0
    pos = 0
    for _ in range(lineno - 1):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return pos
        pos = nxt + 1
    return pos


def _syntax_offset(text: str, exc: jinja2.TemplateSyntaxError) -> int:
    """Best offset of a syntax error: the first tag on the error's line that fails alone."""
    start = _line_offset(text, exc.lineno)
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    openers = sorted(
        pos
        for opener in _OPENERS
        for pos in (m.start() for m in re.finditer(re.escape(opener), text[:end]))
    )
    closers = {"{{": "}}", "{%": "%}", "{#": "#}"}
    on_line = [p for p in openers if p >= start] or openers[-1:]
    for pos in on_line:
        close = text.find(closers[text[pos : pos + 2]], pos + 2)
        if close < 0:
            return pos
        if text[pos : pos + 2] == "{%":
            continue  # a block tag alone never parses (no end tag)
        try:
            _ENV.parse(text[pos : close + 2])
        except jinja2.TemplateSyntaxError:
            return pos
    return on_line[-1] if on_line else start


def _dotted(node: nodes.Node) -> list[str] | None:
    """``params.region`` / ``steps['x'].rows_out`` as a list of names, else None."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            if not isinstance(node.arg.value, str):
                return None
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return list(reversed(parts))
        else:
            return None


def _chains(tree: nodes.Node) -> Iterator[tuple[list[str], int]]:
    """Every longest name chain (``steps.x.rows_out``) in the tree, with its line."""
    seen: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in seen:
            continue
        chain = _dotted(node)
        # mark the inner nodes as seen so only the longest chain is reported
        inner: nodes.Node = node
        while isinstance(inner, nodes.Getattr | nodes.Getitem):
            inner = inner.node
            seen.add(id(inner))
        if chain is not None:
            yield chain, node.lineno


def _locals(tree: nodes.Node) -> set[str]:
    """Names the template binds itself (``{% set %}``, ``{% for x in %}``, macros)."""
    out: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.AssignBlock)):
        targets: list[nodes.Node] = (
            [] if isinstance(node, nodes.Macro) else [getattr(node, "target", None) or node]
        )
        if isinstance(node, nodes.Macro):
            out.add(node.name)
            out.update(a.name for a in node.args)
        for target in targets:
            for name in target.find_all(nodes.Name):
                out.add(name.name)
            if isinstance(target, nodes.Name):
                out.add(target.name)
    return out


def _find(text: str, chain: list[str], lineno: int | None) -> int:
    """Offset of ``a.b.c`` (or ``a['b']``) in ``text``, else the start of its line."""
    pattern = r"\b" + re.escape(chain[0])
    for part in chain[1:]:
        pattern += (
            r"\s*(?:\.\s*" + re.escape(part) + r"\b|\[\s*['\"]" + re.escape(part) + "['\"]\\s*\\])"
        )
    match = re.search(pattern, text)
    return match.start() if match else _line_offset(text, lineno)


def check_template(text: str, scope: Scope, *, expression: bool = False) -> list[TemplateIssue]:
    """Parse ``text`` and check the names it uses against ``scope``.

    With ``expression=True`` the text is one Jinja expression (a ``when:`` condition).
    """
    source = "{{ " + text + " }}" if expression else text
    shift = 3 if expression else 0
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        offset = max(0, _syntax_offset(source, exc) - shift) if not expression else 0
        what = "condition" if expression else "template"
        return [
            TemplateIssue(
                f"invalid {what}: {exc.message}",
                offset,
                "Templates use Jinja syntax: `{{ params.name }}`, `{% if ... %}...{% endif %}`.",
            )
        ]
    bound = _locals(tree)
    issues: list[TemplateIssue] = []
    for chain, lineno in _chains(tree):
        root = chain[0]
        if root in bound or root in _JINJA_GLOBALS:
            continue
        problem = _name_problem(chain, scope)
        if problem is not None:
            message, hint = problem
            at = _find(text, chain, lineno)
            issues.append(TemplateIssue(message, at, hint))
    return issues


def _name_problem(chain: list[str], scope: Scope) -> tuple[str, str | None] | None:
    root, rest = chain[0], chain[1:]
    roots = scope.roots()
    if root not in roots:
        close = did_you_mean(root, roots)
        hint = f"Templates can use: {', '.join(roots)}."
        if root == "steps":
            hint = "`steps` is only available in `when:` conditions."
        elif root == "interval":
            hint = (
                "`interval` is set by `headwater backfill`; check such a file with "
                "`headwater validate FILE --interval 2024-01-01`."
            )
        extra = " (only inside a `for_each` step)" if root == "item" else ""
        extra = " (only in a backfill)" if root == "interval" else extra
        return f"unknown name `{root}`{extra}." + (f" {close}" if close else ""), hint
    if root == "ref" or not rest:
        return None
    name = rest[0]
    if root in ("params", "vars"):
        known = scope.params if root == "params" else scope.vars
        if name not in known:
            noun = "parameter" if root == "params" else "variable"
            close = did_you_mean(name, known)
            listed = ", ".join(known) or "(none)"
            where = "`params:`" if root == "params" else "`vars:`"
            return (
                f"unknown {noun} `{name}`." + (f" {close}" if close else ""),
                f"Declared under {where}: {listed}.",
            )
    if root == "interval" and name not in INTERVAL_FIELDS:
        close = did_you_mean(name, INTERVAL_FIELDS)
        return (
            f"`interval` has no `{name}`." + (f" {close}" if close else ""),
            f"An interval has: {', '.join(INTERVAL_FIELDS)}.",
        )
    if root == "steps" and scope.steps is not None:
        if name not in scope.steps:
            close = did_you_mean(name, scope.steps)
            return (
                f"unknown step `{name}` in `steps.{name}`." + (f" {close}" if close else ""),
                "Steps: " + ", ".join(scope.steps),
            )
        if len(rest) > 1 and rest[1] not in STEP_OUTPUTS:
            output = rest[1]
            close = did_you_mean(output, STEP_OUTPUTS)
            return (
                f"step `{name}` has no output `{output}`." + (f" {close}" if close else ""),
                "Step outputs: " + ", ".join(STEP_OUTPUTS) + ".",
            )
    return None


# --------------------------------------------------------------------------- rendering


def expression_text(condition: str) -> str:
    """``"{{ x }}"`` -> ``"x"``; a bare expression is returned as it is."""
    stripped = condition.strip()
    match = re.fullmatch(r"\{\{(.*)\}\}", stripped, re.S)
    if match and "{{" not in match.group(1) and "}}" not in match.group(1):
        return match.group(1).strip()
    return stripped


def _failure(exc: Exception, text: str) -> TemplateRenderError:
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateRenderError(f"undefined value in template: {exc.message}")
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return TemplateRenderError(
            f"the template tried something the sandbox forbids: {exc}",
            hint="Templates can read values, not Python internals.",
        )
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateRenderError(f"invalid template: {exc.message}", _syntax_offset(text, exc))
    return TemplateRenderError(f"template failed: {type(exc).__name__}: {exc}")


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render a template string (raises :class:`TemplateRenderError`)."""
    if not has_template(text):
        return text
    try:
        return _ENV.from_string(text).render(dict(context))
    except Exception as exc:  # Jinja raises many kinds; each becomes a located problem
        raise _failure(exc, text) from None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one Jinja expression to a Python value (raises :class:`TemplateRenderError`)."""
    try:
        compiled = _ENV.compile_expression(expression, undefined_to_none=False)
        value = compiled(**dict(context))
    except Exception as exc:
        raise _failure(exc, expression) from None
    if isinstance(value, jinja2.Undefined):
        raise TemplateRenderError(f"`{expression}` is undefined")
    return value
