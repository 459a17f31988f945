"""Property tests: valid specs survive YAML; mutated files fail only with located errors."""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.errors import PipelineSyntaxError
from headwater.pipelines import PipelineSpec, parse_pipeline

SRC = "pipelines/p.yaml"
LOCATION = re.compile(r"pipelines/p\.yaml:\d+:\d+")
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

ident = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
datasets = st.builds(lambda zone, name: f"{zone}.{name}", ident, ident)
# PyYAML's dumper does not round-trip control characters and Unicode line separators
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), texts)
modes = st.sampled_from(["append", "overwrite", "merge"])
SQL = [
    "select * from {{ ref('%s') }}",
    'select a, count(*) as n\nfrom {{ref("%s")}}\ngroup by a\n',
    "with x as (\n  select * from {{ ref( '%s' ) }}\n)\nselect * from x where y > 1\n",
]


@st.composite
def writes(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(modes)
    out: dict[str, Any] = {"to": draw(datasets), "mode": mode}
    if mode == "merge" or draw(st.booleans()):
        out["keys"] = draw(st.lists(ident, min_size=1, max_size=3))
    return out


@st.composite
def checks(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["not_null", "unique", "accepted_values", "range", "regex", "row_count", "expression"]
        )
    )
    out: dict[str, Any] = {"type": kind, "name": name}
    if kind in ("not_null", "unique"):
        if draw(st.booleans()):
            out["column"] = draw(ident)
        else:
            out["columns"] = draw(st.lists(ident, min_size=1, max_size=3))
    elif kind == "accepted_values":
        out["column"] = draw(ident)
        out["values"] = draw(st.lists(st.one_of(ident, st.integers()), min_size=1, max_size=4))
    elif kind in ("range", "row_count"):
        low, high = sorted(draw(st.lists(st.integers(0, 1000), min_size=2, max_size=2)))
        bounds = draw(st.sampled_from([{"min": low}, {"max": high}, {"min": low, "max": high}]))
        out.update(bounds)
        if kind == "range":
            out["column"] = draw(ident)
            out["min_inclusive"] = draw(st.booleans())
    elif kind == "regex":
        out["column"] = draw(ident)
        out["pattern"] = draw(st.sampled_from([r"^[^@]+@[^@]+$", r"\d{4}-\d{2}", "[A-Z]+"]))
    else:
        out["expression"] = draw(st.sampled_from(["a >= b", "x is not null and y in (1, 2)"]))
    if draw(st.booleans()):
        out["severity"] = draw(st.sampled_from(["error", "warn"]))
    return out


@st.composite
def steps(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["extract", "transform", "check", "load"]))
    out: dict[str, Any] = {"name": name, "type": kind}
    if kind == "extract":
        out.update(connection=draw(ident), stream=draw(ident) + "/*.csv", **draw(writes()))
        out["options"] = draw(st.dictionaries(ident, scalars, max_size=3))
    elif kind == "transform":
        out.update(sql=draw(st.sampled_from(SQL)) % draw(datasets), **draw(writes()))
    elif kind == "check":
        n = draw(st.integers(1, 4))
        out.update(dataset=draw(datasets), checks=[draw(checks(f"c{j}")) for j in range(n)])
    else:
        out.update(
            {"from": draw(datasets), "connection": draw(ident), "target": draw(ident)},
            mode=draw(modes),
        )
        out["keys"] = draw(st.lists(ident, min_size=1, max_size=2))
    if draw(st.booleans()):
        out["retries"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        out["description"] = draw(texts)
    return out


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(ident, min_size=1, max_size=5, unique=True))
    data: dict[str, Any] = {"name": draw(ident), "steps": [draw(steps(n)) for n in names]}
    if draw(st.booleans()):
        data["description"] = draw(texts)
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _load_or_located_error(text: str) -> PipelineSpec | None:
    """Loading either succeeds or raises PipelineSyntaxError pointing into the file."""
    try:
        return parse_pipeline(text, source=SRC)
    except PipelineSyntaxError as exc:
        assert exc.location is not None and LOCATION.fullmatch(exc.location), exc.location
        assert exc.details["errors"], exc
        assert all(LOCATION.fullmatch(e["location"]) for e in exc.details["errors"])
        return None


@SETTINGS
@given(pipelines())
def test_valid_specs_round_trip_through_yaml(data: dict[str, Any]) -> None:
    expected = PipelineSpec.from_dict(data)
    loaded = parse_pipeline(_dump(data), source=SRC)
    assert loaded == expected
    assert all(LOCATION.fullmatch(step.location or "") for step in loaded.steps)
    assert PipelineSpec.from_yaml(expected.to_yaml()) == expected
    assert PipelineSpec.from_dict(expected.to_dict()) == expected


NOISE = [*":-{}[]'\"#&*!|>%@`,?\t\n ", "a", "1", "  ", "- ", ": ", "{{", "}}"]


@SETTINGS
@given(pipelines(), st.data())
def test_text_mutations_fail_only_with_located_syntax_errors(
    data: dict[str, Any], choice: st.DataObject
) -> None:
    text = _dump(data)
    for _ in range(choice.draw(st.integers(1, 3))):
        at = choice.draw(st.integers(0, len(text)))
        op = choice.draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "drop_line"]))
        lines = text.splitlines(keepends=True)
        line = choice.draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "insert":
            text = text[:at] + choice.draw(st.sampled_from(NOISE)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + choice.draw(st.integers(1, 5)) :]
        elif op == "replace":
            text = text[:at] + choice.draw(st.sampled_from(NOISE)) + text[at + 1 :]
        elif op == "dup_line" and lines:
            text = "".join(lines[: line + 1] + lines[line:])
        elif lines:
            text = "".join(lines[:line] + lines[line + 1 :])
    _load_or_located_error(text)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


junk = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(ident, scalars, max_size=2),
    st.sampled_from(["Raw.Orders", "orders", "extrct", "upsert", "{{ var('x') }}", "select ("]),
)


@SETTINGS
@given(pipelines(), st.data())
def test_structural_mutations_fail_only_with_located_syntax_errors(
    data: dict[str, Any], choice: st.DataObject
) -> None:
    path = choice.draw(st.sampled_from(_paths(data)[1:]))
    parent: Any = data
    for part in path[:-1]:
        parent = parent[part]
    op = choice.draw(st.sampled_from(["delete", "replace", "add_unknown", "typo"]))
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = choice.draw(junk)
    elif op == "add_unknown" and isinstance(parent, dict):
        parent[f"{last}_x"] = choice.draw(scalars)
    elif op == "typo" and isinstance(parent, dict):
        parent[f"{last}s"] = parent.pop(last)
    _load_or_located_error(_dump(data))
