"""Workflows for the durable-run tests, loaded by `llmflow run tests.durable_flows:build`
in subprocesses. Environment variables steer where they record and where they die:

- LLMFLOW_TEST_EFFECTS: the ledger file the `refund` action writes (once per key);
- LLMFLOW_TEST_KILL: `boundary:<item>` kills the process between the two model calls of
  that item; `effect:<item>` right after its refund was made, before the step's checkpoint.
  A marker file next to the ledger makes it happen once;
- LLMFLOW_TEST_APPROVAL: put a manager's approval (timeout in seconds, default reject)
  before the refund;
- LLMFLOW_TEST_VARIANT=2: the "changed code" (one more step).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from llmflow.durable import action, append_line_once, approve, current_idempotency_key
from llmflow.patterns.chain import chain
from llmflow.runtime.runner import Item, Workflow
from llmflow.steps.base import CodeStep, Step
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
