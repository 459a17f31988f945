"""The examples of docs/quality.md run as written."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from pathlib import Path

import pyarrow as pa

from headwater.workspace import Workspace
from tests.quality.conftest import write_pipeline

DOCS = Path(__file__).resolve().parents[2] / "docs" / "quality.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_the_documented_pipeline_runs(ws: Workspace) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ws.write("raw.customers", pa.table({"customer_id": [1, 2]}), mode="overwrite")
    ws.write("raw.payments", pa.table({"paid": [10.0, 20.0, 30.0, 40.0]}), mode="overwrite")
    ws.write(
        "staging.orders",
        pa.table(
            {
                "order_id": [1, 2, 3, 4],
                "line": [1, 1, 1, 1],
                "customer_id": [1, 2, 2, 7],
                "status": ["placed", "shipped", "lost", "placed"],
                "amount": [10.0, 20.0, 30.0, 40.0],
                "email": ["a@b.c", "d@e.f", "g@h.i", "j@k.l"],
                "country": ["DE", "FR", "NL", "USA"],
                "ordered_at": [now - dt.timedelta(hours=1)] * 4,
                "shipped_at": [now] * 4,
            }
        ),
        mode="overwrite",
    )
    (pipeline,) = [b for b in _blocks("yaml") if "name: orders_quality" in b]
    result = ws.run(write_pipeline(ws, pipeline))
    assert result.ok, result.error
    step = result.step("check_orders")
    # order 4: customer 7 is unknown and `USA` is not 2 letters; `lost` is only a warning
    assert (step.rows_in, step.rows_out, step.rows_quarantined) == (4, 3, 1)
    checks = {c["name"]: c for c in step.details["checks"]}
    assert checks["accepted_values_status"]["rows_failed"] == 1
    assert checks["references_customer_id"]["rows_failed"] == 1
    assert checks["length_country"]["rows_failed"] == 1
    assert all(c["passed"] for n, c in checks.items() if n in ("schema", "reconcile_amount"))

    (snippet,) = _blocks("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(snippet, {"ws": ws, "result": result})
    assert "references_customer_id 1" in out.getvalue()
