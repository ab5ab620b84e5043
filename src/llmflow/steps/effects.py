"""How a run carries out side effects and asks people for approval.

Steps never import the durable engine: they ask their context (`ctx.effects`). The default,
`Effects`, runs an effect directly under its idempotency key and has nobody to ask for
approval; a durable run installs `durable.effects.DurableEffects`, which checkpoints each
effect (run once, even across a crash) and waits durably for `llmflow approve|reject`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from ..errors import ConfigError
from .idempotency import idempotency_key

if TYPE_CHECKING:
    from .context import RunContext

T = TypeVar("T")
Outcome = Literal["approve", "reject"]


class Decision(BaseModel):
    """Someone's answer to an approval request (or the default, at the timeout)."""

    approved: bool
    """Whether the action may go ahead."""
    comment: str | None = None
    """What the reviewer said."""
    by: str | None = None
    """Who decided (the OS user of `llmflow approve`), or `timeout`."""
    at: float = 0.0
    """When, in seconds since the epoch."""


class Effects:
    """Effects run directly; approvals are refused (there is no durable run to wait in)."""

    durable = False
    """Whether effects are checkpointed and approvals can wait."""
    approvals = False
    """Whether `approval` reaches a person outside a durable run (`llmflow chat` asks at
    the terminal; tests decide in code)."""

    async def run(self, fn: Callable[[], Awaitable[T]], ctx: RunContext) -> T:
        """Run a side effect with its idempotency key set (`current_idempotency_key()`)."""
        run_id = ctx.run_id
        if not run_id and not ctx.item_id:  # `run(step, input)`: no ids, yet each run is another
            run_id = f"local-{uuid.uuid4().hex}"
        with idempotency_key("/".join(p for p in (run_id, ctx.item_id, ctx.path) if p)):
            return await fn()

    async def approval(
        self,
        ctx: RunContext,
        prompt: str,
        *,
        timeout_s: float | None = None,
        default: Outcome = "reject",
        details: dict[str, Any] | None = None,
    ) -> Decision:
        """Wait for a person's decision on the action at `ctx.path`."""
        raise ConfigError(
            f"{ctx.path}: an approval needs a durable run (llmflow run, or "
            "llmflow.durable.run_durable in Python) to wait in"
        )


DIRECT = Effects()
"""Effects of runs that are not durable."""
