"""The pipelines of docs/scheduling.md load, fire on schedule and trigger as documented."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from headwater.pipelines.scheduling.queue import SchedulerStore
from headwater.pipelines.scheduling.scheduler import Scheduler
from tests.pipelines.scheduling_helpers import FakeClock, make_workspace

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def _documented_pipelines() -> dict[str, str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        match = re.fullmatch(r"# pipelines/(\w+)\.yaml", first)
        assert match, f"each yaml block of docs/scheduling.md names its file: {first!r}"
        out[match.group(1)] = block
    return out


def test_documented_schedule_fires_at_six_berlin_and_triggers_revenue(tmp_path: Path) -> None:
    pipelines = _documented_pipelines()
    assert set(pipelines) == {"orders", "heartbeat", "revenue"}
    ws = make_workspace(tmp_path / "ws", None, pipelines)
    # 05:59:50 in Berlin (summer time, UTC+2)
    clock = FakeClock(datetime(2026, 6, 1, 3, 59, 50, tzinfo=UTC))
    Scheduler(ws, clock=clock, holder="docs").run_once()
    clock.advance(seconds=30)
    passes = Scheduler(ws, clock=clock, holder="docs").run_once()
    fired = {(name, tick) for p in passes for name, tick, _ in p.fired}
    assert fired == {
        ("orders", datetime(2026, 6, 1, 4, 0, tzinfo=UTC)),
        ("heartbeat", datetime(2026, 6, 1, 4, 0, tzinfo=UTC)),
    }
    reasons = sorted((r.pipeline, r.reason, r.status) for r in SchedulerStore(ws.store).requests())
    assert reasons == [
        ("heartbeat", "schedule", "succeeded"),
        ("orders", "schedule", "succeeded"),
        ("revenue", "dataset", "succeeded"),
    ]
    assert ws.read("mart.revenue").column("revenue").to_pylist() == [9.5]
    ws.close()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_documented_signature_check_accepts_headwater_signatures() -> None:
    from headwater.pipelines.scheduling.webhooks import sign

    (check,) = [b for b in _python_blocks() if "def valid" in b]
    namespace: dict[str, object] = {}
    exec(check, namespace)
    valid = namespace["valid"]
    body = b'{"dataset":"raw.orders","version":3}'
    assert valid("k", body, sign("k", body))  # type: ignore[operator]
    assert not valid("other", body, sign("k", body))  # type: ignore[operator]


def test_documented_python_api_runs(tmp_path: Path) -> None:
    (api,) = [b for b in _python_blocks() if "Scheduler(ws)" in b]
    ws = make_workspace(tmp_path / "ws", None, _documented_pipelines())
    root = ws.root
    ws.close()
    exec(api.replace('"my-workspace"', repr(str(root))), {})
    from headwater.workspace import Workspace

    with Workspace.open(root) as again:
        (sub,) = SchedulerStore(again.store).subscriptions()
        assert (sub.dataset, sub.secret_ref) == ("raw.orders", "${HOOK_SECRET}")
