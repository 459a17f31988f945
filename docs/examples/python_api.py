"""README.md, "The same from Python": run the orders pipeline of a workspace, then query it.

``tests/docs/test_examples.py`` runs :func:`main` on a real workspace and checks that the
README shows the same lines, with ``"shop"`` for ``workspace_dir``.
"""

from __future__ import annotations

from pathlib import Path

import headwater


def main(workspace_dir: str | Path = "shop") -> headwater.RunResult:
    with headwater.Workspace.open(workspace_dir) as ws:
        result = ws.run("pipelines/orders.yaml")
        print(result.status, [(s.name, s.rows_out, s.rows_quarantined) for s in result.steps])
        print(ws.query("select count(*) as n from staging.orders").to_pylist())
    return result


if __name__ == "__main__":
    main()
