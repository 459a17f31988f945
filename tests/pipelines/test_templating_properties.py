"""Property tests of the template language: any text loads or fails with a located error.

Whatever a user writes inside a template (a typo, half a tag, Python internals, a filter
that does not exist), loading the pipeline either succeeds or raises
``PipelineSyntaxError`` pointing at ``file:line:col`` — never another exception, never a
traceback. Parameter values given as text convert to their type and back.
"""

from __future__ import annotations

import json
import re
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.errors import PipelineSyntaxError
from headwater.pipelines import parse_pipeline
from headwater.pipelines.params import coerce, to_json

SRC = "pipelines/p.yaml"
LOCATION = re.compile(r"pipelines/p\.yaml:\d+:\d+")
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)

pieces = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " if ",
        " for x in ",
        " endif ",
        " endfor ",
        "params.",
        "params.region",
        "params.n",
        "vars.",
        "vars.table",
        "item",
        "interval.start",
        "steps.a.rows_out",
        "''.__class__",
        "|upper",
        "|nosuchfilter",
        "(",
        ")",
        "[0]",
        "'x'",
        " ~ ",
        "1/0",
        "ref('raw.a')",
        "ref(",
        "select 1 as x",
    ]
)
templates = st.lists(pieces, min_size=1, max_size=8).map("".join)

PIPELINE = """\
name: p
params:
  region: {{default: eu}}
  n: {{type: integer, default: 3}}
vars:
  table: "t_{{{{ params.region }}}}"
steps:
  - {{name: a, type: transform, sql: "select 1 as x", to: raw.a}}
  - name: b
    type: transform
    when: {when}
    sql: {sql}
    to: staging.b
"""


def _load_or_located_error(text: str) -> None:
    try:
        parse_pipeline(text, source=SRC)
    except PipelineSyntaxError as exc:
        assert exc.location is not None and LOCATION.fullmatch(exc.location), exc.location
        assert all(LOCATION.fullmatch(e["location"]) for e in exc.details["errors"])


@SETTINGS
@given(templates, st.one_of(st.just("steps.a.succeeded"), templates))
def test_any_template_loads_or_fails_located(sql: str, when: str) -> None:
    _load_or_located_error(PIPELINE.format(sql=json.dumps(sql), when=json.dumps(when)))


values = st.one_of(
    st.tuples(st.just("integer"), st.integers(-(10**12), 10**12)),
    st.tuples(st.just("boolean"), st.booleans()),
    st.tuples(st.just("date"), st.dates(date(1, 1, 1), date(9999, 12, 31))),
    st.tuples(st.just("string"), st.text(max_size=20)),
    st.tuples(
        st.just("list"),
        st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=4),
    ),
)


@SETTINGS
@given(values)
def test_parameter_text_round_trips(kind_value: tuple[str, object]) -> None:
    kind, value = kind_value
    text = ",".join(value) if isinstance(value, list) else to_json(value)
    if isinstance(value, bool):
        text = str(value).lower()
    assert coerce(kind, str(text)) == value
