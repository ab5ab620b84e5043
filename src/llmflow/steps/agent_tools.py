"""An agent's tools: `Tool` and `@tool`, and `ToolCall`, one call of a tool as a recorded
step. A side-effect tool runs as an effect of the run (exactly once in a durable run); a tool
that needs approval pauses the durable run until someone approves or rejects the call."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pydantic_core
from agents import function_tool
from agents.tool_context import ToolContext

from ..errors import ConfigError
from .base import Step
from .context import RunContext
from .effects import Decision
from .principal import (
    ActionRecord,
    ApprovalRule,
    Check,
    Principal,
    ToolRefusedError,
    acting_for,
    permission_problem,
)

Invoke = Callable[[str, ToolContext[Any], RunContext], Awaitable[Any]]


class Tool:
    """A tool an agent may call: a Python function with typed arguments, or another agent."""

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        invoke: Invoke,
        *,
        side_effect: bool = False,
        needs_approval: bool | ApprovalRule = False,
        strict: bool = True,
        requires: Sequence[str] = (),
        check: Check | None = None,
        untrusted: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters = parameters
        """JSON schema of the arguments."""
        self.invoke = invoke
        self.side_effect = side_effect
        """Changes the world (sends, pays, writes): recorded as an `action`, and run exactly
        once per call in a durable run."""
        self.needs_approval = needs_approval
        """Each call waits for a person's approval (durable runs only); a rejected call is
        not made, and the model is told so, with the reviewer's comment. A function
        `(principal, arguments) -> bool` asks for approval of the calls it returns True for
        (refunds above an amount)."""
        self.strict = strict
        self.requires = frozenset(requires)
        """Permissions the run's principal must hold for any call (`Principal.permissions`)."""
        self.check = check
        """`(principal, arguments)`: True allows the call; anything else refuses it (a
        string says why). Calls outside it are refused before the tool runs, and recorded."""
        self.untrusted = untrusted
        """Its results come from outside (the web, a mailbox): the model reads them marked
        as data (`mark_untrusted`)."""
        self.agent: Step[Any, Any] | None = None
        """The agent this tool runs (`AgentStep.as_tool`), whose own tools may ask too."""

    def asks_approval(self, run_id: str | None) -> bool:
        """Whether a call of this tool may wait for a person's approval."""
        if self.needs_approval is not False:  # True, or a rule that may say so
            return True
        return self.agent is not None and self.agent.may_ask_approval(run_id)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    needs_approval: bool | ApprovalRule = False,
    requires: Sequence[str] = (),
    check: Check | None = None,
    untrusted: bool = False,
) -> Any:
    """Make a tool from a function (sync or async, typed arguments, docstring as description):
    `tool(lookup)`, `@tool(side_effect=True)` for one that changes something (exactly once
    per call in a durable run), `needs_approval=True` for one a person must approve first
    (or a function of the principal and arguments saying which calls), `requires=[...]` and
    `check=fn` for what the run's principal must be allowed (see `steps.principal`),
    `untrusted=True` for one whose results the model must read as data."""

    def wrap(f: Callable[..., Any]) -> Tool:
        # The SDK derives the argument schema and validates calls; errors are left to raise
        # so that they are recorded, then reported to the model by `ToolCall`.
        base = function_tool(
            f, name_override=name, description_override=description, failure_error_function=None
        )

        async def invoke(args: str, tool_ctx: ToolContext[Any], ctx: RunContext) -> Any:
            return await base.on_invoke_tool(tool_ctx, args)

        return Tool(
            base.name,
            base.description,
            base.params_json_schema,
            invoke,
            side_effect=side_effect,
            needs_approval=needs_approval,
            strict=base.strict_json_schema,
            requires=requires,
            check=check,
            untrusted=untrusted,
        )

    return wrap(fn) if fn is not None else wrap


class ToolCall(Step[str, Any]):
    """One call of a tool, as a recorded step (`ctx.path` is `agent/tool[n]`).

    A side-effect tool runs as an effect of the run (`ctx.effects`): in a durable run its
    result is checkpointed, and `current_idempotency_key()` inside it is
    `<run id>/<item>/<agent>/<tool>[n]`, the same when a call cut off by a crash runs again.
    """

    def __init__(self, tool: Tool, tool_ctx: ToolContext[Any]) -> None:
        super().__init__(tool.name)
        self.kind = "action" if tool.side_effect else "tool"
        self.tool = tool
        self.tool_ctx = tool_ctx

    async def run(self, input: str, ctx: RunContext) -> Any:
        t = self.tool
        arguments = _arguments(input)
        principal = ctx.principal
        given = arguments if isinstance(arguments, dict) else {}

        def record(status: Any, result: Any, approval: dict[str, Any] | None = None) -> None:
            ctx.actions.append(
                ActionRecord(t.name, ctx.path, arguments, status, t.side_effect, result, approval)
            )

        problem = permission_problem(t.name, t.requires, t.check, principal, given)
        if problem is not None:
            record("refused", problem)
            raise ToolRefusedError(
                ctx.path,
                f"Refused: {t.name} is not allowed here: {problem}. The tool did not run; tell "
                "the user you cannot do that, and do not try it again.",
            )
        approval: dict[str, Any] | None = None
        if _needs_approval(t, principal, given):
            decision = await _approval(t, input, arguments, ctx)
            approval = decision.model_dump()
            if not decision.approved:
                who = decision.by or "a reviewer"
                why = f": {decision.comment}" if decision.comment else ""
                reason = (
                    f"Not done: the call of {t.name} was rejected by {who}{why}. The tool did "
                    "not run; tell the user, and do not try it again."
                )
                record("rejected", reason, approval)
                raise ToolRefusedError(ctx.path, reason, status="rejected")

        async def call() -> Any:
            with acting_for(principal):
                return await t.invoke(input, self.tool_ctx, ctx)

        async def effect() -> Any:
            result = await call()
            try:  # checkpointed as JSON: what cannot be, the model hears as text anyway
                pydantic_core.to_json(result)
            except pydantic_core.PydanticSerializationError:
                return str(result)
            return result

        try:
            result = await (ctx.effects.run(effect, ctx) if t.side_effect else call())
        except Exception as e:
            record("failed", getattr(e, "reason", None) or str(e), approval)
            raise
        record("ok", result, approval)
        return result


def _arguments(args: str) -> Any:
    try:
        return json.loads(args or "{}")
    except ValueError:
        return args


def _needs_approval(t: Tool, principal: Principal | None, arguments: dict[str, Any]) -> bool:
    rule = t.needs_approval
    if isinstance(rule, bool):
        return rule
    try:
        return bool(rule(principal, arguments))
    except Exception:  # a rule that fails asks a person: never skip an approval by accident
        return True


class _ApprovalRequest(Step[Any, Any]):
    """What a tool call's approval is recorded as: `agent/tool[n]/approval`, once when it is
    asked (awaiting approval) and once when decided."""

    kind = "approval"

    async def run(self, input: Any, ctx: RunContext) -> Any:  # pragma: no cover - a record
        return input


_APPROVAL = _ApprovalRequest("approval")


def _record_approval(ctx: RunContext, request: dict[str, Any], state: dict[str, Any]) -> None:
    at = ctx.child("approval")
    now = time.time()
    for hook in ctx.hooks:
        try:  # a record that cannot be written never stops the approval itself
            hook.on_step_end(
                at, step=_APPROVAL, input=request, output=state, error=None, started_at=now,
                latency_s=0.0,
            )  # fmt: skip
        except Exception:  # pragma: no cover - a broken hook
            continue


async def _approval(t: Tool, args: str, arguments: Any, ctx: RunContext) -> Decision:
    """Wait for a person's decision on this call of `t` (recorded as asked and as decided)."""
    if not (ctx.effects.durable or ctx.effects.approvals):
        raise ConfigError(
            f"{ctx.path}: the tool {t.name!r} needs approval (needs_approval=True), and a run "
            "waits for one only when it is durable: use `llmflow run` (durable unless "
            "--no-durable or LLMFLOW_DURABLE=0) or llmflow.durable.run_durable in Python, or "
            "drop needs_approval"
        )
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items()) if isinstance(
        arguments, dict
    ) else args  # fmt: skip
    request = {"tool": t.name, "arguments": arguments}
    _record_approval(ctx, request, {"status": "awaiting approval"})
    decision = await ctx.effects.approval(ctx, f"{t.name}({shown})", details=request)
    state = "approved" if decision.approved else "rejected"
    _record_approval(ctx, request, {"status": state, **decision.model_dump()})
    return decision
