"""Workflows for the durable-run tests, loaded by `llmflow run tests.durable_flows:build`
in subprocesses. Environment variables steer where they record and where they die:

- LLMFLOW_TEST_EFFECTS: the ledger file the `refund` action writes (once per key);
- LLMFLOW_TEST_KILL: `boundary:<item>` kills the process between the two model calls of
  that item; `effect:<item>` right after its refund was made, before the step's checkpoint.
  A marker file next to the ledger makes it happen once;
- LLMFLOW_TEST_APPROVAL: put a manager's approval (timeout in seconds, default reject)
  before the refund;
- LLMFLOW_TEST_VARIANT=2: the "changed code" (one more step).

`build_agent` is the same refund as an agent's side-effect tool (`tool:<item>` kills the
process right after the tool refunded, before the call's checkpoint;
LLMFLOW_TEST_TOOL_APPROVAL=1 makes the tool need approval). `email_triage` is the real
email-triage workflow whose `act` dies once (`act:<file>`) right after it filed the mail
and appended to results.jsonl, before the action's checkpoint.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from llmflow.apps.email_triage import workflow as email_triage_workflow
from llmflow.durable import (
    ActionStep,
    action,
    append_line_once,
    approve,
    current_idempotency_key,
)
from llmflow.patterns.chain import chain
from llmflow.runtime.runner import Item, Workflow
from llmflow.steps.agent import agent, tool
from llmflow.steps.base import CodeStep, Step
from llmflow.steps.context import RunContext
from llmflow.steps.llm import llm


def _ledger() -> Path:
    return Path(os.environ["LLMFLOW_TEST_EFFECTS"])


def _die_once(point: str, item: str) -> None:
    if os.environ.get("LLMFLOW_TEST_KILL") == f"{point}:{item}":
        marker = _ledger().with_suffix(".killed")
        if not marker.exists():
            marker.write_text(point)
            os.kill(os.getpid(), signal.SIGKILL)


def _between(text: str) -> str:
    _die_once("boundary", text.split("|")[0])
    return text


def _refund(text: str) -> str:
    item = text.split("|")[0]
    with _ledger().with_suffix(".attempts").open("a") as f:
        f.write(f"{item} {current_idempotency_key()}\n")
    append_line_once(_ledger(), {"item": item, "amount": 10})
    _die_once("effect", item)
    return f"refunded {item}"


def _load(folder: Path) -> list[Item]:
    return [Item(p.name, p.read_text().strip()) for p in sorted(folder.glob("*.txt"))]


def build() -> Workflow:
    steps: list[Step] = [
        llm("a", instructions="Step a.", prompt="{{ input }}"),
        CodeStep("between", _between),
        llm("b", instructions="Step b.", prompt="{{ input }}"),
    ]
    timeout = os.environ.get("LLMFLOW_TEST_APPROVAL")
    if timeout:
        steps.append(approve("manager", prompt="Refund {{ input }}?", timeout_s=float(timeout)))
    steps.append(action(_refund, name="refund"))
    if os.environ.get("LLMFLOW_TEST_VARIANT") == "2":
        steps.append(CodeStep("extra", str.upper))
    return Workflow(name="refunds", step=chain("refunds", *steps), load=_load)


def refund(order: str) -> str:
    """Refund an order."""
    with _ledger().with_suffix(".attempts").open("a") as f:
        f.write(f"{order} {current_idempotency_key()}\n")
    append_line_once(_ledger(), {"item": order, "amount": 10})
    _die_once("tool", order)
    return f"refunded {order}"


def build_agent() -> Workflow:
    approval = os.environ.get("LLMFLOW_TEST_TOOL_APPROVAL") == "1"
    support = agent(
        "support",
        instructions="Support agent.",
        tools=[tool(refund, side_effect=True, needs_approval=approval)],
        prompt="{{ input }}",
    )
    return Workflow(name="agent-refunds", step=chain("agent-refunds", support), load=_load)


def email_triage() -> Workflow:
    """The email-triage workflow, its `act` dying once as LLMFLOW_TEST_KILL=act:<file> says."""
    workflow = email_triage_workflow.build()
    acts = [s for s in _walk(workflow.step) if isinstance(s, ActionStep) and s.name == "act"]
    assert acts, "the email-triage workflow has no act action"
    for act in acts:
        act.fn = _dying(act.fn)
    return workflow


def _dying(fn: Any) -> Any:
    def act(triage: Any, ctx: RunContext) -> Any:
        filed = fn(triage, ctx)
        _die_once("act", Path(triage.email.source).name)
        return filed

    return act


def _walk(step: Step) -> list[Step]:
    return [step, *(s for _, child in step.children() for s in _walk(child))]
