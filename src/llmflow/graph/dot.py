"""Rendering a workflow's graph as Graphviz DOT, and as SVG or PNG through Graphviz's `dot`."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from ..errors import ConfigError, LLMFlowError
from ..runtime.runner import Workflow
from ..steps.base import Step
from .build import build_graph
from .mermaid import to_mermaid
from .model import COLOURS, FORMATS, OTHER, Cluster, EdgeStyle, Format, ImageFormat, Shape

NO_DOT = (
    "drawing {fmt} needs Graphviz's `dot` program, which is not on PATH: "
    "install Graphviz: apt-get install graphviz, or use --format mermaid"
)
DOT_TIMEOUT_S = 60.0


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
            fill, stroke = COLOURS.get(node.kind, OTHER)
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
