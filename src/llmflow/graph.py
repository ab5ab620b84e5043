"""Drawing a workflow: its step tree as a graph, rendered as Mermaid, Graphviz DOT, or (through
Graphviz's `dot` program) SVG and PNG.

The graph is built by walking each step's `children()`. Nodes are step paths
(`email-triage/classify`), labelled with the step's name and kind (`classify · llm`);
composite steps are clusters, so nesting shows; edges follow each pattern's control flow:

- chain: each step to the next; gates are diamonds, with a dashed `divert` edge to the step
  a gate's check can divert to, when the check's code names it (a closure or global step);
- route: the classifier to each branch, labelled with the branch's name;
- parallel: fan-out to the sections, fan-in to the merge;
- vote: the step as one stacked node (`answer · llm ×3`), then its aggregation;
- orchestrate: plan → each worker (`×N`, at most `max_subtasks`) → synthesise;
- refine: generate → evaluate, and a dashed `feedback, ≤ n rounds` edge back;
- agent: its tools as small nodes (those with side effects as actions), handoffs as edges.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from .errors import ConfigError, LLMFlowError
from .patterns.chain import Assign, Chain, Divert, Gate
from .patterns.orchestrate import Orchestrate
from .patterns.parallel import Parallel, Vote
from .patterns.refine import Refine
from .patterns.route import Route
from .runtime.runner import Workflow
from .steps.agent import AgentStep
from .steps.base import Step

Format = Literal["mermaid", "dot", "svg", "png"]
ImageFormat = Literal["svg", "png"]
FORMATS: tuple[Format, ...] = ("mermaid", "dot", "svg", "png")

Shape = Literal["box", "rounded", "diamond", "hexagon", "pill", "stack", "junction"]
EdgeStyle = Literal["solid", "dashed", "dotted"]
"""solid: control flow; dashed: a divert or a loop back; dotted (no arrow): an agent's tool."""

NO_DOT = (
    "drawing {fmt} needs Graphviz's `dot` program, which is not on PATH: "
    "install Graphviz: apt-get install graphviz, or use --format mermaid"
)
DOT_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Node:
    """A step (or a tool, a merge, an aggregation) in the drawing."""

    id: str
    """The step's path, e.g. `email-triage/classify` (unique in the graph)."""
    label: str
    """Name and kind, e.g. `classify · llm`."""
    kind: str
    shape: Shape = "box"
    note: str = ""
    """A second, smaller line: the field an assign sets, an agent's turn limit."""


@dataclass(slots=True)
class Edge:
    source: str
    target: str
    label: str = ""
    style: EdgeStyle = "solid"
    back: bool = False
    """Goes back up the flow (a loop): layouts should not rank by it."""


@dataclass(slots=True)
class Cluster:
    """A composite step: its nodes and sub-clusters, in order."""

    id: str
    """The step's path."""
    label: str
    kind: str
    members: list[str | Cluster] = field(default_factory=list)
    """Node ids and sub-clusters, in the order they were added."""

    def clusters(self) -> Iterator[Cluster]:
        """This cluster and every cluster inside it, depth first."""
        yield self
        for m in self.members:
            if isinstance(m, Cluster):
                yield from m.clusters()


@dataclass(slots=True)
class Graph:
    """A workflow's structure: nodes, edges, and the clusters that nest them."""

    title: str
    root: Cluster
    """Holds everything; not drawn itself (the root step is its first member)."""
    nodes: dict[str, Node]
    edges: list[Edge]


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


def divert_targets(check: Callable[..., Any]) -> list[Step[Any, Any]]:
    """The steps a gate's check can divert to, as far as its code shows: when it uses
    `Divert`, the steps it refers to through its closure or its globals."""
    code = getattr(check, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    names = set(_code_names(code))
    scope: dict[str, Any] = getattr(check, "__globals__", {})
    if "Divert" not in names and not any(scope.get(n) is Divert for n in names):
        return []
    found: list[Any] = []
    for cell in getattr(check, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    found += [scope.get(n) for n in sorted(names)]
    unique: dict[int, Step[Any, Any]] = {id(v): v for v in found if isinstance(v, Step)}
    return list(unique.values())


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


_SHAPES: dict[str, Shape] = {
    "llm": "rounded",
    "gate": "diamond",
    "agent": "hexagon",
    "tool": "pill",
    "action": "pill",
    "merge": "junction",
    "aggregate": "junction",
}


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


# -- colours, shared by both renderers ---------------------------------------------------------

_COLOURS: dict[str, tuple[str, str]] = {  # kind: (fill, stroke)
    "llm": ("#dbeafe", "#3b6fb6"),
    "code": ("#f1f5f9", "#64748b"),
    "gate": ("#fef3c7", "#b7791f"),
    "agent": ("#ede9fe", "#6d28d9"),
    "tool": ("#dcfce7", "#15803d"),
    "action": ("#fee2e2", "#b91c1c"),
    "ml": ("#cffafe", "#0e7490"),
    "merge": ("#ffffff", "#64748b"),
    "aggregate": ("#ffffff", "#64748b"),
}
_OTHER = ("#ffffff", "#475569")


# -- Mermaid -----------------------------------------------------------------------------------

_MERMAID_SHAPES: dict[Shape, tuple[str, str]] = {
    "box": ("[", "]"),
    "rounded": ("(", ")"),
    "diamond": ("{", "}"),
    "hexagon": ("{{", "}}"),
    "pill": ("([", "])"),
    "stack": ("[[", "]]"),
    "junction": ("[/", "\\]"),
}
_MERMAID_ARROWS: dict[EdgeStyle, str] = {"solid": "-->", "dashed": "-.->", "dotted": "-.-"}
# Characters with a meaning in Mermaid's syntax or its HTML labels, as its entity codes.
_MERMAID_ESCAPES = {c: f"#{ord(c)};" for c in '#"<>&`|'}
_MERMAID_KEYWORDS = {
    "end", "graph", "flowchart", "subgraph", "direction", "style", "class", "classdef",
    "click", "call", "href", "linkstyle", "default", "interpolate", "acctitle", "accdescr",
}  # fmt: skip


def mermaid_text(text: str) -> str:
    """`text` as the inside of a quoted Mermaid label: its syntax characters as entities."""
    text = " ".join(text.split())  # a label is one line
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def to_mermaid(target: Step[Any, Any] | Workflow) -> str:
    """The workflow as a Mermaid flowchart (top-down), composite steps as subgraphs."""
    graph = build_graph(target)
    ids = _MermaidIds()
    lines = [f"%% {mermaid_text(graph.title)}", "flowchart TD"]

    def emit(cluster: Cluster, depth: int) -> None:
        indent = "    " * depth
        for member in cluster.members:
            if isinstance(member, Cluster):
                cid = ids.get(member.id, cluster=True)
                lines.append(f'{indent}subgraph {cid} ["{mermaid_text(member.label)}"]')
                emit(member, depth + 1)
                lines.append(f"{indent}end")
                continue
            node = graph.nodes[member]
            opening, closing = _MERMAID_SHAPES[node.shape]
            text = mermaid_text(node.label)
            if node.note:
                text += f"<br/><small>{mermaid_text(node.note)}</small>"
            lines.append(f'{indent}{ids.get(node.id)}{opening}"{text}"{closing}')

    emit(graph.root, 1)
    for edge in graph.edges:
        arrow = _MERMAID_ARROWS[edge.style]
        label = f'|"{mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids.get(edge.source)} {arrow}{label} {ids.get(edge.target)}")
    by_kind: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        by_kind.setdefault(node.kind, []).append(ids.get(node.id))
    for kind, members in by_kind.items():
        fill, stroke = _COLOURS.get(kind, _OTHER)
        css = _css_name(kind)
        lines.append(f"    classDef {css} fill:{fill},stroke:{stroke},color:#0f172a")
        lines.append(f"    class {','.join(members)} {css}")
    return "\n".join(lines) + "\n"


def _css_name(kind: str) -> str:
    return "kind_" + (re.sub(r"[^0-9A-Za-z_]", "_", kind) or "step")


class _MermaidIds:
    """Mermaid ids for paths: readable (`email_triage__classify`), unique, never a keyword."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, bool], str] = {}
        self._taken: set[str] = set()

    def get(self, path: str, *, cluster: bool = False) -> str:
        key = (path, cluster)
        if key not in self._ids:
            base = re.sub(r"[^0-9A-Za-z_]+", "_", path.replace("/", "__")).strip("_") or "step"
            if cluster:
                base = f"cluster_{base}"
            elif base.lower() in _MERMAID_KEYWORDS or base[0].isdigit():
                base = f"step_{base}"
            candidate, n = base, 2
            while candidate in self._taken:
                candidate, n = f"{base}_{n}", n + 1
            self._taken.add(candidate)
            self._ids[key] = candidate
        return self._ids[key]


# -- Graphviz DOT ------------------------------------------------------------------------------

_DOT_SHAPES: dict[Shape, str] = {
    "box": 'shape=box, style="filled"',
    "rounded": 'shape=box, style="rounded,filled"',
    "diamond": 'shape=diamond, style="filled"',
    "hexagon": 'shape=hexagon, style="filled"',
    "pill": 'shape=box, style="rounded,filled", fontsize=9, height=0.3',
    "stack": 'shape=box3d, style="filled"',
    "junction": 'shape=invtrapezium, style="filled", fontsize=9',
}
_DOT_EDGES: dict[EdgeStyle, str] = {
    "solid": "",
    "dashed": 'style=dashed, color="#b45309", fontcolor="#b45309"',
    "dotted": 'style=dotted, arrowhead=none, color="#15803d"',
}


def dot_string(text: str) -> str:
    """`text` as a quoted DOT string (a backslash is Graphviz's escape character)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def dot_label(text: str) -> str:
    """`text` as a DOT label, shown as is (Graphviz reads `&...;` in labels as an entity)."""
    return dot_string(text.replace("&", "&amp;"))


def to_dot(target: Step[Any, Any] | Workflow) -> str:
    """The workflow as a Graphviz digraph (top-down), composite steps as clusters."""
    graph = build_graph(target)
    font = 'fontname="Helvetica"'
    lines = [
        f"digraph {dot_string(graph.title)} {{",
        f"    graph [{font}, rankdir=TB, nodesep=0.35, ranksep=0.45, newrank=true];",
        f'    node [{font}, fontsize=11, fontcolor="#0f172a", margin="0.15,0.06"];',
        f'    edge [{font}, fontsize=9, color="#475569", fontcolor="#334155"];',
    ]

    def emit(cluster: Cluster, depth: int) -> None:
        indent = "    " * depth
        for member in cluster.members:
            if isinstance(member, Cluster):
                fill = "#f8fafc" if depth % 2 else "#ffffff"
                lines.append(f"{indent}subgraph {dot_string('cluster_' + member.id)} {{")
                lines.append(
                    f"{indent}    label={dot_label(member.label)}; labeljust=l; fontsize=11; "
                    f'style="rounded,filled"; fillcolor="{fill}"; color="#94a3b8";'
                )
                emit(member, depth + 1)
                lines.append(f"{indent}}}")
                continue
            node = graph.nodes[member]
            fill, stroke = _COLOURS.get(node.kind, _OTHER)
            label = f"{node.label}\n{node.note}" if node.note else node.label
            lines.append(
                f"{indent}{dot_string(node.id)} [label={dot_label(label)}, "
                f'{_DOT_SHAPES[node.shape]}, fillcolor="{fill}", color="{stroke}"];'
            )

    emit(graph.root, 1)
    for edge in graph.edges:
        attrs = [a for a in (_DOT_EDGES[edge.style],) if a]
        if edge.label:
            attrs.append(f"label={dot_label(' ' + edge.label + ' ')}")
        if edge.back:
            attrs.append("constraint=false")
        attributes = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {dot_string(edge.source)} -> {dot_string(edge.target)}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- images ------------------------------------------------------------------------------------


def to_image(target: Step[Any, Any] | Workflow, fmt: ImageFormat = "svg") -> bytes:
    """The workflow drawn as an SVG or PNG image, by Graphviz's `dot` program.

    Raises ConfigError, naming the fix, when `dot` is not installed."""
    program = shutil.which("dot")
    if program is None:
        raise ConfigError(NO_DOT.format(fmt=fmt))
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=to_dot(target).encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as e:
        raise ConfigError(NO_DOT.format(fmt=fmt)) from e
    except subprocess.TimeoutExpired as e:
        raise LLMFlowError(f"Graphviz dot did not finish within {DOT_TIMEOUT_S:g}s") from e
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        raise LLMFlowError(f"Graphviz dot failed (exit {done.returncode}): {reason}")
    return done.stdout


def render(target: Step[Any, Any] | Workflow, fmt: Format = "mermaid") -> str | bytes:
    """The workflow drawn in `fmt`: Mermaid or DOT text, or SVG or PNG bytes."""
    if fmt == "mermaid":
        return to_mermaid(target)
    if fmt == "dot":
        return to_dot(target)
    if fmt in ("svg", "png"):
        return to_image(target, fmt)
    raise ValueError(f"unknown graph format {fmt!r}: use one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "Cluster",
    "Edge",
    "Format",
    "Graph",
    "Node",
    "build_graph",
    "divert_targets",
    "render",
    "to_dot",
    "to_image",
    "to_mermaid",
]
