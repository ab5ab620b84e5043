"""The grounding check in workflow files: an llm step's `grounded:` option (fail, or answer
empty), the `grounding` step kind (a gate's test, a refine evaluator), a cascade tier that
abstains when ungrounded, the `ungrounded` filter, and the loader's messages for misuse."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from llmflow import ModelRequest, RunContext, RunHooks
from llmflow.errors import SpecError
from llmflow.runtime.runner import BatchResult, run_batch
from llmflow.testing import ScriptedModel, scripted_gateway
from llmflow.workflow_files import load_workflow_file

MAIL = "Hello, invoice INV-2041 for 1 250,00 EUR is due on 4 December 2026. Regards, Ann Weber"
GROUNDED = "Ann Weber says invoice INV-2041 (1,250 EUR) is due 2026-12-04."
INVENTED = "Ann Weber says invoice INV-2041 (120 EUR) is due 2026-12-04."


class Steps(RunHooks):
    """Every step's output and error by path."""

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}

    def on_step_end(self, ctx: RunContext, **kw: Any) -> None:
        self.outputs[ctx.path] = kw["error"] or kw["output"]


def folder(tmp_path: Path, workflow: str) -> Path:
    root = tmp_path / "wf"
    root.mkdir(exist_ok=True)
    (root / "workflow.yaml").write_text(textwrap.dedent(workflow))
    return root


async def run(
    root: Path, model: ScriptedModel, *bodies: str, hooks: Steps | None = None
) -> BatchResult:
    inputs = root.parent / "in.jsonl"
    inputs.write_text("".join(json.dumps({"body": b}) + "\n" for b in bodies))
    workflow = load_workflow_file(root)
    assert workflow.load is not None
    return await run_batch(
        workflow, workflow.load(inputs), gateway=scripted_gateway(model),
        out_dir=root / "out", hooks=[hooks] if hooks else [],
    )  # fmt: skip


def instructions(request: ModelRequest) -> str:
    return request.messages[0].content or ""


SUMMARY = """\
name: wf
input: {type: jsonl}
steps:
  - id: summary
    kind: llm
    instructions: Summarise the mail in one sentence.
    prompt: "{{ input.body }}"
    grounded: input.body
"""


async def test_an_invented_amount_fails_the_step_naming_it(tmp_path: Path) -> None:
    root = folder(tmp_path, SUMMARY)
    hooks = Steps()
    batch = await run(root, ScriptedModel([INVENTED]), MAIL, hooks=hooks)
    error = batch.results[0].error
    assert error is not None
    assert "ungrounded answer refused: it states 120, which input.body does not" in str(error)
    verdict = hooks.outputs["wf/summary/grounded"]  # the verdict is recorded as a child step
    assert (verdict.passed, verdict.ungrounded) == (False, ["120"])


async def test_a_grounded_answer_passes(tmp_path: Path) -> None:
    root = folder(tmp_path, SUMMARY)
    hooks = Steps()
    batch = await run(root, ScriptedModel([GROUNDED]), MAIL, hooks=hooks)
    assert batch.results[0].error is None
    assert batch.results[0].output == GROUNDED
    assert hooks.outputs["wf/summary/grounded"].passed


async def test_empty_answers_null_and_fields_pick_what_is_checked(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: wf
        input: {type: jsonl}
        steps:
          - id: extract
            kind: llm
            instructions: Extract.
            output:
              type: object
              properties:
                amount: {type: number}
                confidence: {type: number}
              required: [amount, confidence]
            grounded: {source: input.body, fields: [amount]}
            on_ungrounded: empty
        """,
    )

    def answer(request: ModelRequest) -> str:  # 0.9 is not checked: only the amount
        amount = 9999 if "refund" in (request.messages[-1].content or "") else 1250
        return json.dumps({"amount": amount, "confidence": 0.9})

    batch = await run(root, ScriptedModel(answer), MAIL, MAIL + " Please refund.")
    assert [r.output for r in batch.results] == [{"amount": 1250, "confidence": 0.9}, None]
    assert all(r.error is None for r in batch.results)


async def test_a_cascade_tier_that_is_not_grounded_abstains(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: wf
        input: {type: jsonl}
        steps:
          - id: deadline
            kind: cascade
            tiers:
              - step: {id: small, kind: llm, instructions: small, prompt: "{{ input.body }}",
                       grounded: input.body, on_ungrounded: empty}
              - step: {id: large, kind: llm, instructions: large, prompt: "{{ input.body }}"}
        result: steps.deadline
        """,
    )
    model = ScriptedModel(lambda r: "2027-01-05" if instructions(r) == "small" else "2026-12-04")
    batch = await run(root, model, MAIL)
    result = batch.results[0].output
    assert (result.label, result.tier) == ("2026-12-04", "large")
    assert [a.label for a in result.attempts] == [None, "2026-12-04"]


async def test_a_grounding_step_and_a_gate_divert_an_ungrounded_reply(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: wf
        input: {type: jsonl}
        steps:
          - {id: reply, kind: llm, instructions: Reply., prompt: "{{ input.body }}"}
          - id: checked
            kind: grounding
            text: steps.reply
            source: input.body
            allowed: [Northwind Outfitters]
          - id: only_grounded
            kind: gate
            when: steps.checked.passed
            divert: {id: held, kind: llm, instructions: Hold., prompt: "{{ input.body }}"}
        result:
          reply: steps.reply
          refused: steps.checked.ungrounded
          held: steps.held
          by_filter: "steps.reply | ungrounded(input.body)"
        """,
    )
    replies = ["Dear Ann Weber, invoice INV-2041 is noted. Northwind Outfitters",
               "Dear Ann Weber, we refund 9999 USD on 5 January. Northwind Outfitters",
               "We will answer soon."]  # fmt: skip

    def answer(request: ModelRequest) -> str:
        if instructions(request) == "Hold.":
            return replies[2]
        return replies[1] if "refund" in (request.messages[-1].content or "") else replies[0]

    batch = await run(root, ScriptedModel(answer), MAIL, MAIL + " Please refund.")
    assert [r.output for r in batch.results] == [
        {"reply": replies[0], "refused": [], "held": None, "by_filter": ["Outfitters"]},
        {
            "reply": replies[1],
            "refused": ["5 January", "9999", "USD"],
            "held": replies[2],
            "by_filter": ["5 January", "9999", "USD", "Outfitters"],
        },
    ]


async def test_grounding_as_a_refine_evaluator_feeds_back_what_to_remove(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        """\
        name: wf
        input: {type: jsonl}
        steps:
          - id: summary
            kind: refine
            generator:
              kind: llm
              instructions: Summarise.
              prompt: "{{ input.body }}{% if feedback %}\\nFeedback: {{ feedback }}{% endif %}"
            evaluator: {kind: grounding, text: output, source: input.body}
            max_rounds: 3
        result: steps.summary
        """,
    )
    model = ScriptedModel([INVENTED, GROUNDED])
    batch = await run(root, model, MAIL)
    result = batch.results[0].output
    assert (result.output, result.passed, len(result.rounds)) == (GROUNDED, True, 2)
    assert "The source does not state 120" in (model.requests[1].messages[-1].content or "")


def problems(tmp_path: Path, workflow: str) -> list[str]:
    root = folder(tmp_path, workflow)
    with pytest.raises(SpecError) as caught:
        load_workflow_file(root)
    return [f"{line}:{col}: {message}" for _file, line, col, message in caught.value.problems]


STEP = "name: x\nsteps:\n  - id: s\n    kind: llm\n    instructions: hi\n    output: {}\n"
OBJECT = "{type: object, properties: {amount: {type: number}}}"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["text", "on_ungrounded: empty"],
            "7:5: on_ungrounded needs grounded: <expression>, the text the answer must be "
            "grounded in (e.g. grounded: input.body)",
        ),
        (["text", "grounded: 5"], "7:15: grounded is an expression naming the text"),
        (
            ["text", "grounded: {sorce: input.body}"],
            "7:16: unknown key 'sorce' in grounded "
            "(did you mean 'source'?); allowed: source, fields, allowed, names",
        ),
        (["text", "grounded: steps.nope.body"], "7:21: unknown step 'nope' in steps.nope"),
        (
            ["text", "grounded: {source: input.body, fields: [amount]}"],
            "7:44: fields picks fields of an object output, and this step answers text",
        ),
        (
            [OBJECT, "grounded: {source: input.body, fields: [amuont]}"],
            "7:45: unknown field 'amuont' (did you mean 'amount'?): the output has amount",
        ),
        (
            ["text", "on_ungrounded: nul"],
            "7:20: on_ungrounded: Input should be 'fail' or 'empty'",
        ),
    ],
)
def test_misuse_is_reported_at_its_position(
    tmp_path: Path, lines: list[str], expected: str
) -> None:
    output, extra = lines
    workflow = STEP.replace("output: {}", f"output: {output}") + f"    {extra}\n"
    found = problems(tmp_path, workflow)
    assert any(p.startswith(expected) for p in found), found


def test_a_grounding_step_needs_its_text(tmp_path: Path) -> None:
    found = problems(
        tmp_path, "name: x\nsteps:\n  - {id: g, kind: grounding, source: input.body}\n"
    )
    assert found == ["3:5: missing key 'text' in a grounding step"], found
