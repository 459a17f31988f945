"""Two real `headwater scheduler` processes on one PostgreSQL metadata store.

The leader is killed with SIGKILL; the standby must take over within the lease time,
and the ticks recorded over the whole window must be contiguous, none doubled.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.metadata.store import MetadataStore
from headwater.pipelines.scheduling.queue import SchedulerStore
from tests.pipelines.scheduling_helpers import make_workspace, pipeline_yaml

pytestmark = [pytest.mark.services, pytest.mark.slow]

LEASE = 3.0
POLL = 0.3
EVERY = 2  # seconds between ticks


@pytest.fixture
def pg_metadata(postgres_url: str) -> Iterator[str]:
    import psycopg

    name = f"hw_sched_{uuid.uuid4().hex[:10]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start(root: Path, holder: str, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEADWATER_METADATA_URL": url, "HEADWATER_WORKSPACE": str(root)}
    command = [
        sys.executable,
        "-m",
        "headwater",
        "scheduler",
        "--lease-seconds",
        str(LEASE),
        "--poll-seconds",
        str(POLL),
        "--id",
        holder,
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_leader_is_replaced_within_the_lease_and_no_tick_is_lost_or_doubled(
    tmp_path: Path, pg_metadata: str
) -> None:
    root = tmp_path / "ws"
    ws = make_workspace(
        root,
        pg_metadata,
        {
            "beat": pipeline_yaml(
                "beat",
                writes="raw.beat",
                schedule=f"schedule: {{cron: '* * * * * */{EVERY}', catchup: all}}",
            )
        },
    )
    ws.close()
    store = MetadataStore(pg_metadata)
    queue = SchedulerStore(store)

    def ticks_by(holder: str) -> list[datetime]:
        return [
            MetadataStore.as_utc(t.fired_at)  # type: ignore[misc]
            for t in queue.ticks("beat")
            if t.holder == holder
        ]

    a = _start(root, "A", pg_metadata, tmp_path / "a.log")
    b: subprocess.Popen[bytes] | None = None
    try:
        _wait(
            lambda: (queue.lease() or None) is not None and queue.lease().holder == "A",
            60,
            "A to lead",
        )  # type: ignore[union-attr]
        b = _start(root, "B", pg_metadata, tmp_path / "b.log")
        _wait(lambda: len(ticks_by("A")) >= 3, 60, "three ticks fired by A")
        _wait(
            lambda: "B is standing by: A holds the lease" in (tmp_path / "b.log").read_text(),
            60,
            "B to start and stand by",
        )
        assert queue.lease().holder == "A"  # type: ignore[union-attr]
        assert ticks_by("B") == []
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed_at = datetime.now(UTC)
        held = queue.lease()  # A's last renewal: it can renew no more
        assert held is not None and held.holder == "A"
        expired_at = MetadataStore.as_utc(held.expires_at)
        assert expired_at is not None and expired_at <= killed_at + timedelta(seconds=LEASE)
        _wait(lambda: queue.lease().holder == "B", LEASE + 30, "B to take the lease")  # type: ignore[union-attr]
        taken = queue.lease()
        assert taken is not None
        took_over_at = MetadataStore.as_utc(taken.acquired_at)
        assert took_over_at is not None
        # B took the lease on its first pass after A's expired: within the lease time of
        # the kill (plus one poll, and a margin for a busy machine)
        logs = (tmp_path / "b.log").read_text()
        assert expired_at <= took_over_at <= expired_at + timedelta(seconds=POLL + 1.5), logs
        assert took_over_at - killed_at <= timedelta(seconds=LEASE + POLL + 1.5)
        _wait(lambda: len(ticks_by("B")) >= 3, 60, "three ticks fired by B")
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
    assert b is not None and b.returncode == 0, (tmp_path / "b.log").read_text()
    lease = queue.lease()
    assert lease is not None and MetadataStore.as_utc(lease.expires_at) < datetime.now(UTC)  # type: ignore[operator]
    b_log = (tmp_path / "b.log").read_text()
    assert "SIGTERM received: finishing running runs" in b_log
    assert "B is the active scheduler" in b_log
    ticks = queue.ticks("beat")
    scheduled = [MetadataStore.as_utc(t.scheduled_for) for t in ticks]
    assert len(scheduled) == len(set(scheduled)), "a tick was fired twice"
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(scheduled)}  # type: ignore[operator]
    assert gaps == {float(EVERY)}, f"ticks are not contiguous: {scheduled}"
    holders = [t.holder for t in ticks]
    switch = holders.index("B")
    assert holders == ["A"] * switch + ["B"] * (len(holders) - switch)
    # every tick queued exactly one run request
    requests = queue.requests(pipeline="beat")
    assert sorted(r.id for r in requests) == sorted(t.request_id for t in ticks)  # type: ignore[type-var]
    store.close()
