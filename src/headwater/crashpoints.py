"""Named points where a test can kill the process, to prove crash safety.

Set ``HEADWATER_CRASH_AT`` to a comma-separated list of ``point`` or ``point:n``
(the n-th time the point is reached, default 1) and the process is killed with
SIGKILL there: no ``finally`` block, no atexit handler, no flush runs, exactly as
with ``kill -9``. Unset (always, outside tests) the check is one environment lookup.

Points (each one sits between two effects whose order matters):

``extract.after_read``
    rows of a chunk were read from the source, nothing written yet.
``extract.after_commit``
    a chunk was committed to the dataset, its checkpoint not yet saved.
``extract.after_checkpoint``
    the checkpoint of a chunk was saved.
``load.before_commit``
    a destination wrote the rows inside its transaction, not yet committed.
``load.during_swap``
    an overwrite (or a merge that rebuilds the table) filled its new table, the swap has not
    happened.
``load.after_commit``
    a destination committed, the step's outcome not yet recorded.
``replay.after_append``
    a quarantine replay appended the passing rows, the quarantine not yet rewritten.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["CRASH_ENV", "POINTS", "crash_point"]

CRASH_ENV = "HEADWATER_CRASH_AT"
POINTS = (
    "extract.after_read",
    "extract.after_commit",
    "extract.after_checkpoint",
    "load.before_commit",
    "load.during_swap",
    "load.after_commit",
    "replay.after_append",
)

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``HEADWATER_CRASH_AT`` names ``name`` (tests only)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    with _lock:
        _hits[name] = hit = _hits.get(name, 0) + 1
    for item in spec.split(","):
        point, _, nth = item.strip().partition(":")
        if point == name and hit == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
