"""The scheduler on SQLite and PostgreSQL metadata: ticks, catch-up, lease, queue, triggers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.errors import PipelineSyntaxError, TriggerCycleError
from headwater.metadata.store import MetadataStore
from headwater.pipelines.scheduling.queue import SchedulerStore
from headwater.pipelines.scheduling.scheduler import Scheduler
from headwater.workspace import Workspace
from tests.pipelines.scheduling_helpers import FakeClock, make_workspace, pipeline_yaml

START = datetime(2026, 6, 1, 8, 0, 30, tzinfo=UTC)


@pytest.fixture
def hourly(tmp_path: Path, metadata_url: str) -> Iterator[Workspace]:
    ws = make_workspace(
        tmp_path / "ws",
        metadata_url,
        {
            "hourly": pipeline_yaml(
                "hourly",
                writes="raw.hourly",
                schedule="""
                schedule:
                  cron: "0 * * * *"
                  timezone: Europe/Berlin
                  catchup: all
                """,
            )
        },
    )
    yield ws
    ws.close()


def _set_catchup(ws: Workspace, catchup: str) -> None:
    path = ws.root / "pipelines" / "hourly.yaml"
    path.write_text(path.read_text().replace("catchup: all", f"catchup: {catchup}"))


def _schedule_runs(ws: Workspace) -> list[str]:
    return [r.trigger for r in ws.runs(pipeline="hourly", limit=100)]


def test_ticks_fire_on_time_and_run_the_pipeline(hourly: Workspace) -> None:
    clock = FakeClock(START)
    scheduler = Scheduler(hourly, clock=clock, holder="one")
    first = scheduler.run_pass()
    assert first.leader and first.fired == []  # a new schedule starts now
    clock.advance(minutes=59, seconds=40)  # 09:00:10 UTC = 11:00:10 Berlin
    second = scheduler.run_pass()
    assert [(p, t) for p, t, _ in second.fired] == [
        ("hourly", datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    ]
    assert scheduler.wait_idle()
    scheduler.close()
    runs = hourly.runs(pipeline="hourly")
    assert [(r.status, r.trigger) for r in runs] == [("succeeded", "schedule")]
    request = SchedulerStore(hourly.store).requests(pipeline="hourly")[0]
    assert (request.status, request.reason, request.run_id) == ("succeeded", "schedule", runs[0].id)
    assert hourly.read("raw.hourly").num_rows == 1


@pytest.mark.parametrize(("catchup", "runs"), [("none", 0), ("latest", 1), ("all", 3)])
def test_catchup_policy_after_the_scheduler_was_down(
    hourly: Workspace, catchup: str, runs: int
) -> None:
    _set_catchup(hourly, catchup)
    clock = FakeClock(START)
    Scheduler(hourly, clock=clock, holder="before").run_once()
    clock.advance(hours=3)  # 09:00, 10:00, 11:00 missed; now 11:00:30 > grace
    clock.advance(minutes=5)
    passes = Scheduler(hourly, clock=clock, holder="after").run_once()
    fired = [t for p in passes for _, t, _ in p.fired]
    assert len(fired) == runs
    if catchup == "latest":
        assert fired == [datetime(2026, 6, 1, 11, 0, tzinfo=UTC)]
    assert sum(p.skipped.get("hourly", 0) for p in passes) == 3 - runs
    assert _schedule_runs(hourly) == ["schedule"] * runs
    ticks = SchedulerStore(hourly.store).ticks("hourly")
    assert [MetadataStore.as_utc(t.scheduled_for) for t in ticks] == fired


def test_a_tick_is_recorded_once_whoever_fires_it(hourly: Workspace) -> None:
    queue = SchedulerStore(hourly.store)
    tick = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    first = queue.fire_tick("hourly", tick, holder="a", now=START, pipeline_file=None)
    second = queue.fire_tick("hourly", tick, holder="b", now=START, pipeline_file=None)
    assert first is not None and second is None
    assert len(queue.ticks("hourly")) == 1
    assert [r.id for r in queue.requests(pipeline="hourly")] == [first]


def test_standby_takes_over_when_the_lease_expires_and_fires_no_tick_twice(
    hourly: Workspace,
) -> None:
    clock = FakeClock(START)
    a = Scheduler(hourly, clock=clock, holder="a", lease_seconds=10, max_workers=1)
    b = Scheduler(hourly, clock=clock, holder="b", lease_seconds=10, max_workers=1)
    assert a.run_pass().leader
    assert not b.run_pass().leader
    clock.advance(minutes=59, seconds=40)  # 09:00:10
    assert [t.hour for _, t, _ in a.run_pass().fired] == [9]
    assert not b.run_pass().leader  # a renewed
    # a stops renewing (as if killed) just after 10:00; b takes over once the lease ran out
    clock.advance(hours=1, seconds=5)
    clock.advance(seconds=11)
    took = b.run_pass()
    assert took.leader
    assert [t.hour for _, t, _ in took.fired] == [10]
    # a comes back: it is no longer the leader and fires nothing
    again = a.run_pass()
    assert not again.leader and again.fired == []
    for s in (a, b):
        s.wait_idle()
        s.close()
    ticks = SchedulerStore(hourly.store).ticks("hourly")
    assert [(MetadataStore.as_utc(t.scheduled_for).hour, t.holder) for t in ticks] == [  # type: ignore[union-attr]
        (9, "a"),
        (10, "b"),
    ]


def test_max_concurrent_runs_holds_back_queued_runs(tmp_path: Path, metadata_url: str) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        metadata_url,
        {
            "pair": pipeline_yaml(
                "pair",
                writes="raw.pair",
                schedule="schedule: {cron: '0 6 * * *', max_concurrent_runs: 2}",
            )
        },
    )
    queue = SchedulerStore(ws.store)
    ids = [queue.enqueue("pair", reason="manual") for _ in range(3)]
    scheduler = Scheduler(ws, holder="one", max_workers=4)
    first = scheduler.run_pass()
    assert first.started == ids[:2]
    assert [r.id for r in queue.requests(status="queued")] == ids[2:]
    scheduler.wait_idle()
    assert scheduler.run_pass().started == ids[2:]
    scheduler.wait_idle()
    scheduler.close()
    assert [r.status for r in queue.requests()] == ["succeeded"] * 3
    assert sorted(r.trigger for r in ws.runs(pipeline="pair")) == ["manual"] * 3
    ws.close()


def test_a_dataset_trigger_queues_and_runs_the_watching_pipeline(
    tmp_path: Path, metadata_url: str
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        metadata_url,
        {
            "orders": pipeline_yaml("orders", writes="raw.orders"),
            "report": pipeline_yaml(
                "report", reads="raw.orders", writes="mart.report", trigger=["raw.orders"]
            ),
            "other": pipeline_yaml("other", writes="raw.other", trigger=["raw.customers"]),
        },
    )
    result = ws.run("orders")
    queue = SchedulerStore(ws.store)
    (request,) = queue.requests()
    assert (request.pipeline, request.reason, request.status) == ("report", "dataset", "queued")
    assert request.details["run_id"] == result.run_id
    assert request.details["datasets"] == {"raw.orders": ws.lake.version("raw.orders")}
    Scheduler(ws, holder="one").run_once()
    (report,) = ws.runs(pipeline="report")
    assert (report.status, report.trigger) == ("succeeded", "dataset")
    assert ws.read("mart.report").column("n").to_pylist() == [1]
    # the report's own commit triggers nothing (nobody watches mart.report)
    assert [r.pipeline for r in queue.requests()] == ["report"]
    ws.close()


def test_a_run_that_commits_nothing_new_triggers_nothing(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        None,
        {
            "checker": "name: checker\nsteps:\n  - type: check\n    dataset: raw.orders\n"
            "    checks: [{type: row_count, min: 0}]\n",
            "report": pipeline_yaml("report", writes="mart.report", trigger=["raw.orders"]),
        },
    )
    import pyarrow as pa

    ws.write("raw.orders", pa.table({"id": [1, 2]}))
    assert ws.run("checker").ok
    assert SchedulerStore(ws.store).requests() == []
    ws.close()


def test_trigger_loops_are_refused_with_the_cycle_named(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        None,
        {
            "a": pipeline_yaml("a", writes="raw.x", trigger=["raw.y"]),
            "b": pipeline_yaml("b", writes="raw.y", trigger=["raw.x"]),
        },
    )
    with pytest.raises(TriggerCycleError) as caught:
        Scheduler(ws).run_once()
    assert caught.value.message == "dataset triggers form a loop: a -> raw.x -> b -> raw.y -> a"
    assert caught.value.location is not None and caught.value.location.startswith(
        str(ws.root / "pipelines" / "b.yaml")
    )
    # `headwater validate` refuses either file
    for name in ("a", "b"):
        with pytest.raises(TriggerCycleError, match=r"a -> raw\.x -> b -> raw\.y -> a"):
            ws.validate(name)
    # a run of `a` commits raw.x, but queueing `b` would start the loop: nothing is queued
    assert ws.run("a").ok
    assert SchedulerStore(ws.store).requests() == []
    ws.close()


def test_a_pipeline_triggered_by_its_own_output_is_a_loop(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws", None, {"self": pipeline_yaml("self", writes="raw.x", trigger=["raw.x"])}
    )
    with pytest.raises(TriggerCycleError, match=r"loop: self -> raw\.x -> self"):
        Scheduler(ws).load(strict=True)
    ws.close()


def test_schedule_errors_point_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        pipeline_yaml(
            "p", writes="raw.p", schedule="schedule:\n  cron: '0 25 * * *'\n  timezone: UTC\n"
        )
    )
    from headwater.pipelines.loader import load_pipeline

    with pytest.raises(PipelineSyntaxError) as caught:
        load_pipeline(path)
    assert caught.value.location == f"{path}:3:9"
    assert "invalid cron expression `0 25 * * *`" in caught.value.message
    assert "e.g. `0 6 * * *`" in caught.value.message
    path.write_text(
        pipeline_yaml("p", writes="raw.p", schedule="schedule: {cron: '0 6 * * *', timezone: CET2}")
    )
    with pytest.raises(PipelineSyntaxError) as caught:
        load_pipeline(path)
    assert caught.value.location == f"{path}:2:41"
    assert caught.value.message.startswith("unknown time zone `CET2`")


def test_the_short_form_is_a_utc_cron(tmp_path: Path) -> None:
    from headwater.pipelines.spec import PipelineSpec

    spec = PipelineSpec.from_yaml(
        pipeline_yaml("p", writes="raw.p", schedule="schedule: '*/5 * * * *'")
    )
    assert spec.schedule is not None
    assert (spec.schedule.cron, spec.schedule.timezone, spec.schedule.catchup) == (
        "*/5 * * * *",
        "UTC",
        "latest",
    )
    assert spec.schedule.max_concurrent_runs == 1


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # spring forward, 2026-03-29: 02:30 does not exist, the run happens at 03:00 CEST
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # fall back, 2026-10-25: 02:30 happens twice, the run happens once (02:30 CEST)
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_a_dst_night_runs_a_daily_berlin_schedule_once(
    tmp_path: Path, start: datetime, expected: datetime
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        None,
        {
            "nightly": pipeline_yaml(
                "nightly",
                writes="raw.nightly",
                schedule="schedule: {cron: '30 2 * * *', timezone: Europe/Berlin, catchup: all}",
            )
        },
    )
    clock = FakeClock(start)
    scheduler = Scheduler(ws, clock=clock, holder="one")
    fired = []
    for _ in range(6 * 4):  # every 15 minutes for 6 hours, through the whole night
        fired += [t for _, t, _ in scheduler.run_pass().fired]
        clock.advance(minutes=15)
    assert scheduler.wait_idle()
    scheduler.close()
    assert fired == [expected]
    assert [r.trigger for r in ws.runs(pipeline="nightly")] == ["schedule"]
    ws.close()


def test_commits_while_a_triggered_run_waits_fold_into_it(
    tmp_path: Path, metadata_url: str
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        metadata_url,
        {
            "orders": pipeline_yaml("orders", writes="raw.orders"),
            "report": pipeline_yaml(
                "report", reads="raw.orders", writes="mart.report", trigger=["raw.orders"]
            ),
        },
    )
    run_ids = [ws.run("orders").run_id for _ in range(3)]
    queue = SchedulerStore(ws.store)
    (request,) = queue.requests()
    assert request.details["run_ids"] == run_ids
    assert request.details["run_id"] == run_ids[-1]
    assert request.details["datasets"] == {"raw.orders": ws.lake.version("raw.orders")}
    Scheduler(ws, holder="one").run_once()
    (report,) = ws.runs(pipeline="report")
    assert report.status == "succeeded"
    assert ws.read("mart.report").column("n").to_pylist() == [3]  # saw all three commits
    # once the request ran, a new commit queues a new one
    ws.run("orders")
    assert [r.status for r in queue.requests()] == ["succeeded", "queued"]
    ws.close()


def test_a_new_leader_settles_the_requests_another_scheduler_left_running(
    hourly: Workspace,
) -> None:
    import os
    import socket
    import subprocess
    import sys

    store, queue = hourly.store, SchedulerStore(hourly.store)
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    cases = {}
    for name, status, pid in [
        ("finished", "succeeded", os.getpid()),
        ("alive", "running", os.getpid()),
        ("killed", "running", gone.pid),
        ("unstarted", None, None),
    ]:
        request = queue.enqueue("hourly", reason="manual")
        assert queue.claim(request, "ghost")
        if status is not None:
            store.start_run(f"run-{name}", "hourly", params={"pid": pid, "host": host})
            if status != "running":
                store.finish_run(f"run-{name}", status)
            queue.update_request(request, run_id=f"run-{name}")
        cases[name] = request
    scheduler = Scheduler(hourly, holder="heir")
    scheduler.run_pass()
    scheduler.close()
    by_id = {r.id: r for r in queue.requests()}
    assert {name: by_id[rid].status for name, rid in cases.items()} == {
        "finished": "succeeded",
        "alive": "running",  # its process finishes it
        "killed": "failed",
        "unstarted": "failed",
    }
    assert "ended without finishing the run" in (by_id[cases["killed"]].error or "")
    assert "stopped before the run finished" in (by_id[cases["unstarted"]].error or "")
    assert store.get_run("run-killed").status == "failed"  # type: ignore[union-attr]
