"""Cold start: the CLI imports heavy libraries only when a command needs them.

Speed is measured in bench/orchestration.py; here we check what is imported, in fresh
interpreters, so a stray top-level import is caught without a timed assertion.
"""

from __future__ import annotations

import json
import os
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


def _probe(code: str, cwd: Path | None = None) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_WORKSPACE"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=cwd,
        env=env,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_help_renders_without_rich_help_formatting() -> None:
    """Plain click help: typer's rich help renderer (rich.markdown, pygments, rich.traceback)
    is never imported for --help, and the text still lists every command."""
    code = (
        "import contextlib, io, json, sys\n"
        "from headwater.cli.app import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    assert main(['--help']) == 0\n"
        "mods = ('typer.rich_utils', 'rich.markdown', 'rich.traceback', 'pygments')\n"
        "print(json.dumps({'loaded': [m for m in mods if m in sys.modules],"
        " 'help': out.getvalue()}))\n"
    )
    found = _probe(code)
    assert found["loaded"] == []
    text = str(found["help"])
    assert text.startswith("Usage: headwater [OPTIONS] COMMAND [ARGS]...")
    for command in ("init", "validate", "run", "backfill", "query", "datasets", "scheduler"):
        assert f"\n  {command} " in text


def test_startup_defers_garbage_collection_until_the_run_is_over(tmp_path: Path) -> None:
    """The console script turns the cyclic collector off for start-up; a finished run turns
    it back on, with start-up's objects frozen out of later collections."""
    Workspace.init(tmp_path).close()
    (tmp_path / "pipelines" / "one.yaml").write_text(
        "name: one\nsteps:\n  - {name: one, type: transform, sql: select 1 as x, to: t.one}\n"
    )
    code = (
        "import contextlib, gc, io, json\n"
        "from headwater._startup import defer_collection\n"
        "from headwater.cli.app import main\n"
        "defer_collection()\n"
        "deferred = not gc.isenabled()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['run', 'pipelines/one.yaml'])\n"
        "print(json.dumps({'code': code, 'deferred': deferred, 'enabled': gc.isenabled(),"
        " 'frozen': gc.get_freeze_count()}))\n"
    )
    found = _probe(code, cwd=tmp_path)
    assert found == {"code": 0, "deferred": True, "enabled": True, "frozen": found["frozen"]}
    assert isinstance(found["frozen"], int) and found["frozen"] > 10_000


def test_deferred_collection_resumes_after_the_startup_budget() -> None:
    """A command that never finishes a run (a scheduler, a server) gets its collector back
    after STARTUP_SECONDS; library use (no defer_collection call) never loses it."""
    code = (
        "import gc, json, time\n"
        "import headwater._startup as startup\n"
        "import headwater.workspace\n"
        "untouched = gc.isenabled()\n"
        "startup.STARTUP_SECONDS = 0.2\n"
        "startup.defer_collection()\n"
        "off = not gc.isenabled()\n"
        "deadline = time.monotonic() + 30\n"
        "while not gc.isenabled() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps([untouched, off, gc.isenabled()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [True, True, True]


def test_a_trivial_run_loads_no_optional_machinery(tmp_path: Path) -> None:
    """A one-step transform run needs DuckDB, Arrow, Delta and the metadata database, but
    not migrations, Dask, metrics export, or typer's rich help renderer."""
    Workspace.init(tmp_path).close()
    (tmp_path / "pipelines" / "one.yaml").write_text(
        "name: one\nsteps:\n  - {name: one, type: transform, sql: select 1 as x, to: t.one}\n"
    )
    code = (
        "import contextlib, io, json, sys\n"
        "from headwater.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['run', 'pipelines/one.yaml'])\n"
        "mods = ('alembic', 'dask', 'distributed', 'prometheus_client', 'typer.rich_utils',"
        " 'duckdb', 'deltalake', 'sqlalchemy')\n"
        "print(json.dumps({'code': code, 'loaded': [m for m in mods if m in sys.modules]}))\n"
    )
    assert _probe(code, cwd=tmp_path) == {
        "code": 0,
        "loaded": ["duckdb", "deltalake", "sqlalchemy"],
    }


def test_a_child_forked_during_startup_collects_garbage() -> None:
    code = (
        "import gc, json, os\n"
        "from headwater._startup import defer_collection\n"
        "defer_collection()\n"
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(write, b'1' if gc.isenabled() else b'0')\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(json.dumps([gc.isenabled(), os.read(read, 1).decode()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, "1"]
