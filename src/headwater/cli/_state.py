"""Global CLI options shared by every command (set by the root callback)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from headwater.workspace import Workspace


@dataclass
class CLIState:
    debug: bool = False
    workspace: Path | None = None


state = CLIState()
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 140  # logs and pipes: do not squeeze tables into 80 columns


def open_workspace() -> Workspace:
    from headwater.workspace import Workspace

    return Workspace.open(state.workspace)
