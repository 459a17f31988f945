"""docs/pipelines.md, "From Python": load a pipeline file and look at its plan.

``tests/docs/test_examples.py`` runs :func:`main` on ``complete_pipeline.yaml`` (the
page's complete example) saved as ``pipelines/orders.yaml``, and checks that the page
shows the same lines, with ``"pipelines/orders.yaml"`` for ``pipeline_file``.
"""

from __future__ import annotations

from typing import Any

from headwater.pipelines import PipelineSpec, plan


def main(pipeline_file: str = "pipelines/orders.yaml") -> dict[str, Any]:
    spec = PipelineSpec.from_yaml(pipeline_file)  # or from_dict({...}), or YAML text
    where = spec.location_of(("steps", "clean_orders", "sql"))  # 'pipelines/orders.yaml:21:10'
    dag = plan(spec, dataset_exists=lambda name: False, connection_names={"landing", "exports"})
    order = dag.order  # steps in a deterministic topological order
    levels = dag.levels()  # groups of steps that can run in parallel
    ready = dag.ready(done=set(), running=set())  # steps that can start now
    upstream = dag.subset(["+clean_orders"])  # clean_orders and everything it needs
    return {"where": where, "order": order, "levels": levels, "ready": ready, "upstream": upstream}


if __name__ == "__main__":
    print(main())
