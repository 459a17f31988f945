"""ref() templates: finding, rendering, rejecting everything else, SQL checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.errors import PipelineSyntaxError
from headwater.transform import (
    check_sql,
    find_ref_spans,
    find_refs,
    quote_dataset,
    render_refs,
)

SQL = """select o.*, c.country from {{ ref('raw.orders') }} o
join {{ref("raw.customers")}} c using (customer_id)
join {{
    ref( 'raw.orders' )
}} again on true"""


def test_find_refs_any_quotes_and_whitespace_unique_in_order() -> None:
    assert find_refs(SQL) == ["raw.orders", "raw.customers"]
    spans = find_ref_spans(SQL)
    assert [s.dataset for s in spans] == ["raw.orders", "raw.customers", "raw.orders"]
    assert SQL[spans[1].start : spans[1].end] == '{{ref("raw.customers")}}'


def test_render_refs_default_quotes_identifiers() -> None:
    rendered = render_refs(SQL)
    assert '"raw"."orders" o' in rendered
    assert '"raw"."customers" c' in rendered
    assert "{{" not in rendered
    assert quote_dataset("staging.orders") == '"staging"."orders"'


def test_render_refs_with_resolver() -> None:
    assert render_refs("select * from {{ ref('raw.a') }}", lambda d: d.upper()) == (
        "select * from RAW.A"
    )


def test_no_templates_is_fine() -> None:
    assert find_refs("select '{' as brace, 1 as x") == []
    assert render_refs("select 1") == "select 1"


@pytest.mark.parametrize(
    ("sql", "fragment", "offset"),
    [
        ("select {{ var('x') }}", "unsupported template `{{ var('x') }}`", 7),
        ("select 1 {% if x %} , 2 {% endif %}", "unsupported template statement", 9),
        ("select 1 {# note #}", "unsupported template comment", 9),
        ("from {{ ref('raw.a', 'v2') }}", "malformed ref", 5),
        ("from {{ ref(raw.a) }}", "malformed ref", 5),
        ("from {{ ref('Raw.A') }}", "invalid dataset name `Raw.A` in ref()", 5),
        ("from {{ ref('orders') }}", "invalid dataset name `orders`", 5),
        ("from {{ ref('raw.a') }} join {{ ref('raw.b')", "unclosed template `{{`", 29),
    ],
)
def test_other_templates_are_rejected_with_an_offset(sql: str, fragment: str, offset: int) -> None:
    with pytest.raises(PipelineSyntaxError) as info:
        find_refs(sql)
    assert fragment in info.value.message
    assert info.value.details["offset"] == offset
    with pytest.raises(PipelineSyntaxError):
        render_refs(sql)


def test_v1_only_message() -> None:
    with pytest.raises(PipelineSyntaxError, match=r"v1 supports only `\{\{ ref"):
        find_refs("{{ config(materialized='table') }}")


def test_check_sql_accepts_queries_and_rejects_others() -> None:
    assert check_sql(SQL) is None
    assert check_sql("with a as (select 1) select * from a") is None
    assert check_sql("ship_date >= order_date and amount > 0", expression=True) is None
    issue = check_sql("insert into t select * from {{ ref('raw.a') }}")
    assert issue is not None and "not INSERT" in issue.message
    issue = check_sql("select 1; select 2")
    assert issue is not None and "found 2 statements" in issue.message


def test_check_sql_offsets_point_into_the_original_text() -> None:
    sql = "select *\nfrom {{ ref('raw.orders') }} o\nwhere o.x = = 1"
    issue = check_sql(sql)
    assert issue is not None and issue.offset is not None
    assert sql[issue.offset] == "="
    assert sql[: issue.offset].count("\n") == 2
    issue = check_sql("select {{ bad }}")
    assert issue is not None and issue.offset == 7


@given(
    st.lists(
        st.from_regex(r"[a-z_][a-z0-9_]{0,6}\.[a-z_][a-z0-9_]{0,6}", fullmatch=True),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["{{ref('%s')}}", '{{ ref("%s") }}', "{{\n  ref( '%s' )\n}}"]),
)
def test_refs_round_trip(datasets: list[str], template: str) -> None:
    sql = "select 1 from " + " join ".join(template % d for d in datasets)
    assert find_refs(sql) == list(dict.fromkeys(datasets))
    assert render_refs(sql, lambda d: f"<{d}>") == "select 1 from " + " join ".join(
        f"<{d}>" for d in datasets
    )
