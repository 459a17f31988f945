"""Cold start: the CLI imports heavy libraries only when a command needs them.

Speed is measured in bench/orchestration.py; here we check what is imported, in fresh
interpreters, so a stray top-level import is caught without a timed assertion.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from headwater.workspace import Workspace

HEAVY = (
    "alembic",
    "deltalake",
    "distributed",
    "duckdb",
    "prometheus_client",
    "pyarrow",
    "sqlalchemy",
    "sqlglot",
)


def _loaded_after(code: str) -> list[str]:
    probe = (
        code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import headwater.cli.app") == []


def test_help_loads_no_heavy_library() -> None:
    code = (
        "import contextlib, io\n"
        "from headwater.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "    assert main(['run', '--help']) == 0\n"
    )
    assert _loaded_after(code) == []


def test_opening_a_migrated_workspace_does_not_load_alembic(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()  # creates and migrates the metadata database
    loaded = _loaded_after(
        f"from headwater.workspace import Workspace\nWorkspace.open({str(tmp_path)!r}).close()"
    )
    assert "alembic" not in loaded and "sqlalchemy" in loaded
