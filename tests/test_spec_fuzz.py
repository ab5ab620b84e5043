"""Fuzzing the workflow-file loader: whatever the file holds, the loader either builds a
workflow or raises an LLMFlowError whose message names file:line:column — never a traceback
of another kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmflow.errors import LLMFlowError, SpecError
from llmflow.workflow_files import TEMPLATES, WORKFLOW_FILE, load_agent_file, load_workflow_text
from llmflow.workflow_files.schema import KINDS

VALID = """\
name: support
description: Classify tickets and answer.
input: {type: jsonl, key: id}
limits: {concurrency: 2, max_turns: 3}
steps:
  - id: parse
    kind: code
    function: tools:shout
    input: input.body
  - id: classify
    kind: llm
    instructions: "Classify."
    prompt: "Ticket: {{ steps.parse }}"
    output:
      type: object
      properties:
        category: {enum: [billing, spam]}
      required: [category]
  - id: not_spam
    kind: gate
    when: "steps.classify.category != 'spam'"
  - id: handle
    kind: route
    instructions: "Pick."
    branches:
      billing: {kind: agent, instructions: "Help {{ input.body }}", tools: [tools:lookup, now]}
      other:
        kind: chain
        steps:
          - {id: a, kind: llm, instructions: "A."}
          - {id: b, kind: code, function: tools:shout, input: steps.a}
    default: other
  - id: checks
    kind: parallel
    sections:
      - {id: tone, kind: vote, step: {kind: llm, instructions: "Tone?"}, n: 3}
      - id: better
        kind: refine
        generator: {kind: llm, instructions: "Write.", prompt: "{{ feedback }}"}
        evaluator: {kind: llm, instructions: "Judge {{ output }}."}
  - id: spam
    kind: cascade
    tiers:
      - step: {id: kw, kind: rules, rules: [{pattern: "win", label: spam}]}
        threshold: 1.0
      - step: {id: judge, kind: llm, instructions: "Spam?", output: {enum: [spam, ham]}}
result: {category: steps.classify.category, answer: steps.handle}
output: {columns: {category: output.category}}
"""

TOOLS = '''
def shout(text: str) -> str:
    return str(text).upper()


def lookup(order_id: str) -> str:
    """Look an order up."""
    return order_id
'''

POSITION = re.compile(r"workflow\.yaml:\d+:\d+: ")
WORDS = [
    *KINDS, "id", "kind", "steps", "name", "input", "output", "when", "prompt", "tools",
    "branches", "sections", "tiers", "step", "generator", "evaluator", "{{", "}}", "steps.",
    "- ", ": ", "[", "]", "{", "}", "&a", "*a", "!!str", "<<: ", "\n  ", "'", '"', "#",
]  # fmt: skip


@pytest.fixture(scope="module")
def workflow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "tools.py").write_text(TOOLS)
    return root / "workflow.yaml"


def check(text: str, file: Path) -> None:
    """Loads, or fails with a SpecError whose every line starts file:line:column."""
    error: SpecError | None = None
    try:
        load_workflow_text(text, file)
    except SpecError as e:
        error = e
    except LLMFlowError as e:  # pragma: no cover - every loader error is a SpecError so far
        pytest.fail(f"an error without a position: {e!r}")
    if error is not None:
        assert error.problems
        for line in str(error).splitlines():
            assert POSITION.search(line), line


def test_the_valid_file_loads(workflow_file: Path) -> None:
    workflow = load_workflow_text(VALID, workflow_file)
    assert [name for name, _ in workflow.step.children()] == [
        "parse", "classify", "not_spam", "handle", "checks", "spam",
    ]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text(workflow_file: Path, text: str) -> None:
    check(text, workflow_file)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(WORDS),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_values)
def test_any_yaml_structure(workflow_file: Path, value: object) -> None:
    check(yaml.safe_dump(value, allow_unicode=True), workflow_file)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(KINDS)), yaml_values, max_size=1),
    st.dictionaries(st.sampled_from(WORDS), yaml_values, max_size=4),
)
def test_any_step_in_a_valid_workflow(workflow_file: Path, kind: dict, fields: dict) -> None:
    step = {"id": "x", "kind": next(iter(kind), "llm"), **fields}
    text = yaml.safe_dump({"name": "w", "steps": [step]})
    check(text, workflow_file)


mutation = st.tuples(
    st.sampled_from(["delete", "insert", "replace", "duplicate-line", "swap-lines"]),
    st.integers(min_value=0, max_value=len(VALID)),
    st.integers(min_value=0, max_value=40),
    st.sampled_from(WORDS) | st.text(max_size=6),
)


def mutate(text: str, how: str, at: int, size: int, word: str) -> str:
    lines = text.splitlines(keepends=True)
    line = at % len(lines)
    if how == "delete":
        return text[:at] + text[at + size :]
    if how == "insert":
        return text[:at] + word + text[at:]
    if how == "replace":
        return text[:at] + word + text[at + len(word) :]
    if how == "duplicate-line":
        return "".join(lines[: line + 1] + lines[line:])
    other = (line + size) % len(lines)
    lines[line], lines[other] = lines[other], lines[line]
    return "".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutations_of_a_valid_file(workflow_file: Path, mutations: list) -> None:
    text = VALID
    for how, at, size, word in mutations:
        text = mutate(text, how, at % (len(text) + 1), size, word)
    check(text, workflow_file)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutations_of_an_agent_file(workflow_file: Path, mutations: list) -> None:
    text = "---\nname: helper\ntools: [tools:lookup, now]\nmax_turns: 3\n---\nHelp {{ input }}.\n"
    for how, at, size, word in mutations:
        text = mutate(text, how, at % (len(text) + 1), size, word)
    agent = workflow_file.parent / "agent.md"
    agent.write_text(text)
    message = ""
    try:
        load_agent_file(agent)
    except SpecError as e:
        message = str(e)
    for line in message.splitlines():
        assert re.search(r"agent\.md:\d+:\d+: ", line), line


@pytest.mark.parametrize(
    "template", sorted(p.name for p in TEMPLATES.iterdir() if (p / WORKFLOW_FILE).is_file())
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutations_of_the_shipped_templates(template: str, mutations: list) -> None:
    file = TEMPLATES / template / WORKFLOW_FILE
    text = file.read_text()
    for how, at, size, word in mutations:
        text = mutate(text, how, at % (len(text) + 1), size, word)
    error: SpecError | None = None
    try:
        load_workflow_text(text, file)
    except SpecError as e:
        error = e
    for line in str(error or "").splitlines():
        assert re.search(r"\.(yaml|md):\d+:\d+: ", line), line
