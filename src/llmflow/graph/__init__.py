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

from .build import build_graph
from .code import divert_targets
from .dot import NO_DOT, render, to_dot, to_image
from .mermaid import to_mermaid
from .model import FORMATS, Cluster, Edge, Format, Graph, ImageFormat, Node

__all__ = [
    "FORMATS",
    "NO_DOT",
    "Cluster",
    "Edge",
    "Format",
    "Graph",
    "ImageFormat",
    "Node",
    "build_graph",
    "divert_targets",
    "render",
    "to_dot",
    "to_image",
    "to_mermaid",
]
