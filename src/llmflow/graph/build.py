"""Walking a step tree into a `Graph`: one case per pattern, each drawing its control flow."""

from __future__ import annotations

from itertools import pairwise
from typing import Any, NamedTuple

from pydantic import BaseModel

from ..patterns.chain import Assign, Chain, Gate
from ..patterns.orchestrate import Orchestrate
from ..patterns.parallel import Parallel, Vote
from ..patterns.refine import Refine
from ..patterns.route import Route
from ..runtime.runner import Workflow
from ..steps.agent import AgentStep
from ..steps.base import Step
from .code import divert_targets
from .model import Cluster, Edge, EdgeStyle, Graph, Node, Shape

_SHAPES: dict[str, Shape] = {
    "llm": "rounded",
    "gate": "diamond",
    "agent": "hexagon",
    "tool": "pill",
    "action": "pill",
    "merge": "junction",
    "aggregate": "junction",
}


class _Ends(NamedTuple):
    """Where control enters a drawn step, and where it leaves."""

    entries: list[str]
    exits: list[str]


def build_graph(target: Step[Any, Any] | Workflow) -> Graph:
    """The graph of a step tree (or a workflow's step), ready to render."""
    step = target.step if isinstance(target, Workflow) else target
    title = target.name if isinstance(target, Workflow) else step.name
    builder = _Builder(title)
    builder.walk(step, step.name, builder.root)
    return Graph(title=title, root=builder.root, nodes=builder.nodes, edges=builder.edges)


class _Builder:
    def __init__(self, title: str) -> None:
        self.root = Cluster("", title, "workflow")
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self._cluster_ids: set[str] = set()
        self._active: set[int] = set()  # the steps being walked: a step inside itself stops

    def node(self, parent: Cluster, path: str, label: str, kind: str, **extra: Any) -> str:
        node_id = _unique(path, self.nodes)
        extra.setdefault("shape", _SHAPES.get(kind, "box"))
        self.nodes[node_id] = Node(node_id, label, kind, **extra)
        parent.members.append(node_id)
        return node_id

    def cluster(self, parent: Cluster, path: str, label: str, kind: str) -> Cluster:
        cluster = Cluster(_unique(path, self._cluster_ids), label, kind)
        self._cluster_ids.add(cluster.id)
        parent.members.append(cluster)
        return cluster

    def connect(
        self,
        sources: list[str],
        targets: list[str],
        label: str = "",
        style: EdgeStyle = "solid",
        *,
        back: bool = False,
    ) -> None:
        for source in sources:
            for target in targets:
                edge = Edge(source, target, label, style, back)
                if edge not in self.edges:
                    self.edges.append(edge)

    def walk(
        self,
        step: Step[Any, Any],
        path: str,
        parent: Cluster,
        *,
        name: str | None = None,
        times: int = 1,
    ) -> _Ends:
        """Draw `step` at `path` inside `parent`; `times`: it runs that many times (a vote)."""
        inner = step.step if isinstance(step, Assign) else step
        note = f"→ {step.field}" if isinstance(step, Assign) else ""
        name = name or path.rsplit("/", 1)[-1]
        label = f"{name} · {inner.kind}" + (f" ×{times}" if times > 1 else "")
        if id(inner) in self._active:  # a step inside itself: drawn as a leaf, once
            leaf = self.node(parent, path, label, inner.kind, note="(recursive)")
            return _Ends([leaf], [leaf])
        self._active.add(id(inner))
        try:
            return self._walk(inner, path, parent, label, note, times)
        finally:
            self._active.discard(id(inner))

    def _walk(
        self, step: Step[Any, Any], path: str, parent: Cluster, label: str, note: str, times: int
    ) -> _Ends:
        composite = f"{label} {note}" if note else label
        if isinstance(step, Chain):
            return self._chain(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, Route):
            return self._route(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, Parallel):
            return self._parallel(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, Vote):
            return self._vote(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, Orchestrate):
            return self._orchestrate(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, Refine):
            return self._refine(step, path, self.cluster(parent, path, composite, step.kind))
        if isinstance(step, AgentStep):
            return self._agent(step, path, parent, label, note)
        children = step.children()
        if children:  # a composite this module does not know: its parts, without edges
            cluster = self.cluster(parent, path, composite, step.kind)
            parts = [self.walk(child, f"{path}/{role}", cluster) for role, child in children]
            return _Ends([e for p in parts for e in p.entries], [e for p in parts for e in p.exits])
        shape: Shape = "stack" if times > 1 else _SHAPES.get(step.kind, "box")
        leaf = self.node(parent, path, label, step.kind, shape=shape, note=note)
        return _Ends([leaf], [leaf])

    def _chain(self, step: Chain, path: str, cluster: Cluster) -> _Ends:
        parts = [(s, self.walk(s, f"{path}/{s.name}", cluster)) for s in step.steps]
        for (before, ends), (_, after) in pairwise(parts):
            self.connect(ends.exits, after.entries, "pass" if isinstance(before, Gate) else "")
        exits = list(parts[-1][1].exits)
        for index, (gate, ends) in enumerate(list(parts)):
            if not isinstance(gate, Gate):
                continue
            for target in divert_targets(gate.check):
                # The diverted-to step runs as `chain/<its name>`: a chain step, or a new node.
                found = next(
                    (
                        (i, e)
                        for i, (s, e) in enumerate(parts)
                        if s is target or s.name == target.name
                    ),
                    None,
                )
                if found is None:
                    found = (len(parts), self.walk(target, f"{path}/{target.name}", cluster))
                    parts.append((target, found[1]))
                at, target_ends = found
                self.connect(ends.exits, target_ends.entries, "divert", "dashed", back=at < index)
                exits += [e for e in target_ends.exits if e not in exits]
        return _Ends(parts[0][1].entries, exits)

    def _route(self, step: Route, path: str, cluster: Cluster) -> _Ends:
        classify = self.walk(step.classifier, f"{path}/classify", cluster)
        exits: list[str] = []
        for key, branch in step.branches.items():
            ends = self.walk(branch, f"{path}/{key}", cluster)
            label = f"{key} (default)" if key == step.default else key
            self.connect(classify.exits, ends.entries, label)
            exits += ends.exits
        return _Ends(classify.entries, exits)

    def _parallel(self, step: Parallel, path: str, cluster: Cluster) -> _Ends:
        sections = [self.walk(s, f"{path}/{key}", cluster) for key, s in step.sections.items()]
        if isinstance(step.merge, Step):
            merge = self.walk(step.merge, f"{path}/merge", cluster)
        else:
            how = _merge_name(step.merge)
            junction = self.node(cluster, f"{path}/merge", f"merge · {how}", "merge")
            merge = _Ends([junction], [junction])
        for section in sections:
            self.connect(section.exits, merge.entries)
        return _Ends([e for s in sections for e in s.entries], merge.exits)

    def _vote(self, step: Vote, path: str, cluster: Cluster) -> _Ends:
        n = len(step.variants)
        runs = self.walk(
            step.step, f"{path}/{step.step.name}[1..{n}]", cluster, name=step.step.name, times=n
        )
        how = _callable_name(step.aggregate)
        aggregate = self.node(cluster, f"{path}/aggregate", f"aggregate · {how}", "aggregate")
        self.connect(runs.exits, [aggregate], f"{n} votes")
        return _Ends(runs.entries, [aggregate])

    def _orchestrate(self, step: Orchestrate, path: str, cluster: Cluster) -> _Ends:
        plan = self.walk(step.planner, f"{path}/plan", cluster)
        workers = [self.walk(w, f"{path}/{key}", cluster) for key, w in step.workers.items()]
        synthesise = self.walk(step.synthesiser, f"{path}/synthesise", cluster)
        for worker in workers:
            self.connect(plan.exits, worker.entries, f"×N (≤ {step.max_subtasks})")
            self.connect(worker.exits, synthesise.entries)
        return _Ends(plan.entries, synthesise.exits)

    def _refine(self, step: Refine, path: str, cluster: Cluster) -> _Ends:
        generate = self.walk(step.generator, f"{path}/generate", cluster)
        evaluate = self.walk(step.evaluator, f"{path}/evaluate", cluster)
        self.connect(generate.exits, evaluate.entries)
        rounds = f"feedback, ≤ {step.max_rounds} round{'s' if step.max_rounds > 1 else ''}"
        self.connect(evaluate.exits, generate.entries, rounds, "dashed", back=True)
        return _Ends(generate.entries, evaluate.exits)

    def _agent(self, step: AgentStep, path: str, parent: Cluster, label: str, note: str) -> _Ends:
        turns = f"≤ {step.max_turns} turns"
        note = f"{note}, {turns}" if note else turns
        if not step.tools and not step.handoffs:
            leaf = self.node(parent, path, label, step.kind, note=note)
            return _Ends([leaf], [leaf])
        cluster = self.cluster(parent, path, label, step.kind)
        agent = self.node(cluster, path, label, step.kind, note=note)
        for t in step.tools:
            kind = "action" if t.side_effect else "tool"
            tool = self.node(cluster, f"{path}/{t.name}", f"{t.name} · {kind}", kind)
            self.connect([agent], [tool], style="dotted")
        exits = [agent]
        for handoff in step.handoffs:  # a handoff runs as `agent/<its name>`
            ends = self.walk(handoff, f"{path}/{handoff.name}", cluster)
            self.connect([agent], ends.entries, "handoff")
            exits += ends.exits
        return _Ends([agent], exits)


def _unique(path: str, taken: dict[str, Any] | set[str]) -> str:
    if path not in taken:
        return path
    n = 2
    while f"{path}~{n}" in taken:
        n += 1
    return f"{path}~{n}"


def _callable_name(fn: Any) -> str:
    """`majority` for the closure `majority.<locals>.aggregate`; a function's own name."""
    qualname = str(getattr(fn, "__qualname__", type(fn).__name__))
    name = qualname.split(".<locals>", 1)[0].rsplit(".", 1)[-1]
    return "function" if name == "<lambda>" else name


def _merge_name(merge: Any) -> str:
    if merge is None:
        return "dict"
    if isinstance(merge, type) and issubclass(merge, BaseModel):
        return merge.__name__
    return _callable_name(merge)
