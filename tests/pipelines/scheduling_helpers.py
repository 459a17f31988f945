"""Small real workspaces for the scheduler and subscription tests."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headwater.workspace import Workspace


class FakeClock:
    """A clock the test moves by hand (UTC)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def pipeline_yaml(
    name: str,
    *,
    writes: str,
    reads: str | None = None,
    schedule: str | None = None,
    trigger: list[str] | None = None,
) -> str:
    sql = f"select count(*) as n from {{{{ ref('{reads}') }}}}" if reads else "select 1 as n"
    text = f"name: {name}\n"
    if schedule:
        text += textwrap.dedent(schedule).strip() + "\n"
    if trigger:
        text += f"trigger:\n  datasets: [{', '.join(trigger)}]\n"
    text += f"steps:\n  - type: transform\n    sql: {sql}\n    to: {writes}\n    mode: append\n"
    return text


def make_workspace(root: Path, metadata_url: str | None, pipelines: dict[str, str]) -> Workspace:
    ws = Workspace.init(root)
    if metadata_url:
        config = root / "headwater.yaml"
        config.write_text(f"metadata_url: {metadata_url}\n" + config.read_text())
        ws.close()
        ws = Workspace.open(root)
    for name, text in pipelines.items():
        (root / "pipelines" / f"{name}.yaml").write_text(text)
    return ws
