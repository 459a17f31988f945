"""Check results with their observations and failing-row samples, on SQLite and PostgreSQL."""

from __future__ import annotations

import pyarrow as pa

from headwater.engine.session import EngineSession
from headwater.metadata import MetadataStore
from headwater.quality.checks import compile_check
from headwater.quality.evaluate import SAMPLE_ROWS, evaluate_checks
from headwater.quality.results import load_results, save_results


def test_results_and_bounded_samples_round_trip(metadata_url: str) -> None:
    data = pa.table({"id": list(range(100)), "email": ["bad"] * 50 + ["a@b.c"] * 50})

    def no_datasets(*_: object) -> None:
        raise AssertionError("no dataset should be resolved")

    with EngineSession(no_datasets) as session:  # type: ignore[arg-type]
        session.register_arrow("data", data)
        outcome = evaluate_checks(
            session,
            "data",
            [
                compile_check({"type": "regex", "column": "email", "pattern": "^[^@]+@[^@]+$"}),
                compile_check({"type": "row_count", "min": 1}),
            ],
        )
    store = MetadataStore(metadata_url)
    try:
        save_results(store, outcome.results, run_id="r1", step="chk", dataset="raw.t")
        save_results(store, outcome.results, run_id="r2", step="chk", dataset="raw.t")
        stored = load_results(store, run_id="r1")
        assert [s.result.check for s in stored] == ["regex_email", "row_count"]
        regex, row_count = stored
        assert regex.result.rows_failed == 50 and not regex.result.passed
        assert len(regex.sample) == SAMPLE_ROWS == 20
        assert {row["email"] for row in regex.sample} == {"bad"}
        assert regex.observed == {"rows_failed": 50}
        assert row_count.result.passed and row_count.observed == 100 and row_count.sample == []
        assert len(load_results(store, dataset="raw.t")) == 4
    finally:
        store.close()
