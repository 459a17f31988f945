"""Parameters, variables, templates, for_each and when: what loads, and located errors."""

from __future__ import annotations

import textwrap
from datetime import date
from typing import Any

import pytest

from headwater.errors import PipelineSyntaxError
from headwater.pipelines import parse_pipeline
from headwater.pipelines.intervals import intervals
from headwater.pipelines.spec import PipelineSpec, TransformStep

SRC = "pipelines/p.yaml"


def load(text: str, **kwargs: Any) -> PipelineSpec:
    return parse_pipeline(textwrap.dedent(text), source=SRC, **kwargs)


def fail(text: str, **kwargs: Any) -> PipelineSyntaxError:
    with pytest.raises(PipelineSyntaxError) as info:
        load(text, **kwargs)
    return info.value


PARAMS = """\
name: p
params:
  region: {type: string, default: eu, choices: [eu, us]}
  limit: {type: integer, default: 10}
  day: {type: date}
  full: {type: boolean, default: false}
vars:
  table: "orders_{{ params.region }}"
  since: "{{ params.day }}"
steps:
  - name: t
    type: transform
    sql: |
      select * from {{ ref('raw.orders') }}
      where day >= '{{ vars.since }}'{% if not params.full %} and region = '{{ params.region }}'{% endif %}
      limit {{ params.limit }}
    to: "staging.{{ vars.table }}"
"""


def test_params_and_vars_render_with_types() -> None:
    spec = load(PARAMS, params={"day": "2024-03-01", "limit": "5", "region": "us"})
    step = spec.steps[0]
    assert isinstance(step, TransformStep)
    assert step.to == "staging.orders_us"
    assert step.sql == (
        "select * from {{ ref('raw.orders') }}\n"
        "where day >= '2024-03-01' and region = 'us'\n"
        "limit 5\n"
    )
    assert step.refs == ["raw.orders"]
    assert spec.bindings.params == {
        "region": "us",
        "limit": 5,
        "day": date(2024, 3, 1),
        "full": False,
    }
    assert spec.bindings.vars == {"table": "orders_us", "since": "2024-03-01"}
    full = load(PARAMS, params={"day": date(2024, 3, 1), "full": "true"})
    assert "region =" not in full.steps[0].sql  # type: ignore[union-attr]


def test_the_sql_filter_renders_typed_literals_that_duckdb_reads_back() -> None:
    import duckdb

    spec = load(
        """\
        name: p
        params:
          day: {type: date}
          who: {type: string}
          regions: {type: list, default: [eu, "o'hara"]}
        steps:
          - name: t
            type: transform
            sql: >-
              select {{ params.day | sql }} as day, {{ params.who | sql }} as who,
              'eu' in {{ params.regions | sql }} as has_eu
            to: staging.t
        """,
        params={"day": "2026-02-03", "who": "x'); drop table t; --"},
    )
    sql = spec.steps[0].sql  # type: ignore[union-attr]
    assert "2026-02-03" in sql and "CAST(" in sql.upper()
    (row,) = duckdb.sql(sql).fetchall()
    assert row == (date(2026, 2, 3), "x'); drop table t; --", True)
    from headwater.pipelines.templating import sql_literal

    assert sql_literal(None) == "NULL"


def test_parameter_errors_are_located_at_the_declaration() -> None:
    err = fail(PARAMS, params={"day": "2024-03-01", "limit": "ten"})
    assert err.location == f"{SRC}:4:3"
    assert err.message == (
        "parameter `limit` is of type `integer`, but the value given `ten` is not: "
        "expected an integer such as `10`"
    )
    err = fail(PARAMS, params={"day": "2024-03-01", "regoin": "us"})
    assert err.location == f"{SRC}:2:1"
    assert err.message == "unknown parameter `regoin`. Did you mean `region`?"
    assert err.hint == (
        "The pipeline declares: region, limit, day, full. Declare it under `params:` first."
    )
    err = fail(PARAMS)
    assert err.location == f"{SRC}:5:3"
    assert err.message == "parameter `day` has no default and no value was given"
    err = fail(PARAMS, params={"day": "2024-03-01", "region": "asia"})
    assert err.message == "parameter `region` must be one of `eu`, `us`, got `asia`"


def test_unknown_names_in_templates_are_located() -> None:
    err = fail(PARAMS.replace("params.limit", "params.limt"), params={"day": "2024-01-01"})
    assert err.location == f"{SRC}:16:16"
    assert err.message == "unknown parameter `limt`. Did you mean `limit`?"
    err = fail(PARAMS.replace("vars.table", "vars.tabel"), params={"day": "2024-01-01"})
    assert err.location == f"{SRC}:17:21"
    assert err.message == "unknown variable `tabel`. Did you mean `table`?"
    err = fail(PARAMS.replace("{{ vars.since }}", "{{ env.HOME }}"), params={"day": "2024-01-01"})
    assert err.location == f"{SRC}:15:24"
    assert err.message.startswith("unknown name `env`")


def test_template_syntax_errors_point_into_the_yaml() -> None:
    err = fail(
        """\
        name: p
        steps:
          - name: t
            type: transform
            sql: |
              select 1 as a
              {% if true %} , 2 as b
            to: staging.t
        """
    )
    assert err.location == f"{SRC}:7:7"
    assert err.message.startswith("invalid template: Unexpected end of template")
    err = fail(
        """\
        name: p
        steps:
          - {name: t, type: transform, sql: "select {{ 1 + }} as a", to: staging.t}
        """
    )
    assert err.location == f"{SRC}:3:45"
    assert err.message.startswith("invalid template:")


def test_the_sandbox_refuses_python_internals() -> None:
    err = fail(
        """\
        name: p
        steps:
          - name: t
            type: transform
            sql: "select '{{ ''.__class__.__mro__[1].__subclasses__() }}' as x"
            to: staging.t
        """
    )
    assert err.location == f"{SRC}:5:10"
    assert "undefined value" in err.message or "sandbox" in err.message


FAN_OUT = """\
name: fan
params:
  regions: {type: list, default: [eu, us-east]}
steps:
  - name: land
    type: transform
    for_each: "{{ params.regions }}"
    sql: "select '{{ item }}' as region"
    to: "raw.orders_{{ item | replace('-', '_') }}"
  - name: days
    type: transform
    for_each: {every: day, from: 2024-01-30, to: 2024-02-02}
    sql: "select date '{{ item.start }}' as day"
    to: "raw.day_{{ item.start | replace('-', '') }}"
  - name: both
    type: transform
    depends_on: [land]
    sql: select 1 as x
    to: staging.both
"""


def test_for_each_expands_into_predictably_named_children() -> None:
    spec = load(FAN_OUT)
    assert spec.step_names == [
        "land-eu",
        "land-us-east",
        "days-2024-01-30",
        "days-2024-01-31",
        "days-2024-02-01",
        "both",
    ]
    assert [s.to for s in spec.steps[:2]] == ["raw.orders_eu", "raw.orders_us_east"]  # type: ignore[union-attr]
    assert spec.steps[2].sql == "select date '2024-01-30' as day"  # type: ignore[union-attr]
    assert spec.step("both").depends_on == ["land-eu", "land-us-east"]
    # each child points at its parent's lines
    assert spec.location_of(("steps", "land-us-east", "sql")) == f"{SRC}:8:10"
    assert spec.bindings.items["land-us-east"] == "us-east"
    three = load(FAN_OUT, params={"regions": "a,b,c"})
    assert three.step_names[:3] == ["land-a", "land-b", "land-c"]


def test_for_each_errors() -> None:
    err = fail(FAN_OUT, params={"regions": "[]"})
    assert err.location == f"{SRC}:7:15"
    assert err.message == "`for_each` `{{ params.regions }}` gives an empty list"
    err = fail(FAN_OUT.replace("from: 2024-01-30", "form: 2024-01-30"))
    assert err.message == "unknown field `form` in a `for_each` partition set"
    assert err.location == f"{SRC}:12:28"
    err = fail(
        FAN_OUT.replace("    for_each: {every: day", "    name2: x\n    for_each: {every: dya")
    )
    assert "`every` must be one of hour, day, week, month" in err.message
    err = fail(FAN_OUT.replace("{{ item | replace", "{{ itme | replace"))
    assert err.message == "unknown name `itme`. Did you mean `item`?"
    err = fail(
        """\
        name: fan
        steps:
          - {type: transform, for_each: [a, b], sql: "select 1 as x", to: "raw.t_{{ item }}"}
        """
    )
    assert err.location == f"{SRC}:3:5"
    assert err.message == "a `for_each` step needs a `name`: its children are named `<name>-<item>`"


WHEN = """\
name: w
steps:
  - {name: extract_orders, type: transform, sql: "select 1 as id", to: raw.orders}
  - name: check_orders
    type: check
    dataset: raw.orders
    checks: [{type: not_null, column: id}]
  - name: export
    type: transform
    when: "{{ steps.check_orders.passed and steps.extract_orders.rows_out > 0 }}"
    sql: select 1 as x
    to: staging.export
"""


def test_when_reads_upstream_steps_and_depends_on_them() -> None:
    spec = load(WHEN)
    assert spec.step("export").depends_on == ["check_orders", "extract_orders"]
    assert spec.step("export").when == WHEN.split('when: "')[1].split('"')[0]


def test_when_typos_are_located() -> None:
    err = fail(WHEN.replace("steps.check_orders.passed", "steps.check_order.passed"))
    assert err.location == f"{SRC}:10:15"
    assert err.message == (
        "step `export`: `when`: unknown step `check_order` in `steps.check_order`. "
        "Did you mean `check_orders`?"
    )
    err = fail(WHEN.replace(".rows_out", ".row_out"))
    assert err.location == f"{SRC}:10:45"
    assert err.message == (
        "step `export`: `when`: step `extract_orders` has no output `row_out`. "
        "Did you mean `rows_out`?"
    )
    err = fail(
        WHEN.replace("{{ steps.check_orders.passed and", "{{ steps.check_orders.passed and and")
    )
    assert err.message.startswith("step `export`: `when`: invalid condition")
    err = fail(WHEN.replace("steps.check_orders.passed", "params.go"))
    assert err.message.startswith("step `export`: `when`: unknown parameter `go`")


def test_on_failure_names_a_known_step() -> None:
    err = fail(
        """\
        name: f
        steps:
          - {name: a, type: transform, sql: select 1 as x, to: raw.a, on_failure: alret}
          - {name: alert, type: python, function: "hooks:alert"}
        """
    )
    assert err.location == f"{SRC}:3:75"
    assert (
        err.message == "step `a`: `on_failure` names an unknown step `alret`. Did you mean `alert`?"
    )


def test_timeout_accepts_seconds_and_durations() -> None:
    spec = load(
        """\
        name: t
        steps:
          - {name: a, type: transform, sql: select 1 as x, to: raw.a, timeout: 90}
          - {name: b, type: transform, sql: select 1 as x, to: raw.b, timeout: 15m}
        """
    )
    assert [s.timeout for s in spec.steps] == [90.0, 900.0]
    err = fail(
        """\
        name: t
        steps:
          - {name: a, type: transform, sql: select 1 as x, to: raw.a, timeout: soon}
        """
    )
    assert err.location == f"{SRC}:3:72"
    assert "duration such as `90s`" in err.message


def test_intervals_are_half_open_and_aligned() -> None:
    days = intervals("2024-01-30", "2024-02-02", "day")
    assert [i.key for i in days] == ["2024-01-30", "2024-01-31", "2024-02-01"]
    assert days[-1].as_context() == {
        "start": "2024-02-01",
        "end": "2024-02-02",
        "every": "day",
        "key": "2024-02-01",
    }
    months = intervals("2024-01-15", "2024-03-01", "month")
    assert [(i.key, i.as_context()["end"]) for i in months] == [
        ("2024-01-01", "2024-02-01"),
        ("2024-02-01", "2024-03-01"),
    ]
    weeks = intervals("2024-01-03", "2024-01-10", "week")
    assert [i.key for i in weeks] == ["2024-01-01", "2024-01-08"]
    hours = intervals("2024-01-01T22:30", "2024-01-02T00:00", "hour")
    assert [i.key for i in hours] == ["2024-01-01T22:00:00", "2024-01-01T23:00:00"]
    with pytest.raises(ValueError, match="not after"):
        intervals("2024-01-02", "2024-01-01", "day")
