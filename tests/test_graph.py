"""`llmflow graph`: a workflow's structure as Mermaid, Graphviz DOT, SVG or PNG."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from pydantic import BaseModel

from llmflow import (
    ConfigError,
    Divert,
    RunContext,
    Step,
    Workflow,
    agent,
    assign,
    best_of,
    chain,
    code,
    gate,
    llm,
    orchestrate,
    parallel,
    refine,
    route,
    tool,
    vote,
)
from llmflow.apps.email_triage import build
from llmflow.cli import main
from llmflow.graph import Graph, build_graph, divert_targets, to_dot, to_image, to_mermaid


def _step(name: str) -> Any:
    return llm(name, instructions=f"Do {name}.")


def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return order_id


def issue_refund(order_id: str) -> str:
    """Refund an order."""
    return order_id


def nested() -> Workflow:
    """Every pattern, nested: a route whose branch is a chain (with a gate that diverts), a
    parallel with an agent section, an orchestrate with a refine worker, and a vote."""
    escalate = code(lambda v: v, name="escalate")
    billing = chain(
        "billing",
        _step("extract"),
        gate("small", lambda v: v.get("amount", 0) < 100 or Divert(escalate, "large")),
        code(lambda v: v, name="pay"),
    )
    helper = agent("refunds", instructions="Refund orders.", tools=[tool(issue_refund)])
    support = agent(
        "support",
        instructions="Help.",
        tools=[tool(lookup_order), tool(issue_refund, side_effect=True)],
        handoffs=[helper],
        max_turns=6,
    )
    research = parallel("research", [support, _step("history")], merge=_step("combine"))
    write = orchestrate(
        "write",
        planner=_step("outline"),
        workers=refine(
            "section", generator=_step("draft"), evaluator=_step("critique"), max_rounds=3
        ),
        synthesiser=_step("assemble"),
        max_subtasks=5,
    )
    step = chain(
        "nested",
        route(
            "triage",
            {"billing": billing, "support": research, "other": write},
            classifier=_step("decide"),
            default="other",
        ),
        assign("check", vote("check", _step("judge"), n=3)),
    )
    return Workflow(name="nested", step=step)


def svg_texts(svg: bytes) -> list[str]:
    """The text an SVG shows, entities decoded."""
    root = ElementTree.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def edges(graph: Graph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.label) for e in graph.edges}


def mermaid_ids(text: str) -> dict[str, str]:
    """Mermaid node id → its label text."""
    found = re.findall(r'^\s*(\w+)[\[({/]+"(.*?)"[\])}\\]+$', text, flags=re.M)
    return {node_id: label for node_id, label in found}


def mermaid_edges(text: str) -> set[tuple[str, str, str]]:
    """(source label, target label, edge label) for every Mermaid edge."""
    labels = mermaid_ids(text)
    found = re.findall(r'^\s*(\w+) -[-.]+>?(?:\|"(.*?)"\|)? (\w+)$', text, flags=re.M)
    return {(labels[a].split("<br/>")[0], labels[b].split("<br/>")[0], e) for a, e, b in found}


# -- the graph ----------------------------------------------------------------------------------


def test_email_triage_as_mermaid_shows_every_step_in_order() -> None:
    text = to_mermaid(build())
    assert text.startswith("%% email-triage\nflowchart TD\n")
    assert 'subgraph cluster_email_triage ["email-triage · chain"]' in text
    labels = [label.split("<br/>")[0] for label in mermaid_ids(text).values()]
    assert labels == [
        "parse · code",
        "by-headers · gate",
        "text · code",
        "rules · rules",
        "ml · ml",
        "llm · llm",
        "ml · ml",
        "llm · llm",
        "merge · _classification",
        "summary · code",
        "not-spam · gate",
        "facts · code",
        "ground-ids · code",
        "needs-reply · gate",
        "reply · code",
        "act · action",
        "send · code",
    ]
    assert 'email_triage__not_spam{"not-spam · gate"}' in text  # a gate is a diamond
    flow = mermaid_edges(text)
    assert ("parse · code", "by-headers · gate", "") in flow
    assert ("by-headers · gate", "text · code", "pass") in flow
    assert ("by-headers · gate", "act · action", "divert") in flow  # filed by code
    assert ("act · action", "send · code", "") in flow
    assert ("not-spam · gate", "facts · code", "pass") in flow
    assert ("not-spam · gate", "act · action", "divert") in flow  # spam goes straight to act
    assert ("needs-reply · gate", "act · action", "divert") in flow
    assert "email_triage__not_spam -.->|" in text  # diverts are dashed


def test_email_triage_graph_nodes_are_step_paths() -> None:
    graph = build_graph(build())
    assert graph.title == "email-triage"
    tiers = "email-triage/classify/tiers"
    assert graph.nodes[f"{tiers}/category/ml"].label == "ml · ml"  # paths as recorded
    assert graph.nodes[f"{tiers}/category/llm"].label == "llm · llm"
    assert graph.nodes["email-triage/not-spam"].shape == "diamond"
    assert len(graph.nodes) == 17


def test_every_pattern_nested_builds_the_expected_graph() -> None:
    graph = build_graph(nested())
    nodes = graph.nodes
    flow = edges(graph)
    t = "nested/triage"

    # route: the classifier (named `classify`, as it is recorded) to each branch, by name
    assert nodes[f"{t}/classify"].label == "classify · llm"
    assert (f"{t}/classify", f"{t}/billing/extract", "billing") in flow
    assert (f"{t}/classify", f"{t}/other/plan", "other (default)") in flow
    # the chain branch: sequence, a gate diverting to a step outside the chain
    assert (f"{t}/billing/extract", f"{t}/billing/small", "") in flow
    assert (f"{t}/billing/small", f"{t}/billing/pay", "pass") in flow
    assert (f"{t}/billing/small", f"{t}/billing/escalate", "divert") in flow
    # parallel: fan-out from the classifier to both sections, fan-in to the merge step
    assert (f"{t}/classify", f"{t}/support/support", "support") in flow
    assert (f"{t}/classify", f"{t}/support/history", "support") in flow
    assert (f"{t}/support/history", f"{t}/support/merge", "") in flow
    assert nodes[f"{t}/support/merge"].label == "merge · llm"
    # the agent section: tools as small nodes, the side-effecting one an action; a handoff
    a = f"{t}/support/support"
    assert nodes[a].label == "support · agent" and nodes[a].note == "≤ 6 turns"
    assert nodes[f"{a}/lookup_order"].label == "lookup_order · tool"
    assert nodes[f"{a}/issue_refund"].label == "issue_refund · action"
    assert (a, f"{a}/lookup_order", "") in flow
    assert (a, f"{a}/refunds", "handoff") in flow
    assert nodes[f"{a}/refunds/issue_refund"].label == "issue_refund · tool"
    assert (a, f"{t}/support/merge", "") in flow  # the agent answers, or its handoff does
    assert (f"{a}/refunds", f"{t}/support/merge", "") in flow
    # orchestrate: plan → worker ×N → synthesise; the worker is a refine loop
    o = f"{t}/other"
    assert (f"{o}/plan", f"{o}/worker/generate", "×N (≤ 5)") in flow
    assert (f"{o}/worker/generate", f"{o}/worker/evaluate", "") in flow
    assert (f"{o}/worker/evaluate", f"{o}/worker/generate", "feedback, ≤ 3 rounds") in flow
    assert (f"{o}/worker/evaluate", f"{o}/synthesise", "") in flow
    # every branch's end leads to the vote, drawn as one node ×3, then aggregated
    v = "nested/check"
    assert nodes[f"{v}/judge[1..3]"].label == "judge · llm ×3"
    assert nodes[f"{v}/judge[1..3]"].shape == "stack"
    for end in (
        f"{t}/billing/pay",
        f"{t}/billing/escalate",
        f"{t}/support/merge",
        f"{o}/synthesise",
    ):
        assert (end, f"{v}/judge[1..3]", "") in flow
    assert (f"{v}/judge[1..3]", f"{v}/aggregate", "3 votes") in flow
    assert nodes[f"{v}/aggregate"].label == "aggregate · majority"

    clusters = {c.id: c.label for c in graph.root.clusters()}
    assert clusters[t] == "triage · route"
    assert clusters[f"{t}/billing"] == "billing · chain"
    assert clusters[f"{t}/support"] == "support · parallel"
    assert clusters[a] == "support · agent"
    assert clusters[o] == "other · orchestrate"
    assert clusters[f"{o}/worker"] == "worker · refine"
    assert clusters[v] == "check · vote → check"
    # every edge joins drawn nodes
    assert all(e.source in nodes and e.target in nodes for e in graph.edges)


def test_every_pattern_nested_renders_as_mermaid() -> None:
    text = to_mermaid(nested())
    flow = mermaid_edges(text)
    assert ("classify · llm", "extract · llm", "billing") in flow
    assert ("plan · llm", "generate · llm", "×N (≤ 5)") in flow
    assert ("evaluate · llm", "generate · llm", "feedback, ≤ 3 rounds") in flow
    assert ("judge · llm ×3", "aggregate · majority", "3 votes") in flow
    assert ("support · agent", "lookup_order · tool", "") in flow
    assert 'nested__triage__classify -->|"billing"| nested__triage__billing__extract' in text
    assert 'nested__check__judge_1_3[["judge · llm ×3"]]' in text  # a stack for ×n
    assert 'nested__triage__support__support{{"support · agent' in text  # a hexagon
    assert "nested__triage__support__support -.- nested__triage__support__support__" in text
    # subgraphs nest: the refine loop's inside the orchestrate, inside the route
    opened = [line.strip() for line in text.splitlines() if line.strip().startswith("subgraph")]
    assert [line.split(" [")[0].removeprefix("subgraph ") for line in opened] == [
        "cluster_nested",
        "cluster_nested__triage",
        "cluster_nested__triage__billing",
        "cluster_nested__triage__support",
        "cluster_nested__triage__support__support",
        "cluster_nested__triage__support__support__refunds",
        "cluster_nested__triage__other",
        "cluster_nested__triage__other__worker",
        "cluster_nested__check",
    ]
    assert text.count("subgraph ") == sum(line.strip() == "end" for line in text.splitlines())


def test_every_pattern_nested_renders_as_dot() -> None:
    text = to_dot(nested())
    assert text.startswith('digraph "nested" {')
    assert 'subgraph "cluster_nested/triage/other/worker" {' in text
    assert (
        '"nested/triage/classify" -> "nested/triage/billing/extract" [label=" billing "];' in text
    )
    loop = '"nested/triage/other/worker/evaluate" -> "nested/triage/other/worker/generate"'
    assert re.search(
        re.escape(loop) + r" \[style=dashed.*feedback, ≤ 3 rounds.*constraint=false", text
    )
    assert '"nested/check/judge[1..3]" [label="judge · llm ×3", shape=box3d' in text
    assert "arrowhead=none" in text  # tools hang off their agent without an arrow


def test_dot_is_valid_and_draws_every_pattern_as_svg() -> None:
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz's dot is needed: apt-get install graphviz"
    for workflow in (build(), nested()):
        done = subprocess.run(
            [dot, "-Tsvg"], input=to_dot(workflow).encode(), capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        assert not done.stderr, done.stderr.decode()  # no warnings either
        texts = svg_texts(done.stdout)
        for node in build_graph(workflow).nodes.values():
            assert node.label in texts
    image = to_image(nested(), "png")
    assert image.startswith(b"\x89PNG")


# -- escaping ------------------------------------------------------------------------------------


def test_labels_with_syntax_characters_are_escaped() -> None:
    odd = 'say "hi" <b>&amp; #1 | `x`'
    workflow = Workflow(
        name='odd "one"', step=chain("c", code(lambda v: v, name=odd), _step("back\\slash"))
    )
    mermaid = to_mermaid(workflow)
    assert '"say #34;hi#34; #60;b#62;#38;amp; #35;1 #124; #96;x#96; · code"' in mermaid
    dot = to_dot(workflow)
    assert r'[label="say \"hi\" <b>&amp;amp; #1 | `x` · code"' in dot
    assert r'"c/back\\slash" [label="back\\slash · llm"' in dot
    assert dot.startswith(r'digraph "odd \"one\"" {')
    texts = svg_texts(to_image(workflow, "svg"))  # needs Graphviz, as CI has
    assert f"{odd} · code" in texts
    assert "back\\slash · llm" in texts


def test_a_gate_without_a_divert_has_no_divert_edge() -> None:
    target = code(lambda v: v, name="elsewhere")
    plain = gate("plain", lambda v: bool(v))
    assert divert_targets(plain.check) == []
    diverting = gate("d", lambda v: v or Divert(target))
    assert divert_targets(diverting.check) == [target]
    graph = build_graph(chain("c", plain, code(lambda v: v, name="next")))
    assert edges(graph) == {("c/plain", "c/next", "pass")}


class Pair(BaseModel):
    a: str
    b: str


class Both(Step[Any, Any]):
    """A composite step that the graph does not know: drawn as a cluster of its parts."""

    kind = "both"

    def __init__(self) -> None:
        super().__init__("both")

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [("first", _step("one")), ("second", code(lambda v: v, name="two"))]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        return input


def test_merges_aggregations_and_unknown_composites() -> None:
    a, b = code(lambda v: v, name="a"), code(lambda v: v, name="b")
    step = chain(
        "c",
        parallel("p", [a, b]),
        parallel("q", [a, b], merge=Pair),
        vote("v", Both(), n=2, aggregate=best_of(_step("score"))),
    )
    graph = build_graph(step)
    assert graph.nodes["c/p/merge"].label == "merge · dict"
    assert graph.nodes["c/q/merge"].label == "merge · Pair"
    assert {("c/p/merge", "c/q/a", ""), ("c/p/merge", "c/q/b", "")} <= edges(graph)
    assert graph.nodes["c/v/aggregate"].label == "aggregate · best_of"
    clusters = {c.id: c.label for c in graph.root.clusters()}
    assert clusters["c/v/both[1..2]"] == "both · both ×2"
    assert graph.nodes["c/v/both[1..2]/first"].label == "first · llm"
    assert ("c/q/merge", "c/v/both[1..2]/second", "") in edges(graph)
    assert ("c/v/both[1..2]/first", "c/v/aggregate", "2 votes") in edges(graph)


def test_a_step_inside_itself_is_drawn_once() -> None:
    first = agent("first", instructions="x")
    second = agent("second", instructions="y", handoffs=[first])
    first.handoffs.append(second)
    graph = build_graph(first)
    assert graph.nodes["first/second/first"].note == "(recursive)"
    assert ("first/second", "first/second/first", "handoff") in edges(graph)


# -- the command ---------------------------------------------------------------------------------


def test_cli_prints_mermaid_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "email-triage"]) == 0
    text = capsys.readouterr().out
    assert text == to_mermaid(build())


def test_cli_prints_dot_and_takes_module_attr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "tests.test_graph:nested", "--format", "dot"]) == 0
    assert capsys.readouterr().out == to_dot(nested())


def test_cli_writes_an_svg_inferred_from_the_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shutil.which("dot") is not None, "Graphviz's dot is needed: apt-get install graphviz"
    target = tmp_path / "drawings" / "triage.svg"
    assert main(["graph", "email-triage", "--out", str(target)]) == 0
    svg = target.read_bytes()
    assert svg.lstrip().startswith((b"<?xml", b"<svg"))
    assert b"summary \xc2\xb7 code" in svg  # "summary · code"
    assert str(target) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "fmt", "start"),
    [("g.mmd", None, b"%% email-triage"), ("g.gv", None, b"digraph"), ("g.txt", "dot", b"digraph")],
)
def test_cli_text_formats_to_a_file(
    tmp_path: Path, name: str, fmt: str | None, start: bytes
) -> None:
    target = tmp_path / name
    assert main(["graph", "email-triage", "-o", str(target), *(["-f", fmt] if fmt else [])]) == 0
    assert target.read_bytes().startswith(start)


def test_cli_without_dot_exits_2_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "")
    target = tmp_path / "triage.png"
    assert main(["graph", "email-triage", "--out", str(target)]) == 2
    message = " ".join(capsys.readouterr().err.split())  # as one line, however it wrapped
    assert "install Graphviz: apt-get install graphviz" in message
    assert "--format mermaid" in message
    assert not target.exists()
    with pytest.raises(ConfigError, match="install Graphviz"):
        to_image(build(), "svg")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["graph", "no-such-workflow"], "unknown workflow 'no-such-workflow'"),
        (["graph", "email-triage", "--out", "graph.txt"], "cannot tell the format of graph.txt"),
        (["graph", "email-triage", "--format", "jpeg"], "Invalid value for '--format'"),
    ],
)
def test_cli_bad_input_exits_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert expected in " ".join(capsys.readouterr().err.split())


def test_cli_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "[default: stdout]" in text and "mermaid|dot|svg|png" in text
