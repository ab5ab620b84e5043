"""Rendering a workflow's graph as Mermaid."""

from __future__ import annotations

import re
from typing import Any

from ..runtime.runner import Workflow
from ..steps.base import Step
from .build import build_graph
from .model import COLOURS, OTHER, Cluster, EdgeStyle, Shape

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
        fill, stroke = COLOURS.get(kind, OTHER)
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
