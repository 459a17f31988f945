"""Runs with python steps, when, on_failure, retries, timeouts, for_each and versions."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.metadata.versions import get_pipeline_version
from headwater.pipelines.events import Event, StepRetried, StepSkipped
from headwater.testing import memory_tables, workspace_for_test
from headwater.workspace import Workspace

USER_CODE = '''\
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from headwater.errors import Transient


class Flaky(Exception, Transient):
    """An error the function's author marks as worth retrying."""


def add_tax(orders, rate=0.0):
    amount = orders.column("amount")
    return orders.append_column("gross", pc.multiply(amount, 1 + rate))


def big_orders(orders, minimum=0):
    for batch in orders:
        yield batch.filter(pc.greater_equal(batch.column("amount"), minimum))


def broken(orders):
    return orders.column("no_such_column")


def flaky(counter):
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < 2:
        raise Flaky(f"try {n + 1} failed")
    return pa.table({"try": [n + 1]})


def slow(seconds):
    time.sleep(seconds)


def held(release, returned):
    deadline = time.monotonic() + 30
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(returned).write_text("yes")
    return pa.table({"late": [1]})


def note(path, text):
    with open(path, "a") as f:
        f.write(text + "\\n")
'''


@pytest.fixture
def ws() -> Iterator[Workspace]:
    memory_tables("flow")["orders"] = pa.table(
        {"id": [1, 2, 3, 4], "amount": [10.0, 250.0, 40.0, 500.0]}
    )
    with workspace_for_test(connections={"m": {"type": "memory", "store": "flow"}}) as ws:
        (ws.root / "userfns.py").write_text(USER_CODE)
        yield ws


def write(ws: Workspace, text: str, name: str = "p") -> Path:
    path = ws.root / "pipelines" / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


EXTRACT = "  - {name: extract, type: extract, connection: m, stream: orders, to: raw.orders}\n"


def test_python_steps_read_tables_and_batches(ws: Workspace) -> None:
    steps = """\
    - name: tax
      type: python
      function: userfns:add_tax
      inputs: [raw.orders]
      args: {rate: "{{ params.rate }}"}
      to: staging.orders
    - name: big
      type: python
      function: userfns:big_orders
      inputs: [staging.orders]
      batches: true
      args: {minimum: 100}
      to: marts.big
    """
    write(
        ws,
        "name: p\nparams:\n  rate: {type: number, default: 0.5}\nsteps:\n"
        + EXTRACT
        + textwrap.indent(textwrap.dedent(steps), "  "),
    )
    result = ws.run("p", params={"rate": "0.1"})
    assert result.ok, result.error
    assert result.step("tax").rows_out == 4
    # a value that is one `{{ expression }}` keeps its type: the rate is the number 0.1
    gross = ws.read("staging.orders").sort_by("id").column("gross").to_pylist()
    assert gross == pytest.approx([11.0, 275.0, 44.0, 550.0])
    assert ws.read("marts.big").sort_by("id").column("id").to_pylist() == [2, 4]
    assert result.step("big").details["input_rows"] == {"staging.orders": 4}


def test_user_code_errors_keep_the_traceback(ws: Workspace) -> None:
    write(
        ws,
        "name: p\nsteps:\n"
        + EXTRACT
        + "  - {name: bad, type: python, function: userfns:broken, inputs: [raw.orders], "
        "to: staging.bad}\n"
        + "  - {name: after, type: transform, sql: \"select * from {{ ref('staging.bad') }}\", "
        "to: marts.after}\n",
    )
    result = ws.run("p")
    bad = result.step("bad")
    assert (result.status, bad.status, bad.error_type) == ("failed", "failed", "UserCodeError")
    assert bad.error is not None
    assert bad.error.startswith("step `bad`: `userfns:broken` raised KeyError:")
    trace = bad.details["error"]["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n  File ")
    assert trace.splitlines()[1].endswith('userfns.py", line 25, in broken')
    assert "no_such_column" in trace
    assert result.step("after").status == "skipped"
    assert result.step("after").error == "upstream step `bad` failed"


def test_unknown_module_and_function(ws: Workspace) -> None:
    write(ws, "name: p\nsteps:\n  - {name: a, type: python, function: nosuch:fn}\n")
    result = ws.run("p")
    assert result.step("a").error_type == "PipelineError"
    assert "cannot import module `nosuch` of `nosuch:fn`" in (result.step("a").error or "")
    write(ws, "name: p\nsteps:\n  - {name: a, type: python, function: userfns:add_taxes}\n")
    result = ws.run("p")
    assert "module `userfns` has no function `add_taxes`. Did you mean `add_tax`?" in (
        result.step("a").error or ""
    )


def test_when_skips_a_step_and_the_steps_after_it(ws: Workspace) -> None:
    pipeline = "name: p\nparams:\n  minimum: {type: integer, default: 1}\nsteps:\n" + EXTRACT
    pipeline += textwrap.indent(
        textwrap.dedent(
            """\
            - name: check_orders
              type: check
              dataset: raw.orders
              checks:
                - {type: range, column: amount, max: 300, severity: warn}
            - name: export
              type: transform
              when: "{{ steps.check_orders.passed }}"
              sql: "select * from {{ ref('raw.orders') }}"
              to: marts.export
            - name: count
              type: transform
              when: steps.extract.rows_out >= params.minimum
              sql: "select count(*) as n from {{ ref('raw.orders') }}"
              to: marts.count
            - name: after_export
              type: transform
              sql: "select * from {{ ref('marts.export') }}"
              to: marts.after
            """
        ),
        "  ",
    )
    write(ws, pipeline)
    events: list[Event] = []
    result = ws.run("p", on_event=events.append)
    assert result.ok, result.error
    statuses = {s.name: s.status for s in result.steps}
    assert statuses == {
        "extract": "succeeded",
        "check_orders": "succeeded",
        "export": "skipped",
        "count": "succeeded",
        "after_export": "skipped",
    }
    assert result.step("export").error == "`when: {{ steps.check_orders.passed }}` is false"
    assert result.step("after_export").error == "upstream step `export` was skipped"
    assert [e.step for e in events if isinstance(e, StepSkipped)] == ["export", "after_export"]
    assert not ws.lake.exists("marts.export")
    # with a higher minimum the count is skipped too
    again = ws.run("p", params={"minimum": "5"})
    assert again.step("count").status == "skipped"


def test_on_failure_continue_and_handler(ws: Workspace) -> None:
    log = ws.root / "log.txt"
    pipeline = "name: p\nsteps:\n" + EXTRACT
    pipeline += textwrap.indent(
        textwrap.dedent(
            f"""\
            - name: optional
              type: python
              function: userfns:broken
              inputs: [raw.orders]
              on_failure: continue
            - name: after_optional
              type: python
              function: userfns:note
              args: {{path: "{log}", text: after_optional}}
              depends_on: [optional]
            - name: important
              type: python
              function: userfns:broken
              inputs: [raw.orders]
              depends_on: [after_optional]
              on_failure: alert
            - name: after_important
              type: python
              function: userfns:note
              args: {{path: "{log}", text: after_important}}
              depends_on: [important]
            - name: alert
              type: python
              function: userfns:note
              args: {{path: "{log}", text: alert}}
            - name: unused_handler
              type: python
              function: userfns:note
              args: {{path: "{log}", text: unused}}
            - name: fine
              type: python
              function: userfns:note
              args: {{path: "{log}", text: fine}}
              on_failure: unused_handler
            """
        ),
        "  ",
    )
    write(ws, pipeline)
    result = ws.run("p")
    statuses = {s.name: s.status for s in result.steps}
    assert statuses == {
        "extract": "succeeded",
        "optional": "failed",
        "after_optional": "succeeded",
        "important": "failed",
        "after_important": "skipped",
        "alert": "succeeded",
        "unused_handler": "skipped",
        "fine": "succeeded",
    }
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("important: ")
    assert sorted(log.read_text().split()) == ["after_optional", "alert", "fine"]
    assert result.step("unused_handler").error == "no step failed that it handles"


def test_transient_user_errors_are_retried_with_backoff(ws: Workspace) -> None:
    counter = ws.root / "counter.txt"
    write(
        ws,
        f"""\
        name: p
        steps:
          - name: flaky
            type: python
            function: userfns:flaky
            args: {{counter: "{counter}"}}
            to: raw.tries
            retries: 2
            retry_delay: 0.05
        """,
    )
    events: list[Event] = []
    result = ws.run("p", on_event=events.append)
    assert result.ok, result.error
    retried = [e for e in events if isinstance(e, StepRetried)]
    assert [(e.attempt, e.error.split(": ", 1)[1]) for e in retried] == [
        (1, "`userfns:flaky` raised Flaky: try 1 failed"),
        (2, "`userfns:flaky` raised Flaky: try 2 failed"),
    ]
    # exponential backoff (0.05, then 0.1), each shortened by up to half at random
    assert 0.025 <= retried[0].delay <= 0.05 and 0.05 <= retried[1].delay <= 0.1
    assert ws.read("raw.tries").column("try").to_pylist() == [3]
    assert ws.get_run(result.run_id).steps[0].attempt == 3

    counter.write_text("0")
    write(ws, (ws.root / "pipelines" / "p.yaml").read_text().replace("retries: 2", "retries: 1"))
    failed = ws.run("p")
    assert failed.step("flaky").error_type == "TransientUserCodeError"


def test_timeout_fails_the_step_naming_the_limit(ws: Workspace) -> None:
    write(
        ws,
        """\
        name: p
        steps:
          - {name: slow, type: python, function: userfns:slow, args: {seconds: 1.5}, timeout: 0.2}
          - {name: after, type: python, function: userfns:slow, args: {seconds: 0}, depends_on: [slow]}
        """,
    )
    result = ws.run("p")
    slow = result.step("slow")
    assert (slow.status, slow.error_type) == ("failed", "StepTimeoutError")
    assert slow.error == (
        "pipelines/p.yaml:3:5: step `slow` timed out: attempt 1 ran longer than its "
        "`timeout: 0.2s`\n  hint: Raise `timeout:` on the step, or make the step do less per run."
    ).replace("pipelines/p.yaml", str(ws.root / "pipelines" / "p.yaml"))
    assert result.step("after").status == "skipped"


def test_for_each_children_run(ws: Workspace) -> None:
    write(
        ws,
        "name: p\nsteps:\n"
        + EXTRACT
        + textwrap.indent(
            textwrap.dedent(
                """\
            - name: split
              type: transform
              for_each: [small, large]
              sql: |
                select * from {{ ref('raw.orders') }}
                where {% if item == 'small' %}amount < 100{% else %}amount >= 100{% endif %}
              to: "marts.orders_{{ item }}"
            """
            ),
            "  ",
        ),
    )
    result = ws.run("p")
    assert result.ok, result.error
    assert [s.name for s in result.steps] == ["extract", "split-small", "split-large"]
    assert ws.read("marts.orders_small").num_rows == 2
    assert ws.read("marts.orders_large").num_rows == 2


def test_runs_record_the_pipeline_text_by_hash(ws: Workspace) -> None:
    path = write(ws, "name: p\nsteps:\n" + EXTRACT)
    first, second = ws.run("p"), ws.run("p")
    hashes = [ws.get_run(r.run_id).params["spec_hash"] for r in (first, second)]
    assert hashes[0] == hashes[1]
    version = get_pipeline_version(ws.store, hashes[0])
    assert version is not None and version.text == path.read_text()
    path.write_text(path.read_text() + "# changed\n")
    third = ws.run("p")
    assert ws.get_run(third.run_id).params["spec_hash"] != hashes[0]
    outputs = ws.get_run(third.run_id).steps[0].details["dataset_versions"]
    assert outputs == {"raw.orders": ws.lake.version("raw.orders")}


def test_a_timed_out_attempt_never_commits_late(ws: Workspace) -> None:
    release, returned = ws.root / "release", ws.root / "returned"
    write(
        ws,
        f"""\
        name: p
        steps:
          - name: held
            type: python
            function: userfns:held
            args: {{release: "{release}", returned: "{returned}"}}
            to: raw.late
            timeout: 0.3
        """,
    )
    result = ws.run("p")
    assert result.step("held").error_type == "StepTimeoutError"
    release.write_text("go")  # let the abandoned attempt finish
    deadline = time.monotonic() + 30
    while not returned.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert returned.exists()
    time.sleep(0.5)  # the late attempt would write now
    assert not ws.lake.exists("raw.late")


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    import random

    from headwater.pipelines.runner import retry_delay

    rng = random.Random(7)
    for attempt, full in [(1, 2.0), (2, 4.0), (3, 8.0), (12, 3600.0), (5000, 3600.0)]:
        delays = [retry_delay(2.0, attempt, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 4  # the waits are spread, not equal


def test_a_condition_that_cannot_be_evaluated_fails_the_step(ws: Workspace) -> None:
    write(
        ws,
        "name: p\nsteps:\n"
        + EXTRACT
        + "  - {name: t, type: transform, when: \"steps.extract.rows_out > 'many'\", "
        'sql: "select 1 as x", to: marts.t}\n',
    )
    result = ws.run("p")
    t = result.step("t")
    assert (result.status, t.status) == ("failed", "failed")
    assert t.error is not None
    assert "step `t`: `when` could not be evaluated: template failed: TypeError" in t.error
    assert t.error.startswith(f"{ws.root / 'pipelines' / 'p.yaml'}:4:")
