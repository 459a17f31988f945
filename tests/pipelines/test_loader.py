"""Every loader error names file:line:col; exact positions are asserted."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from headwater.errors import PipelineError, PipelineSyntaxError
from headwater.pipelines import PipelineSpec, load_pipeline, parse_pipeline

SRC = "pipelines/orders.yaml"


def fail(text: str) -> PipelineSyntaxError:
    with pytest.raises(PipelineSyntaxError) as info:
        parse_pipeline(textwrap.dedent(text), source=SRC)
    return info.value


def one(text: str) -> tuple[str | None, str]:
    """Location and message of a file with exactly one error."""
    err = fail(text)
    assert len(err.details["errors"]) == 1, err.details["errors"]
    return err.location, err.message


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "daily-orders.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            steps:
              - type: extract
                connection: landing
                stream: orders.csv
                to: raw.orders
            """
        )
    )
    spec = load_pipeline(path)
    assert spec.name == "daily-orders"
    step = spec.steps[0]
    assert step.name == "extract_raw_orders"
    assert step.location == f"{path}:2:5"
    assert spec.location_of(("steps", 0, "connection")) == f"{path}:3:17"
    assert spec.location_of(("steps", 0, "connection"), key=True) == f"{path}:3:5"
    assert spec.location_of(("steps", "extract_raw_orders", "mode")) == f"{path}:2:5"
    assert PipelineSpec.from_yaml(path) == spec
    assert PipelineSpec.from_yaml(str(path)) == spec


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "nope.yaml")
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PipelineSyntaxError, match="not UTF-8") as info:
        load_pipeline(bad)
    assert info.value.location == f"{bad}:1:1"


def test_invalid_yaml_uses_the_yaml_position() -> None:
    loc, msg = one("name: x\nsteps: [\n  {type: extract\n")
    assert loc == f"{SRC}:4:1"
    assert msg.startswith("invalid YAML:")
    err = fail("name: x\nsteps:\n\t- type: extract\n")
    assert err.location == f"{SRC}:3:1"
    assert err.hint is not None and "tabs" in err.hint
    assert one("name: a: b\n")[0] == f"{SRC}:1:8"


def test_top_level_not_a_mapping_and_empty() -> None:
    assert one("- a\n- b\n") == (
        f"{SRC}:1:1",
        "a pipeline must be a mapping with `name` and `steps`, got a list",
    )
    assert one("")[0] == f"{SRC}:1:1"
    assert one("# only a comment\n")[1] == "the pipeline file is empty"


def test_missing_steps_and_empty_steps() -> None:
    assert one("name: orders\ndescription: x\n") == (
        f"{SRC}:1:1",
        "missing required field `steps`",
    )
    assert one("name: orders\nsteps: []\n") == (f"{SRC}:2:8", "`steps` must not be empty")


def test_unknown_step_type_suggests() -> None:
    err = fail(
        """\
        name: orders
        steps:
          - name: pull
            type: extrct
            to: raw.orders
        """
    )
    assert err.location == f"{SRC}:4:11"
    assert err.message == "step `pull`: unknown step type `extrct`. Did you mean `extract`?"
    assert err.hint == "Valid step types: extract, transform, map, check, load, replicate, python."
    assert err.step == "pull"
    assert err.field == "steps[0].type"


def test_step_without_type_or_not_a_mapping() -> None:
    assert one("steps:\n  - to: raw.a\n") == (f"{SRC}:2:5", "steps[0]: the step has no `type`")
    loc, msg = one("steps:\n  - extract\n")
    assert (loc, msg) == (
        f"{SRC}:2:5",
        "steps[0]: each step must be a mapping of `type:` and fields, got text `extract`",
    )


def test_unknown_field_points_at_the_key_and_suggests() -> None:
    err = fail(
        """\
        name: orders
        steps:
          - name: extract_orders
            type: extract
            connection: landing
            stream: orders.csv
            to: raw.orders
          - name: clean_orders
            type: transform
            to: staging.orders
            sqll: select 1
        """
    )
    # the "missing `sql`" echo of the typo is not reported separately
    assert len(err.details["errors"]) == 1
    assert str(err) == (
        f"{SRC}:11:5: step `clean_orders`: unknown field `sqll`. Did you mean `sql`?"
    )
    assert err.field == "steps[1].sqll"


def test_field_of_another_step_type_is_explained() -> None:
    err = fail(
        """\
        steps:
          - {name: e, type: extract, connection: c, stream: s, to: raw.a, sql: select 1}
        """
    )
    assert err.location == f"{SRC}:2:67"
    assert err.message == "step `e`: unknown field `sql`."
    assert err.hint is not None and err.hint.startswith("`sql` belongs to `transform`")


def test_wrong_field_types_are_all_reported_at_their_values() -> None:
    err = fail(
        """\
        steps:
          - name: e
            type: extract
            connection: [a, b]
            stream: s
            to: raw.a
            retries: many
        """
    )
    assert [e["location"] for e in err.details["errors"]] == [f"{SRC}:4:17", f"{SRC}:7:14"]
    assert err.details["errors"][0]["message"] == (
        "step `e`: `connection` should be a valid string, got a list"
    )
    assert "`retries` should be a valid integer" in err.details["errors"][1]["message"]
    assert err.message.startswith("2 errors in pipeline `orders`:\n")
    assert err.location == f"{SRC}:4:17"


def test_missing_required_field_points_at_the_step() -> None:
    loc, msg = one(
        """\
        steps:
          - name: e
            type: extract
            stream: s
            to: raw.a
        """
    )
    assert (loc, msg) == (f"{SRC}:2:5", "step `e`: missing required field `connection`")


def test_load_mode_is_required() -> None:
    loc, msg = one(
        """\
        steps:
          - {name: out, type: load, from: raw.a, connection: c, target: t}
        """
    )
    assert (loc, msg) == (f"{SRC}:2:5", "step `out`: missing required field `mode`")


def test_duplicate_step_names_explicit_and_derived() -> None:
    err = fail(
        """\
        steps:
          - {name: a, type: extract, connection: c, stream: s, to: raw.a}
          - {name: a, type: extract, connection: c, stream: s, to: raw.b}
        """
    )
    assert err.location == f"{SRC}:3:12"
    assert err.message == "duplicate step name `a` (also used by the step at line 2)"
    err = fail(
        """\
        steps:
          - {type: extract, connection: c, stream: s, to: raw.a, mode: append}
          - {type: extract, connection: c, stream: t, to: raw.a, mode: append}
        """
    )
    assert err.location == f"{SRC}:3:5"
    assert err.hint == "Both steps get the default name `extract_raw_a`; set `name:` on one."


def test_duplicate_yaml_keys() -> None:
    loc, msg = one(
        """\
        steps:
          - name: e
            type: extract
            connection: c
            stream: s
            connection: d
            to: raw.a
        """
    )
    assert (loc, msg) == (f"{SRC}:6:5", "duplicate key `connection` (first set at line 4)")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("Raw.Orders", "Did you mean `raw.orders`?"),
        ("orders", "Datasets are named `zone.name`, e.g. `raw.orders`."),
        ("raw.orders.x", "Datasets are named `zone.name`, e.g. `raw.orders`."),
        ("raw.my-orders", "Did you mean `raw.my_orders`?"),
    ],
)
def test_invalid_dataset_name(value: str, hint: str) -> None:
    err = fail(
        f"steps:\n  - type: check\n    dataset: {value}\n"
        "    checks: [{type: row_count, min: 1}]\n"
    )
    assert err.location == f"{SRC}:3:14"
    assert err.message == (
        f"steps[0]: invalid dataset name `{value}` for `dataset`: expected `zone.name` "
        "(lower-case letters, digits and `_`)"
    )
    assert err.hint == hint


def test_merge_without_keys_points_at_mode() -> None:
    loc, msg = one(
        """\
        steps:
          - name: e
            type: extract
            connection: c
            stream: s
            to: raw.a
            mode: merge
        """
    )
    assert (loc, msg) == (
        f"{SRC}:7:11",
        "step `e`: mode `merge` needs `keys`: the columns that identify a row",
    )


def test_invalid_mode_suggests() -> None:
    err = fail(
        "steps:\n  - {name: e, type: extract, connection: c, stream: s, to: raw.a, mode: appnd}\n"
    )
    assert err.location == f"{SRC}:2:73"
    assert err.message == "step `e`: invalid value `appnd` for `mode`. Did you mean `append`?"
    assert err.hint == "Valid values: append, overwrite, merge."


def test_sql_that_does_not_parse_points_inside_the_block() -> None:
    err = fail(
        """\
        steps:
          - name: clean
            type: transform
            to: staging.orders
            sql: |
              select o.*, c.country
              from {{ ref('raw.orders') }} o
              join {{ ref('raw.customers') }} c using (customer_id)
              where o.amount > = 0
        """
    )
    # line 9 of the file; the stray `=` sits in column 24
    assert err.location == f"{SRC}:9:24"
    assert err.message == "step `clean`: invalid SQL in `sql` near `=`: incomplete expression"


def test_sql_error_after_a_ref_keeps_the_original_column() -> None:
    err = fail(
        """\
        steps:
          - name: clean
            type: transform
            to: staging.orders
            sql: "select * from {{ ref('raw.orders') }} where"
        """
    )
    assert err.location == f"{SRC}:5:49"
    assert "near `where`" in err.message


def test_sql_must_be_one_query() -> None:
    loc, msg = one(
        "steps:\n  - {name: t, type: transform, to: raw.b, sql: 'insert into x select 1'}\n"
    )
    assert (loc, msg) == (
        f"{SRC}:2:48",
        "step `t`: `sql` must be a query (SELECT, WITH, ...), not INSERT",
    )
    loc, msg = one("steps:\n  - {name: t, type: transform, to: raw.b, sql: 'select 1; select 2'}\n")
    assert msg == "step `t`: `sql` must hold exactly one query, found 2 statements"


def test_unknown_template_name_is_located() -> None:
    """dbt's `var()` is not a Headwater name: the error points at it and says what is."""
    err = fail(
        """\
        steps:
          - name: t
            type: transform
            to: raw.b
            sql: |
              select *
              from {{ ref('raw.a') }}
              where day = {{ var('day') }}
        """
    )
    assert err.location == f"{SRC}:8:22"
    assert err.message == "unknown name `var`. Did you mean `vars`?"
    assert "`{{ vars.name }}`" in (err.hint or "")


def test_unknown_check_type_and_check_errors() -> None:
    err = fail(
        """\
        steps:
          - name: check_orders
            type: check
            dataset: staging.orders
            checks:
              - {type: not_nul, column: id}
              - {type: not_null}
              - {type: range, column: amount}
              - {type: range, column: amount, min: 5, max: 1}
              - {type: regex, column: email, pattern: '(['}
              - {type: expression, expression: 'a >= '}
              - {type: unique, colums: [id]}
              - {type: row_count, min: 1, severity: fatal}
        """
    )
    got = [(e["location"], e["message"]) for e in err.details["errors"]]
    p = "step `check_orders`: "
    assert got == [
        (f"{SRC}:6:16", p + "checks[0]: unknown check type `not_nul`. Did you mean `not_null`?"),
        (f"{SRC}:7:16", p + "checks[1]: `not_null` needs exactly one of `column` or `columns`"),
        (f"{SRC}:8:16", p + "checks[2]: `range` needs `min`, `max` or both"),
        (f"{SRC}:9:52", p + "checks[3]: `min` 5 is above `max` 1"),
        (f"{SRC}:10:47", p + "check `regex_email`: invalid regular expression `([`: missing ]: ["),
        (
            f"{SRC}:11:43",
            p + "check `expression`: invalid SQL in `expression` near `>=`: incomplete expression",
        ),
        (f"{SRC}:12:24", p + "checks[6]: unknown field `colums`. Did you mean `columns`?"),
        (f"{SRC}:13:45", p + "checks[7]: invalid value `fatal` for `severity`."),
    ]
    assert err.details["errors"][0]["hint"] == (
        "Valid check types: not_null, unique, accepted_values, range, regex, length, row_count, "
        "expression, schema, freshness, references, reconcile, drift."
    )


def test_duplicate_check_names() -> None:
    err = fail(
        """\
        steps:
          - name: c
            type: check
            dataset: raw.a
            checks:
              - {type: expression, expression: a > 0}
              - {type: expression, expression: b > 0}
        """
    )
    assert err.location == f"{SRC}:7:9"
    assert err.message.startswith("step `c`: duplicate check name `expression`")


def test_depends_on_unknown_and_self() -> None:
    err = fail(
        "steps:\n  - {name: a, type: extract, connection: c, stream: s, to: raw.a,"
        " depends_on: [b, a]}\n"
    )
    assert [e["location"] for e in err.details["errors"]] == [f"{SRC}:2:80", f"{SRC}:2:83"]
    assert err.details["errors"][1]["message"] == "step `a`: a step cannot depend on itself"


def test_pipeline_name_rules() -> None:
    assert (
        one("name: 'my pipeline'\nsteps: [{type: extract, connection: c, stream: s, to: raw.a}]\n")[
            0
        ]
        == f"{SRC}:1:7"
    )
    with pytest.raises(PipelineSyntaxError, match="no `name` and no file name") as info:
        parse_pipeline("steps: [{type: extract, connection: c, stream: s, to: raw.a}]\n")
    assert info.value.location == "<string>:1:1"


def test_yaml_oddities_are_syntax_errors() -> None:
    assert "recursive YAML alias" in fail("a: &a [*a]\nsteps: []\n").message
    assert "unsupported YAML tag" in fail("steps: !!python/object:os.system {}\n").message
    assert (
        one("1: 2\nname: x\nsteps: [{type: extract, connection: c, stream: s, to: raw.a}]\n")[1]
        == "keys must be text, got number `1`"
    )
    err = fail(
        "steps:\n  - {type: extract, connection: c, stream: s, to: raw.a, options: {1: 2}}\n"
    )
    assert err.message == "steps[0]: keys of `options` must be text, got number `1`"


def test_merge_keys_and_anchors_are_supported() -> None:
    spec = parse_pipeline(
        textwrap.dedent(
            """\
            name: p
            steps:
              - &landing {type: extract, connection: landing, stream: a.csv, to: raw.a}
              - {<<: *landing, stream: b.csv, to: raw.b}
            """
        ),
        source=SRC,
    )
    assert [s.name for s in spec.steps] == ["extract_raw_a", "extract_raw_b"]
    assert spec.steps[1].connection == "landing"  # type: ignore[union-attr]


def test_errors_survive_pickling_and_serialize() -> None:
    err = fail("steps:\n  - {type: extrct}\n")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err)
    assert clone.details["errors"] == err.details["errors"]
    attrs = err.attrs()
    assert attrs["type"] == "PipelineSyntaxError"
    assert attrs["location"] == f"{SRC}:2:12"


def test_from_dict_errors_name_field_paths() -> None:
    with pytest.raises(PipelineSyntaxError) as info:
        PipelineSpec.from_dict(
            {"name": "p", "steps": [{"type": "transform", "to": "raw.b", "sqll": "x"}]}
        )
    assert info.value.location == "steps[0].sqll"
    with pytest.raises(PipelineSyntaxError) as info:
        PipelineSpec.from_dict(["not", "a", "mapping"])
    assert info.value.location == "<root>"


def test_retry_delay_is_bounded_and_finite() -> None:
    # an infinite delay used to pass validation and crash time.sleep at the first retry
    step = "steps:\n  - {name: e, type: extract, connection: c, stream: s, to: raw.a, %s}\n"
    for value, got in [
        ("1e400", "text `1e400`"),
        (".inf", "number `inf`"),
        (".nan", "number `nan`"),
    ]:
        assert one(step % f"retry_delay: {value}") == (
            f"{SRC}:2:80",
            f"step `e`: `retry_delay` should be a finite number, got {got}",
        )
    assert one(step % "retry_delay: 3601") == (
        f"{SRC}:2:80",
        "step `e`: `retry_delay` should be less than or equal to 3600, got number `3601`",
    )
    assert parse_pipeline(step % "retry_delay: 3600", source=SRC).steps[0].retry_delay == 3600


@pytest.mark.parametrize(
    ("bound", "got"),
    [
        ("min: .inf", "`min` should be a finite number, got number `inf`"),
        ("max: -.inf", "`max` should be a finite number, got number `-inf`"),
        ("min: .NaN", "`min` should be a finite number, got number `nan`"),
    ],
)
def test_range_bounds_must_be_finite(bound: str, got: str) -> None:
    # DuckDB cannot bind an infinite or NaN bound: refuse it when the file is loaded
    text = """\
        steps:
          - name: c
            type: check
            dataset: raw.a
            checks:
              - {type: range, column: x, %s}
        """
    assert one(text % bound) == (f"{SRC}:6:39", f"step `c`: checks[0]: {got}")


def test_accepted_values_must_be_finite() -> None:
    assert one(
        """\
        steps:
          - name: c
            type: check
            dataset: raw.a
            checks:
              - {type: accepted_values, column: x, values: [1.5, .nan]}
        """
    ) == (
        f"{SRC}:6:58",
        "step `c`: checks[0]: `values[1]` should be a finite number, got number `nan`",
    )


def test_expression_checks_refuse_aggregates_and_window_functions() -> None:
    # the expression is evaluated row by row: an aggregate or a window would count
    # rows against the whole dataset and quarantine the wrong ones
    err = fail(
        """\
        steps:
          - name: c
            type: check
            dataset: raw.a
            checks:
              - {name: enough, type: expression, expression: count(*) > 5}
              - {name: share, type: expression, expression: 'x * 2 < sum(x) over ()'}
              - {name: nested, type: expression, expression: 'coalesce(max(x), 0) > 1'}
              - {name: sub, type: expression, expression: 'x <= (select max(x) from t)'}
              - {name: plain, type: expression, expression: 'abs(x) < 10 and y is not null'}
        """
    )
    got = [(e["location"], e["message"]) for e in err.details["errors"]]
    assert got == [
        (
            f"{SRC}:6:54",
            "step `c`: check `enough`: the expression uses the aggregate function `COUNT(*)`, "
            "but it is evaluated on each row",
        ),
        (
            f"{SRC}:7:62",
            "step `c`: check `share`: the expression uses the window function "
            "`SUM(x) OVER ()`, but it is evaluated on each row",
        ),
        (
            f"{SRC}:8:64",
            "step `c`: check `nested`: the expression uses the aggregate function `MAX(x)`, "
            "but it is evaluated on each row",
        ),
    ]
    assert err.details["errors"][0]["hint"] is not None
    assert "row_count" in err.details["errors"][0]["hint"]


def test_accepted_values_refuse_unquoted_yaml_booleans() -> None:
    # YAML 1.1 reads yes/no/on/off as booleans, which never equal a text column's values
    text = """\
        steps:
          - name: c
            type: check
            dataset: raw.a
            checks:
              - {type: accepted_values, column: answer, values: %s}
        """
    err = fail(text % "[maybe, yes, No]")
    assert err.location == f"{SRC}:6:65"
    assert err.message == (
        "step `c`: check `accepted_values_answer`: `values` holds unquoted `yes`, `No`, "
        "which YAML reads as the booleans `true`, `false`"
    )
    assert err.hint is not None and "['yes', 'No']" in err.hint
    assert fail(text % "[on, off]").location == f"{SRC}:6:58"
    # quoted words are text, and true/false are meant as booleans
    for ok in ("['yes', 'no']", "[true, false]", '["on", off2]'):
        check = parse_pipeline(textwrap.dedent(text % ok), source=SRC).steps[0].checks[0]
        assert check.values in (["yes", "no"], [True, False], ["on", "off2"])
