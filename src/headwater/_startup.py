"""Cyclic garbage collection is deferred while a command starts.

Start-up allocates hundreds of thousands of long-lived objects (the modules, classes and
schemas of SQLAlchemy, pydantic, sqlglot, pyarrow and Headwater itself) and very little cyclic
garbage, so the collector's passes over them during imports are pure cost: about a sixth of the
CPU time of a trivial ``headwater run``. The console script calls :func:`defer_collection`;
:func:`end_startup` freezes what start-up built (so later collections skip it) and turns the
collector back on. It runs when the first run of the command is over, or after
:data:`STARTUP_SECONDS` at the latest, so a long-lived command (a scheduler, a long run) collects
garbage as usual; a child forked meanwhile collects from the start. Library use of Headwater
(``import headwater``) is not affected.
"""

from __future__ import annotations

import gc
import os
import threading

__all__ = ["STARTUP_SECONDS", "defer_collection", "end_startup"]

STARTUP_SECONDS = 5.0

_lock = threading.Lock()
_deferred = False


def defer_collection() -> None:
    """Turn the cyclic collector off until :func:`end_startup` (or STARTUP_SECONDS)."""
    global _deferred
    with _lock:
        if _deferred or not gc.isenabled():
            return
        _deferred = True
        gc.disable()
    timer = threading.Timer(STARTUP_SECONDS, end_startup)
    timer.daemon = True
    timer.start()
    # a forked child has no timer thread: it collects from the start
    os.register_at_fork(after_in_child=_child_collects)


def _child_collects() -> None:
    global _deferred
    _deferred = False
    gc.enable()


def end_startup() -> None:
    """Freeze the objects built so far and turn the collector back on; idempotent, and a
    no-op unless :func:`defer_collection` turned it off."""
    global _deferred
    with _lock:
        if not _deferred:
            return
        _deferred = False
        gc.freeze()
        gc.enable()
