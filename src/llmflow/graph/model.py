"""The graph of a workflow: nodes, edges and clusters (composite steps), and the names of
shapes, edge styles and output formats."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Format = Literal["mermaid", "dot", "svg", "png"]
ImageFormat = Literal["svg", "png"]
FORMATS: tuple[Format, ...] = ("mermaid", "dot", "svg", "png")

Shape = Literal["box", "rounded", "diamond", "hexagon", "pill", "stack", "junction"]
EdgeStyle = Literal["solid", "dashed", "dotted"]
"""solid: control flow; dashed: a divert or a loop back; dotted (no arrow): an agent's tool."""


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


# -- colours, shared by both renderers ---------------------------------------------------------

COLOURS: dict[str, tuple[str, str]] = {  # kind: (fill, stroke)
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
OTHER = ("#ffffff", "#475569")
