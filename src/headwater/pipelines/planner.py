"""Spec -> DAG: the order of steps follows the datasets they read and write.

Edges come from dataflow:

* ``extract`` and ``transform`` write their ``to`` dataset; ``extract`` also appends
  the rows its connector rejects to ``<to>__quarantine``, and ``check`` appends the
  rows failing its checks to ``<dataset>__quarantine``;
* ``transform`` reads the datasets named by ``ref()`` in its SQL, ``load`` reads
  ``from``, ``check`` reads ``dataset``;
* every reader of a dataset runs after every step that writes it;
* a ``check`` runs after every writer of its dataset and *before* every other reader,
  so that readers only ever see checked data;
* the checks of one dataset run one after the other, in file order: each rewrites the
  dataset with the rows it passed, so two at once would each drop only their own
  failures and the last to commit would bring back the rows the other quarantined;
* ``depends_on`` adds explicit edges.

A step that writes a dataset it also reads (an incremental transform) sees the
dataset as the other writers left it; likewise a step that writes a dataset and reads
its quarantine runs before the dataset's checks and sees the quarantine as it was
before them. Two writers of one dataset must be ordered by some path between them,
else the final content would depend on timing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from headwater.errors import (
    ConnectionNotFoundError,
    CycleError,
    PipelineError,
    PipelineSyntaxError,
    RefError,
    did_you_mean,
)
from headwater.pipelines.map_rules import map_input_sites
from headwater.pipelines.spec import (
    CheckStep,
    ExtractStep,
    LoadStep,
    MapStep,
    PipelineSpec,
    PythonStep,
    ReplicateStep,
    SpecPath,
    TransformStep,
)
from headwater.transform.refs import find_ref_spans

__all__ = ["Edge", "Plan", "plan", "writers_of"]

AnyStep = ExtractStep | TransformStep | MapStep | CheckStep | LoadStep | ReplicateStep | PythonStep


@dataclass(frozen=True)
class Edge:
    """``upstream`` must finish before ``downstream`` starts, because of ``reason``."""

    upstream: str
    downstream: str
    reason: str  # a dataset name, "check <dataset>" or "depends_on"


class Plan:
    """A validated DAG of one pipeline's steps (or a selection of them)."""

    def __init__(
        self,
        spec: PipelineSpec,
        order: Iterable[str],
        edges: Iterable[Edge],
    ) -> None:
        self.spec = spec
        self.order: tuple[str, ...] = tuple(order)
        """Step names in a deterministic topological order (ties: file order)."""
        self.edges: tuple[Edge, ...] = tuple(edges)
        rank = {name: i for i, name in enumerate(self.order)}
        self._rank = rank
        up: dict[str, set[str]] = {name: set() for name in self.order}
        down: dict[str, set[str]] = {name: set() for name in self.order}
        for edge in self.edges:
            up[edge.downstream].add(edge.upstream)
            down[edge.upstream].add(edge.downstream)
        self._up = {n: tuple(sorted(s, key=rank.__getitem__)) for n, s in up.items()}
        self._down = {n: tuple(sorted(s, key=rank.__getitem__)) for n, s in down.items()}
        self._steps: dict[str, AnyStep] = {s.name: s for s in spec.steps if s.name in rank}

    # -- inspection -----------------------------------------------------------------------

    @property
    def steps(self) -> list[AnyStep]:
        """The planned steps, in :attr:`order`."""
        return [self._steps[name] for name in self.order]

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)

    def __contains__(self, name: object) -> bool:
        return name in self._rank

    def __repr__(self) -> str:
        return f"Plan({self.spec.name!r}, order={list(self.order)!r})"

    def step(self, name: str) -> AnyStep:
        self._require(name)
        return self._steps[name]

    def _require(self, name: str) -> None:
        if name not in self._rank:
            close = did_you_mean(name, self.order)
            raise PipelineError(
                f"no step `{name}` in the plan of pipeline `{self.spec.name}`."
                + (f" {close}" if close else ""),
                pipeline=self.spec.name,
                step=name,
                hint="Planned steps: " + ", ".join(self.order),
            )

    def upstream(self, name: str, *, transitive: bool = False) -> list[str]:
        """Steps that must finish before ``name`` (direct ones unless ``transitive``)."""
        self._require(name)
        return self._closure(name, self._up) if transitive else list(self._up[name])

    def downstream(self, name: str, *, transitive: bool = False) -> list[str]:
        """Steps waiting for ``name`` (direct ones unless ``transitive``)."""
        self._require(name)
        return self._closure(name, self._down) if transitive else list(self._down[name])

    def _closure(self, name: str, graph: dict[str, tuple[str, ...]]) -> list[str]:
        seen: set[str] = set()
        stack = list(graph[name])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(graph[node])
        return sorted(seen, key=self._rank.__getitem__)

    def inputs(self, name: str) -> tuple[str, ...]:
        """Managed datasets the step reads."""
        return self.step(name).inputs()

    def outputs(self, name: str) -> tuple[str, ...]:
        """Managed datasets the step may write: a check rewrites the dataset it checks,
        extracts and checks append to quarantine datasets."""
        return self.step(name).outputs()

    def writers(self, dataset: str) -> list[str]:
        """Planned steps producing ``dataset``, in order.

        The checks of a dataset, which only rewrite it with the rows they pass, are not
        counted (they come after its writers); they are writers of its quarantine.
        """
        zone_wide = f"{dataset.partition('.')[0]}.*"
        named = [n for n in self.order if dataset in produced(self._steps[n])]
        return named or [n for n in self.order if zone_wide in produced(self._steps[n])]

    @property
    def external_inputs(self) -> list[str]:
        """Datasets read by planned steps that no planned step writes (read from the lake)."""
        written = {d for n in self.order for d in produced(self._steps[n])}
        seen: dict[str, None] = {}
        for name in self.order:
            for dataset in self._steps[name].inputs():
                if dataset not in written:
                    seen.setdefault(dataset, None)
        return list(seen)

    # -- scheduling -----------------------------------------------------------------------

    def ready(self, done: Collection[str], running: Collection[str]) -> list[str]:
        """Steps not done nor running whose upstream steps are all done, in order."""
        return [
            name
            for name in self.order
            if name not in done and name not in running and all(up in done for up in self._up[name])
        ]

    def levels(self) -> list[list[str]]:
        """Steps grouped by depth: level ``k`` only needs steps of levels below ``k``."""
        depth: dict[str, int] = {}
        for name in self.order:
            depth[name] = 1 + max((depth[u] for u in self._up[name]), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.order:
            out[depth[name]].append(name)
        return out

    def subset(
        self,
        select: Iterable[str],
        *,
        upstream: bool = False,
        downstream: bool = False,
        include_checks: bool = True,
    ) -> Plan:
        """A plan of only the selected steps, keeping their relative order.

        A selector is a step name, ``+name`` (with everything upstream), ``name+``
        (with everything downstream) or ``+name+``. ``upstream``/``downstream``
        apply to every selector. With ``include_checks`` the checks of datasets a
        selected step writes are kept, so readers never see unchecked data.
        Datasets that unselected steps would have written are read from the lake.
        """
        chosen: set[str] = set()
        selectors = list(select)
        if not selectors:
            raise PipelineError(
                "empty step selection", pipeline=self.spec.name, hint="Name at least one step."
            )
        for selector in selectors:
            name = selector.strip().strip("+")
            self._require(name)
            chosen.add(name)
            if upstream or selector.strip().startswith("+"):
                chosen.update(self.upstream(name, transitive=True))
            if downstream or selector.strip().endswith("+"):
                chosen.update(self.downstream(name, transitive=True))
        if include_checks:
            written = {d for n in chosen for d in produced(self._steps[n])}
            for name in self.order:
                step = self._steps[name]
                if isinstance(step, CheckStep) and step.dataset in written:
                    chosen.add(name)
        # keep the ordering implied through unselected steps: u -> ... -> v
        known = {(e.upstream, e.downstream): e for e in self.edges}
        edges: dict[tuple[str, str], Edge] = {}
        for name in chosen:
            stack, seen = list(self._down[name]), set()
            while stack:
                node = stack.pop()
                if node in seen:
                    continue
                seen.add(node)
                if node in chosen:
                    pair = (name, node)
                    edges[pair] = known.get(pair, Edge(name, node, "via unselected steps"))
                else:
                    stack.extend(self._down[node])
        order = [n for n in self.order if n in chosen]
        return Plan(self.spec, order, _sorted_edges(edges.values(), order))


def _sorted_edges(edges: Iterable[Edge], order: list[str]) -> list[Edge]:
    rank = {name: i for i, name in enumerate(order)}
    return sorted(edges, key=lambda e: (rank[e.downstream], rank[e.upstream]))


# --------------------------------------------------------------------------- planning


def produced(step: AnyStep) -> tuple[str, ...]:
    """The datasets ``step`` writes, less the one a check rewrites in place."""
    if isinstance(step, CheckStep):
        return tuple(d for d in step.outputs() if d != step.dataset)
    return step.outputs()


def writers_of(writers: dict[str, list[str]], dataset: str) -> list[str]:
    """The steps writing ``dataset``: by name, else a step replicating into its whole zone."""
    named = writers.get(dataset)
    if named:
        return named
    zone = dataset.partition(".")[0]
    return writers.get(f"{zone}.*", [])


def plan(
    spec: PipelineSpec,
    *,
    dataset_exists: Callable[[str], bool],
    connection_names: Collection[str] | None = None,
    known_datasets: Iterable[str] = (),
) -> Plan:
    """Check a spec against the workspace and order its steps.

    ``dataset_exists`` tells whether the lake holds a dataset that no step produces;
    ``connection_names``, when given, are the connections steps may use;
    ``known_datasets`` only improves "did you mean" suggestions.

    Raises :class:`ConnectionNotFoundError`, :class:`RefError`, :class:`CycleError`,
    or :class:`PipelineError` when two unordered steps write the same dataset.
    """
    steps = list(spec.steps)
    _check_unique_names(spec)
    if connection_names is not None:
        _check_connections(spec, set(connection_names))
    writers: dict[str, list[str]] = {}
    for step in steps:
        for dataset in produced(step):
            writers.setdefault(dataset, []).append(step.name)
    checks: dict[str, list[str]] = {}
    for step in steps:
        if isinstance(step, CheckStep):
            checks.setdefault(step.dataset, []).append(step.name)
    _check_inputs(spec, writers, dataset_exists, set(known_datasets))

    edges: dict[tuple[str, str], list[str]] = {}

    def link(a: str, b: str, reason: str) -> None:
        if a != b:
            reasons = edges.setdefault((a, b), [])
            if reason not in reasons:
                reasons.append(reason)

    by_name = {step.name: step for step in steps}
    for step in steps:
        own = step.dataset if isinstance(step, CheckStep) else None
        writes = produced(step)
        for dataset in step.inputs():
            for writer in writers_of(writers, dataset):
                other = by_name[writer]
                if isinstance(other, CheckStep) and other.dataset in writes:
                    continue  # it runs after this step, a writer of its dataset
                link(writer, step.name, f"check {dataset}" if dataset == own else dataset)
            if dataset == own:  # after the previous check of the same dataset
                previous = checks[dataset][: checks[dataset].index(step.name)]
                if previous:
                    link(previous[-1], step.name, f"check {dataset}")
            elif dataset not in writes:
                for check in checks.get(dataset, []):  # checks run before pure readers
                    link(check, step.name, f"check {dataset}")
        for dep in step.depends_on:
            link(dep, step.name, "depends_on")
    flat = [Edge(a, b, ", ".join(r)) for (a, b), r in edges.items()]
    order = _toposort(spec, flat)
    result = Plan(spec, order, _sorted_edges(flat, order))
    _check_writers_ordered(spec, result, writers)
    return result


def _check_unique_names(spec: PipelineSpec) -> None:
    seen: set[str] = set()
    for i, name in enumerate(spec.step_names):
        if name in seen:
            raise PipelineSyntaxError(
                f"duplicate step name `{name}`",
                location=spec.location_of(("steps", i, "name")),
                pipeline=spec.name,
                step=name,
                hint="Step names must be unique; give one of them another `name:`.",
            )
        seen.add(name)
        for dep in spec.steps[i].depends_on:
            if dep not in spec.step_names:
                raise PipelineSyntaxError(
                    f"step `{name}`: `depends_on` names an unknown step `{dep}`",
                    location=spec.location_of(("steps", i, "depends_on")),
                    pipeline=spec.name,
                    step=name,
                    hint=did_you_mean(dep, spec.step_names),
                )


def _problems_message(what: str, problems: list[tuple[str, str]]) -> str:
    if len(problems) == 1:
        return problems[0][1]
    return f"{len(problems)} {what}:" + "".join(f"\n  {loc}: {msg}" for loc, msg in problems)


def _check_connections(spec: PipelineSpec, names: set[str]) -> None:
    problems: list[tuple[str, str]] = []
    first: tuple[str, str | None, str] | None = None
    for i, step in enumerate(spec.steps):
        connection = getattr(step, "connection", None)
        if (
            isinstance(step, ExtractStep | LoadStep | ReplicateStep | TransformStep)
            and connection is not None
            and connection not in names
        ):
            close = did_you_mean(connection, names)
            location = spec.location_of(("steps", i, "connection"))
            message = f"step `{step.name}`: unknown connection `{connection}`." + (
                f" {close}" if close else ""
            )
            problems.append((location, message))
            first = first or (location, step.name, connection)
    if first is not None:
        listed = ", ".join(sorted(names)) if names else "(none)"
        raise ConnectionNotFoundError(
            _problems_message("unknown connections", problems),
            location=first[0],
            pipeline=spec.name,
            step=first[1],
            connector=first[2],
            field="connection",
            hint=f"Declared connections: {listed}. Add one under `connections:` in "
            "headwater.yaml or with `headwater connections add`.",
            errors=[{"location": loc, "message": msg} for loc, msg in problems],
        )


def _check_inputs(
    spec: PipelineSpec,
    writers: dict[str, list[str]],
    dataset_exists: Callable[[str], bool],
    known: set[str],
) -> None:
    exists: dict[str, bool] = {}
    problems: list[tuple[str, str]] = []
    first: tuple[str, str, str, str] | None = None
    candidates = sorted(set(writers) | known)
    for i, step in enumerate(spec.steps):
        for dataset, path, offset in _input_sites(step, i):
            others = [w for w in writers_of(writers, dataset) if w != step.name]
            if others:
                continue
            if dataset not in exists:
                exists[dataset] = bool(dataset_exists(dataset))
            if exists[dataset]:
                continue
            location = spec.location_of(path, offset=offset)
            close = did_you_mean(dataset, candidates)
            own = dataset in produced(step)
            message = (
                f"step `{step.name}` reads `{dataset}`, which "
                + (
                    "only this step writes and which does not exist yet"
                    if own
                    else "no step produces and the lake does not hold"
                )
                + "."
                + (f" {close}" if close else "")
            )
            problems.append((location, message))
            first = first or (location, step.name, dataset, str(path[-1]))
    if first is not None:
        listed = ", ".join(candidates) or "(none)"
        raise RefError(
            _problems_message("unresolved datasets", problems),
            location=first[0],
            pipeline=spec.name,
            step=first[1],
            dataset=first[2],
            field=first[3],
            hint=f"Datasets produced or known: {listed}. Add a step that writes it, or "
            "fix the name.",
            errors=[{"location": loc, "message": msg} for loc, msg in problems],
        )


def _input_sites(step: AnyStep, i: int) -> list[tuple[str, SpecPath, int | None]]:
    """Each dataset a step reads, with the field (and offset in the SQL) naming it."""
    if isinstance(step, TransformStep):
        return [(s.dataset, ("steps", i, "sql"), s.start) for s in find_ref_spans(step.sql)]
    if isinstance(step, CheckStep):
        others: list[tuple[str, SpecPath, int | None]] = [
            (to, ("steps", i, "checks", j, "to"), None)
            for j, check in enumerate(step.checks)
            if (to := getattr(check, "to", None))
        ]
        return [(step.dataset, ("steps", i, "dataset"), None), *others]
    if isinstance(step, LoadStep):
        return [(step.from_, ("steps", i, "from"), None)]
    if isinstance(step, MapStep):
        return map_input_sites(step, i)
    if isinstance(step, PythonStep):
        return [(d, ("steps", i, "inputs", k), None) for k, d in enumerate(step.inputs_)]
    return []


def _toposort(spec: PipelineSpec, edges: list[Edge]) -> list[str]:
    rank = {name: i for i, name in enumerate(spec.step_names)}
    indegree = dict.fromkeys(rank, 0)
    down: dict[str, list[str]] = {name: [] for name in rank}
    for edge in edges:
        indegree[edge.downstream] += 1
        down[edge.upstream].append(edge.downstream)
    heap = [rank[n] for n, d in indegree.items() if d == 0]
    heapq.heapify(heap)
    names = spec.step_names
    order: list[str] = []
    while heap:
        name = names[heapq.heappop(heap)]
        order.append(name)
        for nxt in down[name]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(heap, rank[nxt])
    if len(order) < len(names):
        _raise_cycle(spec, {n for n in names if indegree[n] > 0}, edges, rank)
    return order


def _raise_cycle(
    spec: PipelineSpec, remaining: set[str], edges: list[Edge], rank: dict[str, int]
) -> None:
    up: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.upstream in remaining and edge.downstream in remaining:
            up.setdefault(edge.downstream, []).append(edge)
    # walk upstream from the first remaining step until a step repeats: that is a cycle
    node = min(remaining, key=rank.__getitem__)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min((e.upstream for e in up[node]), key=rank.__getitem__)
    cycle = list(reversed(path[path.index(node) :]))  # upstream -> downstream
    start = min(range(len(cycle)), key=lambda k: rank[cycle[k]])
    cycle = cycle[start:] + cycle[:start]
    reasons = {(e.upstream, e.downstream): e.reason for e in edges}
    links = [(cycle[k], cycle[(k + 1) % len(cycle)]) for k in range(len(cycle))]
    why = "; ".join(f"`{b}` needs `{a}` ({reasons[(a, b)]})" for a, b in links)
    first = cycle[0]
    raise CycleError(
        f"steps depend on each other in a cycle: {' -> '.join([*cycle, first])}",
        location=spec.location_of(("steps", spec.index_of(first))),
        pipeline=spec.name,
        step=first,
        hint=f"{why}. Break the loop: write to another dataset or drop a `depends_on`.",
        cycle=[*cycle, first],
    )


def _check_writers_ordered(spec: PipelineSpec, result: Plan, writers: dict[str, list[str]]) -> None:
    for dataset, names in writers.items():
        for k, a in enumerate(names):
            later = set(result.downstream(a, transitive=True))
            for b in names[k + 1 :]:
                if b in later or a in result.downstream(b, transitive=True):
                    continue
                i = spec.index_of(b)
                field = "dataset" if isinstance(spec.steps[i], CheckStep) else "to"
                raise PipelineError(
                    f"steps `{a}` and `{b}` both write `{dataset}` and nothing orders them, "
                    "so the result would depend on which runs last",
                    location=spec.location_of(("steps", i, field)),
                    pipeline=spec.name,
                    step=b,
                    dataset=dataset,
                    hint=f"Make `{b}` read `{a}`'s output with ref(), add `depends_on: [{a}]` "
                    f"to `{b}`, or write to different datasets.",
                )
