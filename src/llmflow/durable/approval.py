"""Human approval: a step, or a tool, that pauses a durable run until someone decides.

The run waits durably (DBOS `recv`): the process may die and the run resume days later;
the decision may come from any process (`llmflow approve|reject`), before or after the
restart. A waiting run publishes its request as a DBOS event, which is how
`llmflow approvals list` finds it. With `timeout_s`, the declared `default` decides when
nobody does in time.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from dbos import DBOS

from ..errors import ConfigError, RunError
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.effects import Decision, Outcome
from ..steps.prompt import PromptTemplate
from .effects import in_durable_run
from .ledger import current_item

EVENT = "llmflow.approvals"
"""The DBOS event (per item workflow) holding its approval requests, by step path."""


def topic(path: str) -> str:
    return f"approval:{path}"


class ApprovalRejectedError(RunError):
    """A reviewer (or the timeout's default) rejected an approval step."""

    def __init__(self, path: str, decision: Decision) -> None:
        who = "the timeout's default" if decision.by == "timeout" else (decision.by or "reviewer")
        comment = f": {decision.comment}" if decision.comment else ""
        super().__init__(f"{path}: rejected by {who}{comment}")
        self.path = path
        self.decision = decision


async def request_approval(
    ctx: RunContext,
    prompt: str,
    *,
    timeout_s: float | None = None,
    default: Outcome = "reject",
    details: dict[str, Any] | None = None,
) -> Decision:
    """Pause the durable run at `ctx.path` until someone approves or rejects (or the timeout
    passes: then `default` decides). Outside a durable run there is nobody to ask."""
    item = current_item()
    if item is not None and item.local:
        raise ConfigError(
            f"{ctx.path}: asks for an approval, but no step of the workflow says it may, so "
            "its items run without the DBOS workflow an approval waits in: make the step's "
            "asks_approval() return True (CodeStep(..., asks_approval=True))"
        )
    if not in_durable_run():
        raise ConfigError(
            f"{ctx.path}: an approval needs a durable run (llmflow run, or "
            "llmflow.durable.run_durable in Python) to wait in"
        )
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"{ctx.path}: timeout_s must be positive (got {timeout_s})")
    requests: dict[str, Any] = dict(await _own_requests())
    requests[ctx.path] = {
        "prompt": prompt,
        "details": details or {},
        "requested_at": time.time(),
        "timeout_s": timeout_s,
        "default": default,
        "status": "waiting",
    }
    await DBOS.set_event_async(EVENT, requests)
    # No timeout is a very long one: DBOS waits need a bound (about 100 years).
    message = await DBOS.recv_async(topic(ctx.path), timeout_seconds=timeout_s or 3.15e9)
    if message is None:
        decision = Decision(approved=default == "approve", by="timeout", at=time.time())
    else:
        decision = Decision.model_validate(message)
    requests[ctx.path] = {
        **requests[ctx.path],
        "status": "approved" if decision.approved else "rejected",
        "decision": decision.model_dump(),
    }
    await DBOS.set_event_async(EVENT, requests)
    return decision


_requests_cache: dict[str, dict[str, Any]] = {}


async def _own_requests() -> dict[str, Any]:
    """This workflow's approval requests so far (an item may hold several approvals)."""
    workflow_id = DBOS.workflow_id or ""
    return _requests_cache.setdefault(workflow_id, {})


class ApproveStep(Step[Any, Any]):
    """Pauses the run until a person approves; passes its input on when approved, and fails
    the item with `ApprovalRejectedError` when rejected."""

    kind = "approve"

    def __init__(
        self,
        name: str,
        *,
        prompt: str,
        timeout_s: float | None = None,
        default: Outcome = "reject",
    ) -> None:
        super().__init__(name)
        if default not in ("approve", "reject"):
            raise ConfigError(f"approve {name!r}: default must be 'approve' or 'reject'")
        self.prompt = PromptTemplate(name, prompt)
        self.wait_s = timeout_s
        self.default: Outcome = default

    def asks_approval(self, run_id: str | None) -> bool:
        return True

    async def run(self, input: Any, ctx: RunContext) -> Any:
        text = self.prompt.render(input)
        decision = await request_approval(ctx, text, timeout_s=self.wait_s, default=self.default)
        if not decision.approved:
            raise ApprovalRejectedError(ctx.path, decision)
        return input


def approve(
    name: str, *, prompt: str, timeout_s: float | None = None, default: Outcome = "reject"
) -> ApproveStep:
    """A step that waits for a person's approval: `prompt` is a Jinja template over the
    input (what the reviewer sees); after `timeout_s` seconds `default` decides."""
    return ApproveStep(name, prompt=prompt, timeout_s=timeout_s, default=default)


def decision_message(approved: bool, comment: str | None) -> dict[str, Any]:
    """The message `llmflow approve|reject` sends."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return Decision(approved=approved, comment=comment, by=user, at=time.time()).model_dump()
