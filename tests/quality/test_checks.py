"""Checks compiled to SQL and evaluated in one DuckDB pass over real Arrow data."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from headwater.engine.session import EngineSession
from headwater.errors import QualityError
from headwater.quality.checks import compile_check
from headwater.quality.evaluate import evaluate_checks


def _session(table: pa.Table) -> EngineSession:
    def no_datasets(*_: object) -> None:
        raise AssertionError("no dataset should be resolved")

    session = EngineSession(no_datasets)  # type: ignore[arg-type]
    session.register_arrow("data", table)
    return session


DATA = pa.table(
    {
        "id": [1, 2, 2, 3, 4, None],
        "status": ["placed", "shipped", "shiped", "placed", None, "placed"],
        "amount": [10.0, -1.0, 5.0, 7.5, 3.0, 1.0],
        "email": ["a@b.co", "bad", "c@d.io", None, "e@f.de", "g@h.fr"],
    }
)


def test_each_check_counts_failing_rows() -> None:
    checks = [
        compile_check({"type": "not_null", "column": "id"}),
        compile_check({"type": "unique", "columns": ["id"]}),
        compile_check(
            {"type": "accepted_values", "column": "status", "values": ["placed", "shipped"]}
        ),
        compile_check({"type": "range", "column": "amount", "min": 0}),
        compile_check({"type": "regex", "column": "email", "pattern": "^[^@]+@[^@]+$"}),
        compile_check({"type": "expression", "expression": "amount < 10", "name": "small"}),
        compile_check({"type": "row_count", "min": 1, "max": 5}),
    ]
    with _session(DATA) as s:
        outcome = evaluate_checks(s, "data", checks)
    failed = {r.name: r.rows_failed for r in outcome.results}
    assert failed == {
        "not_null_id": 1,
        "unique_id": 2,  # both copies of id 2
        "accepted_values_status": 1,
        "range_amount": 1,
        "regex_email": 1,
        "small": 1,  # amount = 10.0
        "row_count": 0,
    }
    row_count = next(r for r in outcome.results if r.kind == "row_count")
    assert not row_count.passed and "observed 6" in row_count.message
    assert [r.name for r in outcome.table_failures] == ["row_count"]


def test_quarantine_and_passing_rows_partition_the_input() -> None:
    checks = [
        compile_check({"type": "not_null", "column": "id"}),
        compile_check({"type": "range", "column": "amount", "min": 0}),
        compile_check(
            {"type": "regex", "column": "email", "pattern": "^[^@]+@[^@]+$", "severity": "warn"}
        ),
    ]
    with _session(DATA) as s:
        outcome = evaluate_checks(s, "data", checks)
        passing = outcome.passing_rows().read_all()
        quarantined = outcome.quarantine_rows(run_id="r1", step="chk", dataset="a.b").read_all()
    assert outcome.rows_checked == 6
    assert outcome.rows_quarantined == 2  # id NULL, amount -1 ; the warn check blocks nothing
    assert passing.num_rows + quarantined.num_rows == 6
    assert passing.column_names == DATA.column_names
    assert sorted(passing.column("amount").to_pylist()) == [3.0, 5.0, 7.5, 10.0]
    rows = {
        json.loads(r)["amount"]: rule
        for r, rule in zip(
            quarantined.column("raw_record").to_pylist(),
            quarantined.column("rule").to_pylist(),
            strict=True,
        )
    }
    assert rows == {-1.0: "range_amount", 1.0: "not_null_id"}
    assert set(quarantined.column("run_id").to_pylist()) == {"r1"}


def test_bad_check_definitions() -> None:
    with pytest.raises(QualityError, match="unknown check type `not_nul`") as info:
        compile_check({"type": "not_nul", "column": "x"})
    assert "not_null" in (info.value.hint or "")
    with pytest.raises(QualityError, match="needs a non-empty `values`"):
        compile_check({"type": "accepted_values", "column": "x", "values": []})
    with pytest.raises(QualityError, match="`min`, `max`"):
        compile_check({"type": "range", "column": "x"})


def test_literal_quoting_is_safe() -> None:
    table = pa.table({"name": ["O'Brien", "x"]})
    check = compile_check({"type": "accepted_values", "column": "name", "values": ["O'Brien"]})
    with _session(table) as s:
        outcome = evaluate_checks(s, "data", [check])
    assert outcome.results[0].rows_failed == 1


def test_unique_on_several_columns_and_references_with_nulls_on_the_other_side() -> None:
    table = pa.table({"a": [1, 1, 1, 2], "b": ["x", "x", "y", None], "c": [1, 2, 5, None]})
    checks = [
        compile_check({"type": "unique", "columns": ["a", "b"]}),
        compile_check({"type": "references", "column": "c", "to": "raw.ref"}),
        compile_check({"type": "length", "column": "b", "max": 0, "severity": "warn"}),
    ]
    with _session(table) as s:
        s.register_arrow("ref", pa.table({"c": [1, 2, None]}))
        outcome = evaluate_checks(s, "data", checks, resolve=lambda name, version: "ref")
        passing = outcome.passing_rows().read_all()
    failed = {r.name: r.rows_failed for r in outcome.results}
    # (1, x) twice; c = 5 is not in the other dataset although it holds a NULL
    assert failed == {"unique_a_b": 2, "references_c": 1, "length_b": 3}
    assert outcome.rows_quarantined == 3
    assert passing.to_pylist() == [{"a": 2, "b": None, "c": None}]
