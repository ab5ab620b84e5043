"""Workflow files: every kind of step loads and runs (on the scripted model), references
between step outputs, inputs and outputs, tools from a workflow's folder."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from llmflow import (
    InputError,
    ModelRequest,
    ModelResponse,
    RunContext,
    RunHooks,
    ToolCall,
    Usage,
)
from llmflow.analysis.tuning import find_cascade
from llmflow.runtime.runner import BatchResult, run_batch
from llmflow.steps.ml import MLStep
from llmflow.testing import ScriptedModel, scripted_gateway
from llmflow.workflow_files import load_agent_file, load_workflow_file
from llmflow.workflow_files.imports import resolve

TOOLS = '''
from pydantic import BaseModel


class Ticket(BaseModel):
    customer: str
    text: str


def parse_ticket(item: dict) -> Ticket:
    return Ticket(customer=item["from"], text=item["body"])


def shout(text: str) -> str:
    return text.upper()


def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"order {order_id}: shipped"


def count_votes(outputs: dict) -> int:
    return len(outputs)


def plan(item) -> list:
    return [{"description": "part one"}, {"description": "part two"}]


def join(synthesis) -> str:
    return " + ".join(r.output for r in synthesis.results)
'''


def folder(tmp_path: Path, workflow: str, files: dict[str, str] | None = None) -> Path:
    """A workflow folder: workflow.yaml, tools.py and any other files (path -> text)."""
    root = tmp_path / "wf"
    root.mkdir(exist_ok=True)
    (root / "workflow.yaml").write_text(textwrap.dedent(workflow))
    files = {"tools.py": TOOLS, **(files or {})}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def jsonl(tmp_path: Path, *rows: dict[str, Any]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Paths(RunHooks):
    def __init__(self) -> None:
        self.paths: list[str] = []

    def on_step_end(self, ctx: RunContext, **kw: Any) -> None:
        self.paths.append(ctx.path)


async def run_file(
    root: Path, inputs: Path, model: ScriptedModel, hooks: Paths | None = None
) -> BatchResult:
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    batch = await run_batch(
        workflow,
        workflow.load(inputs),
        gateway=scripted_gateway(model),
        out_dir=root / "out",
        hooks=[hooks] if hooks else [],
    )
    for result in batch.results:
        if result.error is not None:
            raise result.error
    return batch


def user(request: ModelRequest) -> str:
    return request.messages[-1].content or ""


CHAIN = """\
name: support
input: {type: jsonl, key: id}
steps:
  - id: parse
    kind: code
    function: tools:parse_ticket
  - id: classify
    kind: llm
    instructions: instructions/classify.md
    prompt: "From {{ steps.parse.customer }}: {{ steps.parse.text }}"
    output:
      type: object
      properties:
        category: {enum: [billing, spam]}
      required: [category]
  - id: not_spam
    kind: gate
    when: "steps.classify.category != 'spam'"
  - id: loud
    kind: code
    function: tools:shout
    input: steps.parse.text
result:
  category: steps.classify.category
  loud: steps.loud
output:
  columns: {category: output.category}
"""


async def test_a_chain_reads_earlier_outputs_by_id_and_a_gate_stops_it(tmp_path: Path) -> None:
    root = folder(tmp_path, CHAIN, {"instructions/classify.md": "Classify the ticket."})
    inputs = jsonl(
        tmp_path,
        {"id": "t1", "from": "ann", "body": "my invoice"},
        {"id": "t2", "from": "bob", "body": "win money"},
    )

    def answer(request: ModelRequest) -> str:
        return json.dumps({"category": "spam" if "win" in user(request) else "billing"})

    model = ScriptedModel(answer)
    hooks = Paths()
    batch = await run_file(root, inputs, model, hooks)
    outputs = {r.key: r.output for r in batch.results}
    assert outputs == {
        "t1": {"category": "billing", "loud": "MY INVOICE"},
        "t2": {"category": "spam", "loud": None},  # the gate stopped before `loud`
    }
    assert [user(r) for r in model.requests] == ["From ann: my invoice", "From bob: win money"]
    assert model.requests[0].messages[0].content == "Classify the ticket."
    assert "support/loud" in hooks.paths and "support/not_spam" in hooks.paths
    rows = [json.loads(line) for line in (root / "out" / "results.jsonl").read_text().splitlines()]
    assert rows[0] == {"key": "t1", "ok": True, "output": outputs["t1"]}
    workflow = load_workflow_file(root)
    assert workflow.columns is not None
    assert workflow.columns(outputs["t1"]) == {"category": "billing"}


async def test_a_gate_diverts_to_a_step_whose_output_the_result_sees(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: divert
        input: {type: jsonl}
        steps:
          - {id: parse, kind: code, function: tools:parse_ticket}
          - id: check
            kind: gate
            when: "'urgent' not in steps.parse.text"
            divert: {id: escalate, kind: code, function: tools:shout, input: steps.parse.customer}
          - {id: normal, kind: code, function: tools:shout, input: "'fine'"}
        result: {escalated: steps.escalate, normal: steps.normal}
        """,
    )
    inputs = jsonl(tmp_path, {"from": "ann", "body": "urgent!"}, {"from": "bob", "body": "hi"})
    batch = await run_file(root, inputs, ScriptedModel([]))
    assert [r.output for r in batch.results] == [
        {"escalated": "ANN", "normal": None},
        {"escalated": None, "normal": "FINE"},
    ]


async def test_route_parallel_and_nested_chain(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: routed
        input: {type: text}
        steps:
          - id: handle
            kind: route
            instructions: "Pick a desk."
            branches:
              billing:
                kind: chain
                steps:
                  - {id: first, kind: llm, instructions: "Draft.", prompt: "Draft for {{ input }}"}
                  - {id: second, kind: llm, instructions: "Polish.",
                     prompt: "Polish: {{ steps.first }}"}
                result: steps.second
              other: {kind: code, function: tools:shout}
            default: other
          - id: review
            kind: parallel
            sections:
              - {id: tone, kind: llm, instructions: "Tone?", prompt: "{{ steps.handle }}"}
              - {id: size, kind: code, function: tools:shout, input: "steps.handle"}
            merge:
              kind: llm
              instructions: "Merge."
              prompt: "{{ sections.tone }} / {{ sections.size }} / {{ input }}"
          - id: counted
            kind: parallel
            sections:
              - {id: a, kind: code, function: tools:shout}
              - {id: b, kind: code, function: tools:shout}
            merge: tools:count_votes
        result: {answer: steps.handle, review: steps.review, count: steps.counted}
        """,
    )
    (tmp_path / "in.txt").write_text("my invoice")

    def answer(request: ModelRequest) -> str:
        text = user(request)
        if request.schema_name == "classify":
            return json.dumps({"value": "billing"})
        if text.startswith("Draft for"):
            return "draft"
        if text.startswith("Polish:"):
            return f"polished {text[8:]}"
        if text.startswith("polished"):
            return "calm"
        return f"merged[{text}]"

    model = ScriptedModel(answer)
    hooks = Paths()
    batch = await run_file(root, tmp_path / "in.txt", model, hooks)
    assert batch.results[0].output == {
        "answer": "polished draft",
        "review": "merged[calm / POLISHED DRAFT / my invoice]",
        "count": 2,
    }
    assert model.requests[0].output_schema is not None  # constrained to the branch labels
    assert "my invoice" in user(model.requests[0])
    assert "routed/handle/billing/second" in hooks.paths
    assert "routed/review/merge" in hooks.paths


async def test_route_default_takes_labels_outside_the_branches(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: routed
        steps:
          - id: handle
            kind: route
            classifier: {kind: code, function: tools:shout}
            branches:
              BILLING: {kind: code, function: tools:shout, input: "'billing desk'"}
              other: {kind: code, function: tools:shout, input: "'other desk'"}
            default: other
        """,
    )
    (tmp_path / "a.txt").write_text("billing")
    (tmp_path / "b.txt").write_text("something")
    batch = await run_file(root, tmp_path / "a.txt", ScriptedModel([]))
    assert batch.results[0].output == "BILLING DESK"
    batch = await run_file(root, tmp_path / "b.txt", ScriptedModel([]))
    assert batch.results[0].output == "OTHER DESK"


async def test_vote_majority_by_key_and_at_least(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: voting
        steps:
          - id: label
            kind: vote
            step:
              kind: llm
              instructions: "Label it."
              output: {type: object, properties: {label: {type: string}}, required: [label]}
            n: 3
            key: value.label
          - id: unsafe
            kind: vote
            step: {kind: llm, instructions: "Safe?", output: {enum: [safe, unsafe]}}
            n: 3
            aggregate: {at_least: 2, value: unsafe}
        result: {label: steps.label.value.label, flagged: steps.unsafe.value}
        """,
    )
    (tmp_path / "in.txt").write_text("text")
    labels = iter(["a", "b", "b"])
    safety = iter(["unsafe", "safe", "unsafe"])

    def answer(request: ModelRequest) -> str:
        if request.schema_name == "step" and "label" in json.dumps(request.output_schema):
            return json.dumps({"label": next(labels)})
        return json.dumps({"value": next(safety)})

    model = ScriptedModel(answer)
    batch = await run_file(root, tmp_path / "in.txt", model)
    assert batch.results[0].output == {"label": "b", "flagged": True}
    assert {r.sampling.seed for r in model.requests[:3]} == {0, 1, 2}  # sampled variants


async def test_orchestrate_and_refine(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: writing
        steps:
          - id: research
            kind: orchestrate
            instructions: "Plan the work."
            workers:
              - {id: write, kind: llm, instructions: "Write.", prompt: "Write {{ task.title }}"}
            synthesiser: {kind: code, function: tools:join}
            max_subtasks: 3
          - id: polish
            kind: refine
            generator:
              kind: llm
              instructions: "Improve."
              prompt: "{{ steps.research }} round {{ round }} feedback {{ feedback }}"
            evaluator:
              kind: llm
              instructions: "Judge."
              prompt: "Judge: {{ output }}"
            max_rounds: 3
        result:
          research: steps.research
          best: steps.polish.output
          rounds: steps.polish.rounds | length
        """,
    )
    (tmp_path / "in.txt").write_text("topic")
    verdicts = iter(
        [
            {"passed": False, "score": 4, "feedback": "shorter"},
            {"passed": True, "score": 9, "feedback": "good"},
        ]
    )

    def answer(request: ModelRequest) -> str:
        text = user(request)
        if request.schema_name == "plan":
            schema = json.dumps(request.output_schema)
            assert '"maxItems": 3' in schema
            parts = [{"title": t, "instructions": f"do {t}"} for t in ("A", "B")]
            return json.dumps({"subtasks": parts})
        if text.startswith("Write "):
            return f"<{text[6:]}>"
        if text.startswith("Judge:"):
            return json.dumps(next(verdicts))
        return f"draft({text})"

    model = ScriptedModel(answer)
    batch = await run_file(root, tmp_path / "in.txt", model)
    output = batch.results[0].output
    assert output["research"] == "<A> + <B>"
    assert output["rounds"] == 2
    assert output["best"] == "draft(<A> + <B> round 2 feedback shorter)"


async def test_cascade_of_rules_ml_and_llm(tmp_path: Path) -> None:
    ml = MLStep.train(
        "m", ["cheap pills now", "win cash prize", "meeting at noon", "lunch tomorrow?"] * 5,
        ["spam", "spam", "ham", "ham"] * 5,
    )  # fmt: skip
    root = folder(
        tmp_path,
        """\
        name: spam
        steps:
          - id: spam
            kind: cascade
            tiers:
              - step:
                  id: keywords
                  kind: rules
                  rules: [{pattern: "lottery", label: spam}]
                threshold: 1.0
              - step: {id: model, kind: ml, model: models/spam.skops, text: "{{ input }}"}
                threshold: 0.99
              - step: {id: judge, kind: llm, instructions: "Spam?", output: {enum: [spam, ham]}}
        result: {label: steps.spam.label, tier: steps.spam.tier}
        """,
    )
    ml.save(root / "models" / "spam.skops")
    (tmp_path / "a.txt").write_text("you won the lottery")
    (tmp_path / "b.txt").write_text("hello there")
    batch = await run_file(root, tmp_path / "a.txt", ScriptedModel([]))
    assert batch.results[0].output == {"label": "spam", "tier": "keywords"}
    model = ScriptedModel([json.dumps({"value": "ham"})])
    batch = await run_file(root, tmp_path / "b.txt", model)
    assert batch.results[0].output == {"label": "ham", "tier": "judge"}
    assert len(model.requests) == 1


AGENT = """\
---
description: Answers order questions.
tools:
  - tools:lookup_order
  - {function: tools:shout, side_effect: true}
handoffs: [billing.md]
max_turns: 4
---
You help {{ steps.parse.customer }}.
"""


async def test_an_agent_file_with_tools_handoffs_and_a_templated_body(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: agentic
        input: {type: jsonl}
        steps:
          - {id: parse, kind: code, function: tools:parse_ticket}
          - id: answer
            kind: agent
            file: agents/support.md
            prompt: "{{ steps.parse.text }}"
          - id: order
            kind: tool
            function: tools:lookup_order
            args: {order_id: "'NW-' ~ steps.parse.customer"}
        result: {answer: steps.answer, order: steps.order}
        """,
        {
            "agents/support.md": AGENT,
            "agents/billing.md": "---\ndescription: Billing.\n---\nYou handle invoices.",
        },
    )
    inputs = jsonl(tmp_path, {"from": "ann", "body": "where is NW-1?"})
    replies = [
        ModelResponse(
            tool_calls=[ToolCall(id="c1", name="lookup_order", arguments='{"order_id": "NW-1"}')],
            finish_reason="tool_calls",
            usage=Usage(input_tokens=5, output_tokens=5),
        ),
        "It has shipped.",
    ]
    model = ScriptedModel(replies)
    hooks = Paths()
    batch = await run_file(root, inputs, model, hooks)
    output = batch.results[0].output
    assert output == {"answer": "It has shipped.", "order": "order NW-ann: shipped"}
    first = model.requests[0]
    assert first.messages[0].content == "You help ann."
    assert first.messages[-1].content == "where is NW-1?"
    assert {t.name for t in first.tools} >= {"lookup_order", "shout", "transfer_to_billing"}
    assert "agentic/answer/lookup_order[1]" in hooks.paths
    assert any("order NW-1: shipped" in (m.content or "") for m in model.requests[1].messages)

    agent = load_agent_file(root / "agents" / "support.md")
    assert agent.name == "support" and agent.max_turns == 4
    assert [t.name for t in agent.tools] == ["lookup_order", "shout"]
    assert agent.tools[1].side_effect is True


async def test_builtin_tools_are_registered_entry_points(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: tools
        steps:
          - {id: sum, kind: tool, function: calculate, args: {expression: "'(2 + 3) * 4'"}}
          - {id: now, kind: agent, instructions: "Say the time.", tools: [now]}
        result: {sum: steps.sum, now: steps.now}
        """,
    )
    (tmp_path / "in.txt").write_text("x")
    model = ScriptedModel(["It is now."])
    batch = await run_file(root, tmp_path / "in.txt", model)
    assert batch.results[0].output == {"sum": 20.0, "now": "It is now."}
    assert [t.name for t in model.requests[0].tools] == ["now"]


async def test_output_type_by_import_path(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: typed
        steps:
          - {id: t, kind: llm, instructions: "Extract.", output: tools:Ticket}
        result: steps.t.customer
        """,
    )
    (tmp_path / "in.txt").write_text("x")
    model = ScriptedModel([json.dumps({"customer": "ann", "text": "hi"})])
    batch = await run_file(root, tmp_path / "in.txt", model)
    assert batch.results[0].output == "ann"
    assert model.requests[0].output_schema is not None
    assert set(model.requests[0].output_schema["properties"]) == {"customer", "text"}


async def test_an_answer_breaking_the_inline_schema_is_retried(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: schema
        steps:
          - id: n
            kind: llm
            instructions: "Count."
            output: {type: object, properties: {n: {type: integer, maximum: 5}}, required: [n]}
        """,
    )
    (tmp_path / "in.txt").write_text("x")
    model = ScriptedModel([json.dumps({"n": 9}), json.dumps({"n": 3})])
    batch = await run_file(root, tmp_path / "in.txt", model)
    assert batch.results[0].output == {"n": 3}
    assert "9 is greater than the maximum of 5" in (model.requests[1].messages[-1].content or "")


def test_two_folders_tools_py_do_not_clash_and_sys_path_is_untouched(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for path, word in ((one, "one"), (two, "two")):
        path.mkdir()
        (path / "tools.py").write_text(f"def which() -> str:\n    return {word!r}\n")
    before = list(sys.path)
    assert resolve("tools:which", one)() == "one"
    assert resolve("tools:which", two)() == "two"
    assert resolve("tools:which", one)() == "one"
    assert sys.path == before
    assert "tools" not in sys.modules


def test_inputs_of_every_type(tmp_path: Path) -> None:
    def items(kind: str, argument: Path | str, **extra: Any) -> list[tuple[str, Any]]:
        options = ", ".join(f"{k}: {v}" for k, v in extra.items())
        root = folder(
            tmp_path,
            f"""\
            name: inputs
            input: {{type: {kind}{", " + options if options else ""}}}
            steps: [{{id: same, kind: code, function: tools:shout, input: "'x'"}}]
            """,
        )
        workflow = load_workflow_file(root)
        assert workflow.load is not None
        return [(i.key, i.value) for i in workflow.load(Path(argument))]

    (tmp_path / "rows.csv").write_text('id,text\na1,hello\na2,"two\nlines"\n')
    assert items("csv", tmp_path / "rows.csv", key="id") == [
        ("a1", {"id": "a1", "text": "hello"}),
        ("a2", {"id": "a2", "text": "two\nlines"}),
    ]
    (tmp_path / "list.json").write_text('[{"q": 1}, {"q": 2}]')
    assert items("json", tmp_path / "list.json") == [("1", {"q": 1}), ("2", {"q": 2})]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "b.txt").write_text("bee")
    (notes / "a.txt").write_text("ay")
    (notes / ".hidden").write_text("no")
    assert items("text", notes) == [("a.txt", "ay"), ("b.txt", "bee")]
    assert items("value", '{"k": 1}', json="true") == [("value", {"k": 1})]
    assert items("value", "hello there") == [("value", "hello there")]
    lines = jsonl(tmp_path, {"a": 1}, {"a": 2})
    assert items("jsonl", lines) == [("line-1", {"a": 1}), ("line-2", {"a": 2})]


async def test_email_input_is_parsed_and_a_bad_item_fails_alone(
    tmp_path: Path, inbox: Path
) -> None:
    root = folder(
        tmp_path,
        """\
        name: mail
        input: {type: email}
        steps:
          - {id: subject, kind: code, function: tools:shout, input: input.subject}
        output:
          report: {template: report.md.j2}
        """,
        {"report.md.j2": "{{ ok | length }} ok, {{ failed | length }} failed"},
    )
    mails = tmp_path / "mails"
    mails.mkdir()
    for name in ("001-invoice-overdue.eml", "099-malformed.eml"):
        (mails / name).write_bytes((inbox / name).read_bytes())
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    batch = await run_batch(
        workflow, workflow.load(mails), gateway=scripted_gateway(ScriptedModel([])),
        out_dir=root / "out",
    )  # fmt: skip
    assert batch.status == "partial"
    assert "INVOICE INV-2026-0193" in batch.results[0].output
    assert (root / "out" / "report.md").read_text() == "1 ok, 1 failed"


async def test_input_schema_fails_items_that_do_not_match(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: checked
        input:
          type: jsonl
          schema: {type: object, properties: {body: {type: string}}, required: [body]}
        steps: [{id: loud, kind: code, function: tools:shout, input: input.body}]
        """,
    )
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    items = workflow.load(jsonl(tmp_path, {"body": "ok"}, {"nobody": 1}))
    batch = await run_batch(workflow, items, gateway=scripted_gateway(ScriptedModel([])))
    assert batch.results[0].output == "OK"
    assert "does not match input.schema" in str(batch.results[1].error)
    assert "'body' is a required property" in str(batch.results[1].error)


@pytest.mark.parametrize("name", ["content", "decision", "support-chat", "email-triage"])
def test_shipped_templates_load(name: str) -> None:
    workflow = load_workflow_file(name)
    assert workflow.step.children()


def test_unreadable_inputs_name_the_file_and_line(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: inputs
        input: {type: jsonl, key: id}
        steps: [{id: same, kind: code, function: tools:shout}]
        """,
    )
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n{"id": 2,\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: invalid JSON"):
        workflow.load(bad)
    bad.write_text('{"id": 1}\n{"name": 2}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: no field 'id' \(input\.key\)"):
        workflow.load(bad)
    with pytest.raises(InputError, match="no such file"):
        workflow.load(tmp_path / "missing.jsonl")


async def test_expressions_run_in_a_sandbox(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: sandboxed
        steps:
          - id: escape
            kind: gate
            when: "input.__class__.__mro__[1].__subclasses__() | length > 0"
          - {id: loud, kind: code, function: tools:shout}
        """,
    )
    (tmp_path / "in.txt").write_text("x")
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    batch = await run_batch(
        workflow, workflow.load(tmp_path / "in.txt"), gateway=scripted_gateway(ScriptedModel([]))
    )
    error = batch.results[0].error
    assert error is not None
    assert "sandboxed/escape" in str(error)
    assert "unsafe" in str(error) or "SecurityError" in str(error)


async def test_a_chain_inside_a_pattern_sees_the_patterns_variables(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: nested
        steps:
          - id: polish
            kind: refine
            generator:
              kind: chain
              steps:
                - {id: draft, kind: llm, instructions: W, prompt: "{{ input }} {{ feedback }}"}
                - {id: loud, kind: code, function: tools:shout, input: "steps.draft ~ round"}
            evaluator: {kind: llm, instructions: "Judge.", prompt: "Judge: {{ output }}"}
            max_rounds: 2
        result: steps.polish.output
        """,
    )
    (tmp_path / "in.txt").write_text("topic")
    verdicts = iter([{"passed": False, "score": 3, "feedback": "more"},
                     {"passed": True, "score": 8, "feedback": "ok"}])  # fmt: skip

    def answer(request: ModelRequest) -> str:
        text = user(request)
        return json.dumps(next(verdicts)) if text.startswith("Judge:") else f"d[{text}]"

    batch = await run_file(root, tmp_path / "in.txt", ScriptedModel(answer))
    assert batch.results[0].output == "D[TOPIC MORE]2"


async def test_several_reports(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: reports
        steps: [{id: loud, kind: code, function: tools:shout}]
        output:
          report:
            - {template: list.md.j2, file: list.md}
            - {template: list.json.j2, file: out/list.json}
        """,
        {
            "list.md.j2": "{% for r in ok %}- {{ r.output }}\n{% endfor %}",
            "list.json.j2": "{{ ok | map(attribute='output') | list | tojson }}",
        },
    )
    (tmp_path / "in.txt").write_text("hi")
    batch = await run_file(root, tmp_path / "in.txt", ScriptedModel([]))
    assert (root / "out" / "list.md").read_text() == "- HI\n"
    assert json.loads((root / "out" / "out" / "list.json").read_text()) == ["HI"]
    assert set(batch.artifacts) == {"results", "report", "out/list.json"}


async def test_a_learning_cascade_ml_trained_from_examples_then_the_llm_classifier(
    tmp_path: Path,
) -> None:
    rows = [
        {"subject": "Invoice overdue", "body": "please pay invoice", "label": "billing"},
        {"subject": "Payment reminder", "body": "your payment is due", "label": "billing"},
        {"subject": "Parcel late", "body": "my delivery has not arrived", "label": "shipping"},
        {"subject": "Where is my order", "body": "tracking shows no delivery", "label": "shipping"},
    ] * 5
    root = folder(
        tmp_path,
        """\
        name: helpdesk
        input: {type: jsonl}
        steps:
          - id: desk
            kind: cascade
            tiers:
              - step:
                  id: model
                  kind: ml
                  train: examples.jsonl
                  text: "{{ input.subject }} {{ input.body }}"
                threshold: 0.6
              - step:
                  id: judge
                  kind: classify
                  labels: [billing, shipping]
                  prompt: "{{ input.subject }}"
                  votes: 1
        result: {label: steps.desk.label, tier: steps.desk.tier}
        """,
        {"examples.jsonl": "".join(json.dumps(r) + "\n" for r in rows)},
    )
    inputs = jsonl(
        tmp_path,
        {"subject": "Invoice overdue", "body": "please pay invoice"},
        {"subject": "Hello", "body": "something else entirely"},
    )
    model = ScriptedModel(lambda request: "shipping")
    batch = await run_file(root, inputs, model)
    outputs = [r.output for r in batch.results]
    assert outputs == [
        {"label": "billing", "tier": "model"},  # the trained tier was sure enough
        {"label": "shipping", "tier": "judge"},
    ]
    assert [m.content for m in model.requests[0].messages][1] == "Hello"
    assert model.requests[0].choices == ["billing", "shipping"]
    workflow = load_workflow_file(root)
    assert find_cascade(workflow.step, "desk").name == "desk"  # calibrate and distill find it


def test_the_docs_complete_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "workflow-files.md").read_text()
    section = doc.split("## A complete example", 1)[1]
    workflow = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    agent = doc.split("## Agent files", 1)[1].split("```markdown\n", 1)[1].split("```", 1)[0]
    tools = TOOLS + '\n\ndef refund(order_id: str) -> str:\n    """Refund."""\n    return "ok"\n'
    root = folder(
        tmp_path,
        workflow,
        {
            "tools.py": tools,
            "instructions/classify.md": "Classify the ticket.",
            "agents/support.md": agent.replace("handoffs: [billing.md]", "handoffs: []"),
            "report.md.j2": "{{ ok | length }}",
        },
    )
    loaded = load_workflow_file(root)
    assert [name for name, _ in loaded.step.children()] == [
        "parse",
        "classify",
        "not-spam",
        "answer",
    ]
    assert load_agent_file(root / "agents" / "support.md").max_turns == 6
