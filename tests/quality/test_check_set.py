"""The full check set run by a real pipeline on real Delta datasets, with stored samples."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from headwater.errors import HeadwaterError, RefError
from headwater.quality.results import load_results
from headwater.workspace import Workspace
from tests.quality.conftest import write_pipeline

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _orders(ws: Workspace) -> None:
    ws.write("raw.customers", pa.table({"customer_id": [1, 2, 3]}), mode="overwrite")
    ws.write(
        "raw.payments",
        pa.table({"order_id": [1, 2, 3, 4, 5, 6], "paid": [10.0, 20.0, 5.0, 7.0, 1.0, 2.5]}),
        mode="overwrite",
    )
    ws.write(
        "staging.orders",
        pa.table(
            {
                "order_id": [1, 2, 3, 4, 5, 5],
                "customer_id": [1, 2, 9, 3, None, 1],
                "status": ["placed", "shipped", "placed", "lost", "placed", "placed"],
                "amount": [10.0, 20.0, 5.0, 7.0, 1.0, 2.0],
                "code": ["AB", "ABC", "AB", "AB", "AB", "AB"],
                "ts": [NOW - dt.timedelta(hours=h) for h in range(6)],
            }
        ),
        mode="overwrite",
    )


PIPELINE = """\
    name: quality
    steps:
      - name: check_orders
        type: check
        dataset: staging.orders
        checks:
          - {type: length, column: code, min: 2, max: 2, severity: warn}
          - {type: references, column: customer_id, to: raw.customers}
          - {type: accepted_values, column: status, values: [placed, shipped]}
          - {type: unique, columns: [order_id]}
          - {type: schema, columns: {order_id: bigint, amount: double, ts: timestamp}}
          - {type: freshness, column: ts, max_age: 1d}
          - {type: reconcile, column: amount, to: raw.payments, to_column: paid, tolerance: 0.6}
          - {type: drift, column: status, severity: warn}
    """


def test_every_check_kind_counts_and_stores_samples(ws: Workspace) -> None:
    _orders(ws)
    result = ws.run(write_pipeline(ws, PIPELINE))
    assert result.ok, result.error
    step = result.step("check_orders")
    # blocked: customer 9 (references), `lost` (accepted_values), both copies of order 5
    assert (step.rows_in, step.rows_out, step.rows_quarantined) == (6, 2, 4)
    stored = {r.result.check: r for r in load_results(ws.store, run_id=result.run_id)}
    failed = {name: r.result.rows_failed for name, r in stored.items()}
    assert failed == {
        "length_code": 1,
        "references_customer_id": 1,
        "accepted_values_status": 1,
        "unique_order_id": 2,
        "schema": 0,
        "freshness_ts": 0,
        "reconcile_amount": 0,
        "drift_status": 0,
    }
    assert [s["code"] for s in stored["length_code"].sample] == ["ABC"]
    assert stored["references_customer_id"].sample[0]["customer_id"] == 9
    assert sorted(s["amount"] for s in stored["unique_order_id"].sample) == [1.0, 2.0]
    assert stored["schema"].result.passed and stored["schema"].observed["ts"] == "TIMESTAMP"
    assert stored["freshness_ts"].result.passed and stored["freshness_ts"].observed["age_s"] < 600
    recon = stored["reconcile_amount"]
    assert recon.result.passed and recon.observed == {"value": 45.0, "other": 45.5}
    assert "no baseline version yet" in stored["drift_status"].result.message
    kept = ws.lake.read("staging.orders")
    assert sorted(kept["order_id"].to_pylist()) == [1, 2]
    quarantined = ws.quarantine("staging.orders")
    assert quarantined.num_rows == 4
    assert set(quarantined["run_id"].to_pylist()) == {result.run_id}
    assert set(quarantined["load_id"].to_pylist()) == {f"check:{result.run_id}:check_orders"}
    records = sorted(json.loads(r)["order_id"] for r in quarantined["raw_record"].to_pylist())
    assert records == [3, 4, 5, 5]


def test_table_checks_fail_the_step_and_drift_compares_with_the_previous_version(
    ws: Workspace,
) -> None:
    _orders(ws)
    assert ws.run(write_pipeline(ws, PIPELINE)).ok
    # second run: the dataset now holds 2 rows (the first run removed 4); its previous
    # version is the one written before the first run, so status drifts and sums differ
    result = ws.run(write_pipeline(ws, PIPELINE))
    assert not result.ok
    assert "check `reconcile_amount` failed: sum 30 vs 45.5" in (result.error or "")
    stored = {r.result.check: r for r in load_results(ws.store, run_id=result.run_id)}
    drift = stored["drift_status"]
    assert not drift.result.passed and drift.observed["method"] == "psi"
    assert drift.observed["value"] > 0.2
    assert {s["value"] for s in drift.sample} >= {"lost"}


def test_ks_drift_on_numbers_against_a_version_number(ws: Workspace) -> None:
    ws.write("raw.m", pa.table({"x": [float(i) for i in range(100)]}), mode="overwrite")
    ws.write("raw.m", pa.table({"x": [float(i) + 30 for i in range(100)]}), mode="overwrite")
    path = write_pipeline(
        ws,
        """\
        steps:
          - type: check
            dataset: raw.m
            checks:
              - {type: drift, column: x, baseline: 0, threshold: 0.25}
              - {type: drift, column: x, baseline: 1, name: same}
        """,
    )
    result = ws.run(path)
    assert not result.ok
    stored = {r.result.check: r for r in load_results(ws.store, run_id=result.run_id)}
    assert stored["drift_x"].observed["method"] == "ks"
    assert stored["drift_x"].observed["value"] == pytest.approx(0.30)
    assert stored["same"].result.passed and stored["same"].observed["value"] == 0.0


def test_schema_and_freshness_and_row_count_failures(ws: Workspace) -> None:
    old = dt.datetime(2020, 1, 1)
    ws.write(
        "raw.t", pa.table({"id": [1, 2], "ts": [old, old], "extra": ["a", "b"]}), mode="overwrite"
    )
    path = write_pipeline(
        ws,
        """\
        steps:
          - type: check
            dataset: raw.t
            checks:
              - {type: schema, columns: {id: int, ts: timestamp, name: varchar}, exact: true}
              - {type: freshness, column: ts, max_age: 2h, severity: warn}
              - {type: row_count, min: 3}
        """,
    )
    result = ws.run(path)
    assert not result.ok
    stored = {r.result.check: r.result for r in load_results(ws.store, run_id=result.run_id)}
    assert stored["schema"].message == (
        "`id` is BIGINT, expected INTEGER; missing column `name`; unexpected column `extra`"
    )
    assert not stored["freshness_ts"].passed and "more than 2h" in stored["freshness_ts"].message
    assert (
        not stored["row_count"].passed
        and "observed 2 (outside [3, ])" in stored["row_count"].message
    )


@pytest.mark.parametrize(
    ("check", "field", "expected"),
    [
        ("{type: not_null, column: nope}", "column", "the dataset has no column `nope`"),
        ("{type: range, column: amount, min: low}", "min", "`min` 'low' is not a value of column"),
        ("{type: schema, columns: {amount: dubble}}", "columns", "`dubble` is not a DuckDB type"),
        ("{type: freshness, column: amount, max_age: 1h}", "column", "needs a date or timestamp"),
        (
            "{type: references, column: amount, to: raw.other, to_column: x}",
            "to_column",
            "no column `x`",
        ),
        ("{type: drift, column: amount, baseline: 7}", "baseline", "baseline version 7"),
        ("{type: expression, expression: 'amont > 0'}", "expression", "does not run"),
    ],
)
def test_bad_checks_get_located_errors(
    ws: Workspace, check: str, field: str, expected: str
) -> None:
    ws.write("raw.t", pa.table({"amount": [1.0, 2.0]}), mode="overwrite")
    ws.write("raw.other", pa.table({"amount": [1.0]}), mode="overwrite")
    path = write_pipeline(
        ws,
        f"""\
        steps:
          - type: check
            dataset: raw.t
            checks:
              - {check}
        """,
    )
    with pytest.raises(HeadwaterError) as info:
        _run_raising(ws, path)
    err = info.value
    assert expected in err.message
    assert err.location == f"{path}:5:9"
    assert err.field == field


def _run_raising(ws: Workspace, path: object) -> None:
    from headwater.pipelines.check_step import run_check_step
    from headwater.pipelines.steps import RunContext

    spec = ws.load_pipeline(str(path))
    ctx = RunContext(
        run_id="r",
        pipeline=spec.name,
        store=ws.store,
        lake=ws.lake,
        connections=ws.connections,
        engine=ws.settings.engine,
        emit=lambda _event: None,
    )
    run_check_step(ctx, spec.steps[0])


def test_unknown_reference_dataset_is_located_at_plan_time(ws: Workspace) -> None:
    ws.write("raw.t", pa.table({"amount": [1.0]}), mode="overwrite")
    path = write_pipeline(
        ws,
        """\
        steps:
          - type: check
            dataset: raw.t
            checks:
              - {type: references, column: amount, to: raw.missing}
        """,
    )
    with pytest.raises(RefError) as info:
        ws.plan(ws.load_pipeline(path))
    assert info.value.location == f"{path}:5:48"
    assert "reads `raw.missing`" in info.value.message
