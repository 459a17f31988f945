"""Planner: dataflow edges, check insertion, readiness, cycles, refs, connections, subsets."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.errors import (
    ConnectionNotFoundError,
    CycleError,
    PipelineError,
    RefError,
)
from headwater.pipelines import Plan, parse_pipeline, plan
from headwater.pipelines.spec import PipelineSpec
from tests.pipelines.test_loader_properties import pipelines

SRC = "pipelines/orders.yaml"

ORDERS = """\
name: orders
steps:
  - name: extract_orders
    type: extract
    connection: landing
    stream: orders/*.csv
    to: raw.orders
  - name: extract_customers
    type: extract
    connection: landing
    stream: customers.csv
    to: raw.customers
  - name: export_orders
    type: load
    from: staging.orders
    connection: exports
    target: orders.parquet
    mode: overwrite
  - name: clean_orders
    type: transform
    sql: |
      select o.*, c.country from {{ ref('raw.orders') }} o
      join {{ ref('raw.customers') }} c using (customer_id)
    to: staging.orders
  - name: check_orders
    type: check
    dataset: staging.orders
    checks:
      - {type: unique, column: order_id}
  - name: check_raw_orders
    type: check
    dataset: raw.orders
    checks:
      - {type: not_null, column: order_id}
  - name: check_orders_counts
    type: check
    dataset: staging.orders
    checks:
      - {type: row_count, min: 1}
"""


def spec_of(text: str) -> PipelineSpec:
    return parse_pipeline(textwrap.dedent(text), source=SRC)


def nothing(_: str) -> bool:
    return False


@pytest.fixture
def orders() -> Plan:
    return plan(spec_of(ORDERS), dataset_exists=nothing, connection_names={"landing", "exports"})


def test_order_follows_data_and_checks(orders: Plan) -> None:
    assert orders.order == (
        "extract_orders",
        "extract_customers",
        "check_raw_orders",
        "clean_orders",
        "check_orders",
        "check_orders_counts",
        "export_orders",
    )
    assert [s.name for s in orders.steps] == list(orders.order)
    assert orders.upstream("clean_orders") == [
        "extract_orders",
        "extract_customers",
        "check_raw_orders",
    ]
    assert orders.upstream("export_orders") == [
        "clean_orders",
        "check_orders",
        "check_orders_counts",
    ]
    assert orders.downstream("extract_orders") == ["check_raw_orders", "clean_orders"]
    assert orders.upstream("export_orders", transitive=True) == [
        "extract_orders",
        "extract_customers",
        "check_raw_orders",
        "clean_orders",
        "check_orders",
        "check_orders_counts",
    ]
    assert orders.inputs("clean_orders") == ("raw.orders", "raw.customers")
    assert orders.outputs("clean_orders") == ("staging.orders",)
    assert orders.inputs("export_orders") == ("staging.orders",)
    assert orders.outputs("export_orders") == ()
    assert orders.writers("staging.orders") == ["clean_orders"]
    assert orders.external_inputs == []
    reasons = {(e.upstream, e.downstream): e.reason for e in orders.edges}
    assert reasons[("check_raw_orders", "clean_orders")] == "check raw.orders"
    assert reasons[("extract_orders", "clean_orders")] == "raw.orders"


def test_levels_and_parallel_readiness(orders: Plan) -> None:
    assert orders.levels() == [
        ["extract_orders", "extract_customers"],
        ["check_raw_orders"],
        ["clean_orders"],
        ["check_orders"],
        ["check_orders_counts"],
        ["export_orders"],
    ]
    assert orders.ready(set(), set()) == ["extract_orders", "extract_customers"]
    assert orders.ready(set(), {"extract_orders"}) == ["extract_customers"]
    assert orders.ready({"extract_orders"}, {"extract_customers"}) == ["check_raw_orders"]
    done = {"extract_orders", "extract_customers", "check_raw_orders"}
    assert orders.ready(done, set()) == ["clean_orders"]
    done.add("clean_orders")
    assert orders.ready(done, set()) == ["check_orders"]  # checks of one dataset: one at a time
    assert orders.ready(done, {"check_orders"}) == []
    assert orders.ready(done | {"check_orders"}, set()) == ["check_orders_counts"]
    assert orders.ready(done | {"check_orders", "check_orders_counts"}, set()) == ["export_orders"]
    assert orders.ready(set(orders.order), set()) == []


def test_ties_keep_file_order() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: z, type: extract, connection: c, stream: s, to: raw.z}
          - {name: a, type: extract, connection: c, stream: s, to: raw.a}
          - {name: m, type: extract, connection: c, stream: s, to: raw.m}
        """
    )
    assert plan(spec, dataset_exists=nothing).order == ("z", "a", "m")


def test_check_on_existing_dataset_runs_before_its_readers() -> None:
    spec = spec_of(
        """\
        steps:
          - name: report
            type: transform
            sql: select count(*) from {{ ref('raw.orders') }}
            to: marts.report
          - name: check_raw
            type: check
            dataset: raw.orders
            checks: [{type: row_count, min: 1}]
        """
    )
    planned = plan(spec, dataset_exists=lambda d: d == "raw.orders")
    assert planned.order == ("check_raw", "report")
    assert planned.external_inputs == ["raw.orders"]


def test_missing_ref_is_located_at_the_ref_with_a_suggestion() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: e, type: extract, connection: c, stream: s, to: raw.orders}
          - name: t
            type: transform
            sql: |
              select *
              from {{ ref('raw.order') }}
            to: staging.orders
        """
    )
    with pytest.raises(RefError) as info:
        plan(spec, dataset_exists=nothing)
    err = info.value
    assert err.location == f"{SRC}:7:12"
    assert err.message == (
        "step `t` reads `raw.order`, which no step produces and the lake does not hold. "
        "Did you mean `raw.orders`?"
    )
    assert (err.step, err.dataset, err.field, err.pipeline) == ("t", "raw.order", "sql", "orders")


def test_missing_check_and_load_inputs_are_located_at_their_fields() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: c, type: check, dataset: raw.a, checks: [{type: row_count, min: 1}]}
          - {name: l, type: load, from: raw.b, connection: x, target: t, mode: append}
        """
    )
    with pytest.raises(RefError) as info:
        plan(spec, dataset_exists=nothing, known_datasets=["raw.bb"])
    err = info.value
    assert err.location == f"{SRC}:2:37"
    assert [e["location"] for e in err.details["errors"]] == [f"{SRC}:2:37", f"{SRC}:3:33"]
    assert "Did you mean `raw.bb`?" in err.details["errors"][1]["message"]
    assert plan(spec, dataset_exists=lambda d: True).order == ("c", "l")


def test_incremental_self_reference() -> None:
    spec = spec_of(
        """\
        steps:
          - name: dedupe
            type: transform
            sql: select distinct * from {{ ref('staging.events') }}
            to: staging.events
        """
    )
    with pytest.raises(RefError, match="only this step writes"):
        plan(spec, dataset_exists=nothing)
    assert plan(spec, dataset_exists=lambda d: True).order == ("dedupe",)


def test_cycle_is_named_and_located() -> None:
    spec = spec_of(
        """\
        steps:
          - name: start
            type: extract
            connection: c
            stream: s
            to: raw.seed
          - name: a
            type: transform
            sql: select * from {{ ref('raw.b') }} join {{ ref('raw.seed') }} using (id)
            to: raw.a
          - name: b
            type: transform
            sql: select * from {{ ref('raw.a') }}
            to: raw.b
        """
    )
    with pytest.raises(CycleError) as info:
        plan(spec, dataset_exists=nothing)
    err = info.value
    assert err.message == "steps depend on each other in a cycle: a -> b -> a"
    assert err.location == f"{SRC}:7:5"
    assert err.details["cycle"] == ["a", "b", "a"]
    assert err.hint is not None and "`b` needs `a` (raw.a)" in err.hint


def test_depends_on_cycle_and_edges() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: a, type: extract, connection: c, stream: s, to: raw.a, depends_on: [b]}
          - {name: b, type: extract, connection: c, stream: s, to: raw.b, depends_on: [a]}
        """
    )
    with pytest.raises(CycleError, match="a -> b -> a"):
        plan(spec, dataset_exists=nothing)
    spec = spec_of(
        """\
        steps:
          - {name: a, type: extract, connection: c, stream: s, to: raw.a, depends_on: [b]}
          - {name: b, type: extract, connection: c, stream: s, to: raw.b}
        """
    )
    planned = plan(spec, dataset_exists=nothing)
    assert planned.order == ("b", "a")
    assert planned.edges[0].reason == "depends_on"


def test_two_unordered_writers_are_ambiguous() -> None:
    text = """\
        steps:
          - {name: first, type: extract, connection: c, stream: s, to: raw.a, mode: append}
          - {name: second, type: extract, connection: c, stream: t, to: raw.a, mode: append%s}
        """
    with pytest.raises(PipelineError) as info:
        plan(spec_of(text % ""), dataset_exists=nothing)
    err = info.value
    assert type(err) is PipelineError
    assert err.message.startswith("steps `first` and `second` both write `raw.a`")
    assert err.location == f"{SRC}:3:65"
    assert err.hint is not None and "depends_on: [first]" in err.hint
    ordered = plan(spec_of(text % ", depends_on: [first]"), dataset_exists=nothing)
    assert ordered.order == ("first", "second")


def test_writers_ordered_by_data_are_fine() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: land, type: extract, connection: c, stream: s, to: raw.events, mode: append}
          - name: compact
            type: transform
            sql: select distinct * from {{ ref('raw.events') }}
            to: raw.events
          - {name: check, type: check, dataset: raw.events, checks: [{type: row_count, min: 1}]}
          - name: report
            type: transform
            sql: select count(*) n from {{ ref('raw.events') }}
            to: marts.report
        """
    )
    planned = plan(spec, dataset_exists=nothing)
    assert planned.order == ("land", "compact", "check", "report")
    assert planned.upstream("check") == ["land", "compact"]
    assert planned.upstream("report") == ["land", "compact", "check"]


def test_unknown_connections_are_reported_together() -> None:
    spec = spec_of(ORDERS)
    with pytest.raises(ConnectionNotFoundError) as info:
        plan(spec, dataset_exists=nothing, connection_names=["landings", "export"])
    err = info.value
    assert err.location == f"{SRC}:5:17"
    assert len(err.details["errors"]) == 3
    assert err.details["errors"][0]["message"] == (
        "step `extract_orders`: unknown connection `landing`. Did you mean `landings`?"
    )
    assert err.details["errors"][2]["location"] == f"{SRC}:16:17"
    assert err.hint is not None and "Declared connections: export, landings." in err.hint
    # without connection names the check is skipped
    assert len(plan(spec, dataset_exists=nothing)) == 7


def test_subset_selection(orders: Plan) -> None:
    only = orders.subset(["clean_orders"])
    # checks of the written dataset come along so readers never see unchecked data
    assert only.order == ("clean_orders", "check_orders", "check_orders_counts")
    assert only.external_inputs == ["raw.orders", "raw.customers"]
    bare = orders.subset(["clean_orders"], include_checks=False)
    assert bare.order == ("clean_orders",)
    assert bare.upstream("clean_orders") == []
    up = orders.subset(["+clean_orders"], include_checks=False)
    assert up.order == ("extract_orders", "extract_customers", "check_raw_orders", "clean_orders")
    assert orders.subset(["clean_orders"], upstream=True).order[-1] == "check_orders_counts"
    down = orders.subset(["check_orders+"])
    assert down.order == ("check_orders", "check_orders_counts", "export_orders")
    assert down.ready(set(), set()) == ["check_orders"]


def test_subset_keeps_order_through_unselected_steps(orders: Plan) -> None:
    sub = orders.subset(["extract_orders", "export_orders"], include_checks=False)
    assert sub.order == ("extract_orders", "export_orders")
    assert sub.upstream("export_orders") == ["extract_orders"]
    assert sub.edges[0].reason == "via unselected steps"
    assert sub.ready(set(), set()) == ["extract_orders"]


def test_subset_unknown_step_suggests(orders: Plan) -> None:
    with pytest.raises(PipelineError, match="Did you mean `clean_orders`") as info:
        orders.subset(["clean_order"])
    assert info.value.step == "clean_order"
    with pytest.raises(PipelineError, match="empty step selection"):
        orders.subset([])
    with pytest.raises(PipelineError, match="no step `nope`"):
        orders.upstream("nope")


def test_plan_rejects_duplicate_names_in_hand_built_specs() -> None:
    spec = PipelineSpec.model_validate(
        {
            "name": "p",
            "steps": [
                {"name": "a", "type": "extract", "connection": "c", "stream": "s", "to": "raw.a"},
                {"name": "a", "type": "extract", "connection": "c", "stream": "s", "to": "raw.b"},
            ],
        }
    )
    with pytest.raises(PipelineError, match="duplicate step name `a`") as info:
        plan(spec, dataset_exists=nothing)
    assert info.value.location == "steps[1].name"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.booleans())
def test_plans_respect_dataflow(data: dict[str, Any], lake_has_everything: bool) -> None:
    spec = PipelineSpec.from_dict(data)
    try:
        planned = plan(spec, dataset_exists=lambda _: lake_has_everything)
    except (RefError, CycleError, PipelineError):
        return
    position = {name: i for i, name in enumerate(planned.order)}
    assert sorted(position) == sorted(spec.step_names)
    for edge in planned.edges:
        assert position[edge.upstream] < position[edge.downstream]
    for step in spec.steps:
        for dataset in step.inputs():
            for writer in planned.writers(dataset):
                if writer != step.name and dataset not in step.outputs():
                    assert position[writer] < position[step.name]
    # a runner launching every ready step at once finishes in len(levels()) rounds
    done: set[str] = set()
    rounds = 0
    while len(done) < len(planned):
        ready = planned.ready(done, set())
        assert ready, "no step ready although some are left"
        done.update(ready)
        rounds += 1
    assert rounds == len(planned.levels())


def test_checks_of_one_dataset_are_chained_in_file_order(orders: Plan) -> None:
    # each check overwrites its dataset with the rows it passes: run in parallel, the last
    # commit would bring back rows the other one quarantined
    assert orders.upstream("check_orders_counts") == ["clean_orders", "check_orders"]
    assert orders.upstream("export_orders") == [
        "clean_orders",
        "check_orders",
        "check_orders_counts",
    ]
    reasons = {(e.upstream, e.downstream): e.reason for e in orders.edges}
    assert reasons[("check_orders", "check_orders_counts")] == "check staging.orders"
    assert orders.ready(
        {"extract_orders", "extract_customers", "check_raw_orders", "clean_orders"}, set()
    ) == ["check_orders"]


def test_three_checks_and_a_reader_of_an_existing_dataset() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: c1, type: check, dataset: raw.a, checks: [{type: row_count, min: 1}]}
          - name: r
            type: transform
            sql: select * from {{ ref('raw.a') }}
            to: staging.a
          - {name: c2, type: check, dataset: raw.a, checks: [{type: row_count, min: 1}]}
          - {name: c3, type: check, dataset: raw.a, checks: [{type: row_count, min: 1}]}
        """
    )
    planned = plan(spec, dataset_exists=lambda d: d == "raw.a")
    assert planned.levels() == [["c1"], ["c2"], ["c3"], ["r"]]
    assert planned.upstream("r", transitive=True) == ["c1", "c2", "c3"]
    assert planned.external_inputs == ["raw.a"]


def test_quarantine_readers_wait_for_the_extract_and_the_checks() -> None:
    spec = spec_of(
        """\
        steps:
          - name: triage
            type: transform
            sql: select count(*) n from {{ ref('raw.orders__quarantine') }}
            to: marts.rejects
          - {name: land, type: extract, connection: c, stream: s, to: raw.orders}
          - {name: c1, type: check, dataset: raw.orders, checks: [{type: row_count, min: 1}]}
          - {name: c2, type: check, dataset: raw.orders, checks: [{type: row_count, min: 1}]}
        """
    )
    planned = plan(spec, dataset_exists=nothing)  # the quarantine ref resolves
    assert planned.order == ("land", "c1", "c2", "triage")
    assert planned.upstream("triage") == ["land", "c1", "c2"]
    assert planned.outputs("land") == ("raw.orders", "raw.orders__quarantine")
    assert planned.outputs("c1") == ("raw.orders", "raw.orders__quarantine")
    assert planned.writers("raw.orders") == ["land"]
    assert planned.writers("raw.orders__quarantine") == ["land", "c1", "c2"]
    assert planned.external_inputs == []
    reasons = {(e.upstream, e.downstream): e.reason for e in planned.edges}
    assert reasons[("c2", "triage")] == "raw.orders__quarantine"


def test_quarantine_of_a_checked_lake_dataset_resolves() -> None:
    spec = spec_of(
        """\
        steps:
          - name: triage
            type: transform
            sql: select * from {{ ref('raw.orders__quarantine') }}
            to: marts.rejects
          - {name: c, type: check, dataset: raw.orders, checks: [{type: row_count, min: 1}]}
        """
    )
    planned = plan(spec, dataset_exists=lambda d: d == "raw.orders")
    assert planned.order == ("c", "triage")
    assert planned.external_inputs == ["raw.orders"]


def test_reprocessing_the_quarantine_into_its_dataset_is_not_a_cycle() -> None:
    # the step writes raw.orders, so it runs before raw.orders' checks and reads the
    # quarantine as they left it in earlier runs
    spec = spec_of(
        """\
        steps:
          - {name: land, type: extract, connection: c, stream: s, to: raw.orders, mode: append}
          - name: retry
            type: transform
            sql: select * exclude (_error) from {{ ref('raw.orders__quarantine') }}
            to: raw.orders
            mode: append
          - {name: c, type: check, dataset: raw.orders, checks: [{type: row_count, min: 1}]}
        """
    )
    planned = plan(spec, dataset_exists=nothing)
    assert planned.order == ("land", "retry", "c")
    assert planned.upstream("c") == ["land", "retry"]


def test_a_check_of_a_missing_dataset_is_not_its_writer() -> None:
    spec = spec_of(
        """\
        steps:
          - {name: c, type: check, dataset: raw.a, checks: [{type: row_count, min: 1}]}
        """
    )
    with pytest.raises(RefError, match="which no step produces"):
        plan(spec, dataset_exists=nothing)
