"""Global CLI options shared by every command (set by the root callback)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from headwater.workspace import Workspace


@dataclass
class CLIState:
    debug: bool = False
    workspace: Path | None = None


state = CLIState()
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def open_workspace() -> Workspace:
    return Workspace.open(state.workspace)
