"""``{{ ref('zone.name') }}`` in SQL transforms: find, validate and render.

Pipeline SQL may name managed datasets through ``ref()`` so that the planner can
derive the order of steps from the data they read. A pipeline file's templates
(parameters, variables, ``{% if %}``) are rendered by
:mod:`headwater.pipelines.templating` first, which leaves each ``ref()`` in place; the
SQL that reaches this module holds ``ref()`` only, and any other template left in it
(say from a parameter value holding ``{{``) is rejected with a
:class:`~headwater.errors.PipelineSyntaxError` instead of being passed through to the
database as text.

Errors raised here carry the character ``offset`` of the offending template in
their ``details`` so that the loader can translate it into a line and column of
the YAML file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater.errors import PipelineSyntaxError

__all__ = [
    "DATASET_NAME_PATTERN",
    "RefSpan",
    "SqlIssue",
    "check_sql",
    "find_ref_spans",
    "find_refs",
    "quote_dataset",
    "render_refs",
]

#: ``zone.name``: two lower-case identifiers joined by one dot.
DATASET_NAME_PATTERN = r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"
_DATASET_NAME = re.compile(DATASET_NAME_PATTERN)

# Any template delimiter pair; the body is matched lazily and may span lines.
_TEMPLATE = re.compile(r"\{\{(?P<expr>.*?)\}\}|\{%(?P<stmt>.*?)%\}|\{#(?P<note>.*?)#\}", re.S)
_OPENERS = re.compile(r"\{\{|\{%|\{#")
_REF_CALL = re.compile(r"""^\s*ref\s*\(\s*(?P<q>['"])(?P<name>[^'"]*)(?P=q)\s*\)\s*$""", re.S)
_ANY_REF = re.compile(r"^\s*ref\s*\(", re.S)

_V1_ONLY = "Pipeline SQL v1 supports only `{{ ref('zone.name') }}` templates."


@dataclass(frozen=True)
class RefSpan:
    """One ``{{ ref(...) }}`` occurrence: the dataset and where it sits in the SQL text."""

    dataset: str
    start: int
    end: int


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def find_ref_spans(sql: str) -> list[RefSpan]:
    """Every ``ref()`` in ``sql`` in text order (duplicates kept), validating templates.

    Raises :class:`PipelineSyntaxError` (with ``offset`` in ``details``) for a
    template other than ``ref('zone.name')``, a malformed ``ref()``, an invalid
    dataset name, or an unclosed ``{{`` / ``{%`` / ``{#``.
    """
    spans: list[RefSpan] = []
    pos = 0
    for match in _TEMPLATE.finditer(sql):
        _check_unclosed(sql, pos, match.start())
        pos = match.end()
        text = match.group(0)
        expr = match.group("expr")
        if expr is None:
            kind = "statement" if match.group("stmt") is not None else "comment"
            raise PipelineSyntaxError(
                f"unsupported template {kind} `{_short(text)}`. {_V1_ONLY}",
                hint="Write the logic in SQL (CASE, WHERE, CTEs) or split it into steps.",
                offset=match.start(),
            )
        call = _REF_CALL.match(expr)
        if call is None:
            if _ANY_REF.match(expr):
                raise PipelineSyntaxError(
                    f"malformed ref `{_short(text)}`: expected one quoted dataset name",
                    hint="Write `{{ ref('zone.name') }}`, e.g. `{{ ref('raw.orders') }}`.",
                    offset=match.start(),
                )
            raise PipelineSyntaxError(
                f"unsupported template `{_short(text)}`. {_V1_ONLY}",
                hint="Name input datasets with `{{ ref('zone.name') }}`; other Jinja is not "
                "evaluated.",
                offset=match.start(),
            )
        name = call.group("name")
        if not _DATASET_NAME.match(name):
            raise PipelineSyntaxError(
                f"invalid dataset name `{name}` in ref(): expected `zone.name` with lower-case "
                "identifiers",
                hint="For example `{{ ref('raw.orders') }}`.",
                dataset=name,
                offset=match.start(),
            )
        spans.append(RefSpan(name, match.start(), match.end()))
    _check_unclosed(sql, pos, len(sql))
    return spans


def _check_unclosed(sql: str, start: int, end: int) -> None:
    opener = _OPENERS.search(sql, start, end)
    if opener is not None:
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener.group(0)]
        raise PipelineSyntaxError(
            f"unclosed template `{opener.group(0)}`: no matching `{closer}`",
            hint="Write `{{ ref('zone.name') }}`.",
            offset=opener.start(),
        )


def find_refs(sql: str) -> list[str]:
    """Datasets named by ``ref()`` in ``sql``, each once, in order of first appearance."""
    seen: dict[str, None] = {}
    for span in find_ref_spans(sql):
        seen.setdefault(span.dataset, None)
    return list(seen)


def quote_dataset(dataset: str) -> str:
    """``raw.orders`` -> ``"raw"."orders"`` (DuckDB sees datasets as views in schema ``zone``)."""
    zone, _, name = dataset.partition(".")
    return f'"{zone}"."{name}"'


def render_refs(sql: str, resolve: Callable[[str], str] | None = None) -> str:
    """Replace every ``{{ ref('zone.name') }}`` by ``resolve(name)``.

    ``resolve`` defaults to :func:`quote_dataset`. Validation is that of
    :func:`find_ref_spans`, so unsupported templates raise before anything runs.
    """
    resolver = resolve or quote_dataset
    parts: list[str] = []
    pos = 0
    for span in find_ref_spans(sql):
        parts.append(sql[pos : span.start])
        parts.append(resolver(span.dataset))
        pos = span.end
    parts.append(sql[pos:])
    return "".join(parts)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class SqlIssue:
    """Why some SQL cannot run; ``offset`` is a character offset into the original text."""

    message: str
    offset: int | None = None
    hint: str | None = None


def check_sql(sql: str, *, expression: bool = False, dialect: str = "duckdb") -> SqlIssue | None:
    """The first problem that stops ``sql`` from running, or None.

    Templates are validated as by :func:`find_ref_spans`; each ``ref()`` is then
    replaced by a placeholder table and the text parsed with sqlglot. A transform
    (``expression=False``) must be exactly one query (SELECT, WITH, VALUES, ...); with
    ``expression=True`` the text is a boolean expression such as a check's. Offsets
    point into the original text, refs included.
    """
    import sqlglot
    from sqlglot import exp

    try:
        spans = find_ref_spans(sql)
    except PipelineSyntaxError as exc:
        return SqlIssue(exc.message, exc.details.get("offset"), exc.hint)
    rendered, shifts, names = _with_placeholders(sql, spans)
    what = "`expression`" if expression else "`sql`"
    try:
        if expression:
            statements: list[Any] = [sqlglot.parse_one(rendered, read=dialect)]
        else:
            statements = [s for s in sqlglot.parse(rendered, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        highlight = str(first.get("highlight") or "")
        offset = None
        if first.get("line"):
            starts = [0] + [m.end() for m in re.finditer("\n", rendered)]
            line = min(int(first["line"]), len(starts))
            offset = starts[line - 1] + max(0, int(first.get("col") or 0) - len(highlight))
            offset = _original_offset(offset, shifts)
        reason = _clean_sqlglot(str(first.get("description") or exc), names)
        near = f" near `{_clean_sqlglot(highlight, names)}`" if highlight else ""
        return SqlIssue(f"invalid SQL in {what}{near}: {reason}", offset)
    except sqlglot.errors.SqlglotError as exc:
        return SqlIssue(f"invalid SQL in {what}: {_clean_sqlglot(str(exc), names)}")
    if expression:
        return None
    if len(statements) != 1:
        return SqlIssue(
            f"`sql` must hold exactly one query, found {len(statements)} statements",
            hint="Split the work into several transform steps, or combine queries with CTEs.",
        )
    if not isinstance(statements[0], exp.Query | exp.Values | exp.Pivot):
        return SqlIssue(
            f"`sql` must be a query (SELECT, WITH, ...), not {statements[0].key.upper()}",
            hint="The result is written to `to:` with `mode:`; do not INSERT, CREATE or "
            "UPDATE in the SQL.",
        )
    return None


def _with_placeholders(
    sql: str, spans: list[RefSpan]
) -> tuple[str, list[tuple[int, int, int, int]], dict[str, str]]:
    """Replace refs by placeholder tables; keep (new start, new end, old start, old end)."""
    parts: list[str] = []
    shifts: list[tuple[int, int, int, int]] = []
    names: dict[str, str] = {}
    pos = length = 0
    for k, span in enumerate(spans):
        token = f"__hw_ref_{k}__"
        names[token] = f"ref('{span.dataset}')"
        before = sql[pos : span.start]
        length += len(before)
        shifts.append((length, length + len(token), span.start, span.end))
        length += len(token)
        parts += [before, token]
        pos = span.end
    parts.append(sql[pos:])
    return "".join(parts), shifts, names


def _original_offset(offset: int, shifts: list[tuple[int, int, int, int]]) -> int:
    delta = 0
    for new_start, new_end, old_start, old_end in shifts:
        if offset < new_start:
            break
        if offset < new_end:
            return old_start
        delta = old_end - new_end
    return offset + delta


def _clean_sqlglot(text: str, names: dict[str, str]) -> str:
    """sqlglot messages quote tokens and classes by their repr; make them readable."""
    text = re.sub(r"<Token token_type: TokenType\.SENTINEL[^>]*>", "the end of the SQL", text)
    text = re.sub(r"<Token token_type: TokenType\.\w+, text: ([^,]*),[^>]*>", r"`\1`", text)
    text = re.sub(r"Required keyword: '\w+' missing for .*", "incomplete expression", text)
    for token, ref in names.items():
        text = text.replace(token, ref)
    return text
