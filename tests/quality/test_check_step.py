"""The check step's two paths: `warn` checks count and sample without touching the data,
`error` checks move the blocked rows to quarantine; rows in = rows kept + rows quarantined."""

from __future__ import annotations

import json

import pyarrow as pa

from headwater.pipelines.loader import _regex_problem
from headwater.quality.quarantine import quarantine_name
from headwater.quality.results import load_results
from headwater.workspace import Workspace
from tests.quality.conftest import write_pipeline

PIPELINE = """\
    name: orders
    steps:
      - name: check_orders
        type: check
        dataset: staging.orders
        checks:
          - {{type: not_null, column: email, severity: {severity}}}
          - {{type: unique, column: order_id, severity: {severity}}}
          - {{type: regex, column: email, pattern: '^[a-z]+@[a-z]+$', severity: {severity}}}
          - {{type: range, column: amount, min: 0, severity: warn}}
    """


def _write_two_files(ws: Workspace) -> None:
    """Two commits (two Parquet files): a duplicate key spans them."""
    ws.write(
        "staging.orders",
        pa.table(
            {
                "order_id": [1, 2, 3, 4],
                "email": ["a@b", None, "bad address", "c@d"],
                "amount": [1.0, -2.0, 3.0, 4.0],
            }
        ),
        mode="overwrite",
    )
    ws.write(
        "staging.orders",
        pa.table({"order_id": [4, 5, 6], "email": ["e@f", "g@h", "i@j"], "amount": [5.0, 6, 7]}),
        mode="append",
    )


def test_warn_checks_count_and_sample_without_rewriting(ws: Workspace) -> None:
    _write_two_files(ws)
    before = ws.lake.version("staging.orders")
    result = ws.run(write_pipeline(ws, PIPELINE.format(severity="warn")))
    assert result.ok, result.error
    step = result.step("check_orders")
    assert (step.rows_in, step.rows_out, step.rows_quarantined) == (7, 7, 0)
    failed = {c["name"]: c["rows_failed"] for c in step.details["checks"]}
    assert failed == {
        "not_null_email": 1,
        "unique_order_id": 2,
        "regex_email": 1,
        "range_amount": 1,
    }
    assert ws.lake.version("staging.orders") == before
    assert not ws.lake.exists(quarantine_name("staging.orders"))
    samples = {r.result.check: r.sample for r in load_results(ws.store, dataset="staging.orders")}
    assert sorted(s["order_id"] for s in samples["unique_order_id"]) == [4, 4]
    assert [s["email"] for s in samples["regex_email"]] == ["bad address"]


def test_error_checks_partition_rows_across_files(ws: Workspace) -> None:
    _write_two_files(ws)
    result = ws.run(write_pipeline(ws, PIPELINE.format(severity="error")))
    assert result.ok, result.error
    step = result.step("check_orders")
    # blocked: the NULL e-mail (2), the bad one (3), both copies of 4; the range check warns
    assert (step.rows_in, step.rows_out, step.rows_quarantined) == (7, 3, 4)
    kept = sorted(ws.lake.read("staging.orders")["order_id"].to_pylist())
    assert kept == [1, 5, 6]
    quarantined = ws.lake.read(quarantine_name("staging.orders"))
    ids = sorted(json.loads(r)["order_id"] for r in quarantined["raw_record"].to_pylist())
    assert ids == [2, 3, 4, 4]
    assert len(kept) + len(ids) == step.rows_in


def test_regex_validation_reuses_one_connection_for_many_patterns() -> None:
    assert _regex_problem("^[a-z]+$") is None
    problem = _regex_problem("([")
    assert problem is not None and "invalid regular expression `([`" in problem
    assert _regex_problem("^x{2}$") is None  # the connection still works after an error
