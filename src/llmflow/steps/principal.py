"""Who a run acts for, what they may do, and what was done: the principal and tool permissions.

A principal is set by code from the input (the authenticated sender of a mail, the customer
of a conversation: a workflow file's `principal:`), carried on the run's context
(`RunContext.principal`) and seen by tools through `current_principal()`. It is never an
argument the model fills, so no message can talk a tool into acting for someone else.

Tools declare what they need (`tool(fn, requires=[...], check=...)`): the agent step checks
each call before the tool runs and refuses one outside it. A refused call is recorded (status
`refused`), the model is told why, and the tool does not run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import StepError


class Principal(BaseModel):
    """Who the input is from, and what they may act on."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    """Who: an email address, a customer id, a user name (as the tools know them)."""
    kind: str = "user"
    """What sort of principal: user, customer, service..."""
    permissions: frozenset[str] = frozenset()
    """What they may do, by name (a tool's `requires` names some of these)."""
    attributes: Mapping[str, Any] = Field(default_factory=dict)
    """Anything else code knows about them (a tenant, a role), for tools' checks."""

    def may(self, permission: str) -> bool:
        """Whether they hold `permission`."""
        return permission in self.permissions


Check = Callable[[Principal, dict[str, Any]], Any]
"""A tool's permission check: `(principal, arguments)`. It returns True to allow the call;
anything else refuses it: a string is the reason the model (and the record) gets."""
ApprovalRule = Callable[[Principal | None, dict[str, Any]], bool]
"""Whether one call of a tool needs a person's approval, from its principal and arguments."""

_principal: ContextVar[Principal | None] = ContextVar("llmflow_principal", default=None)


def current_principal() -> Principal | None:
    """The principal the tool (or step) running now acts for; None outside a run with one."""
    return _principal.get()


@contextlib.contextmanager
def acting_for(principal: Principal | None) -> Iterator[None]:
    """Run the block for `principal` (what `current_principal()` returns inside it)."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


ActionStatus = Literal["ok", "failed", "refused", "rejected"]


@dataclass(slots=True)
class ActionRecord:
    """One tool call of an item, as it ended: what `claims_match_actions` reads."""

    tool: str
    """The tool's name."""
    path: str
    """The call's step path (`support/request_refund[2]`)."""
    arguments: Any
    """The arguments, parsed."""
    status: ActionStatus
    """ok: it ran and succeeded; failed: it raised; refused: outside the principal's
    permissions, not run; rejected: a reviewer said no, not run."""
    side_effect: bool
    """Whether the tool changes the world."""
    result: Any = None
    """What it returned (ok), or why it did not (the other statuses)."""
    approval: dict[str, Any] | None = field(default=None)
    """The decision, when the call needed a person's approval."""


class ToolRefusedError(StepError):
    """A tool call outside its principal's permissions (or rejected by a reviewer): the tool
    did not run. Recorded with status `refused` (or `rejected`)."""

    def __init__(self, path: str, reason: str, *, status: str = "refused") -> None:
        super().__init__(path, reason)
        self.record_status = status
        """The step's status in the run store."""


def permission_problem(
    tool: str,
    requires: frozenset[str],
    check: Check | None,
    principal: Principal | None,
    arguments: dict[str, Any],
) -> str | None:
    """Why `principal` may not call `tool` with `arguments` (None: they may)."""
    if not requires and check is None:
        return None
    if principal is None:
        return (
            f"{tool} acts for a principal, and this run has none (set `principal:` in the "
            "workflow file, or RunContext.principal in code)"
        )
    missing = sorted(p for p in requires if not principal.may(p))
    if missing:
        return f"{principal.id} may not {', '.join(missing)}"
    if check is None:
        return None
    try:
        verdict = check(principal, arguments)
    except Exception as e:  # a check that fails refuses: never allow by accident
        return f"the permission check failed: {type(e).__name__}: {e}"
    if verdict is True:
        return None
    return verdict if isinstance(verdict, str) and verdict else f"{principal.id} may not do this"
