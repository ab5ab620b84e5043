"""What a step sees while it runs: ids, its path, the gateway, the hooks, the output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.budget import Budget
from ..models.gateway import Gateway, ModelCall
from .effects import DIRECT, Effects
from .principal import ActionRecord, Principal

if TYPE_CHECKING:
    from .base import Step


class RunHooks:
    """Callbacks on a run's life. Every method is a no-op: override what you need.

    Recording to the run store is a hook like any other (`store.StoreRecorder`). Hooks are
    synchronous and must be quick: they run on the event loop between steps. Arguments are
    keyword-only and `**kwargs` absorbs ones added later.
    """

    def on_run_start(
        self, ctx: RunContext, *, workflow: str, items: int, resuming: bool, **kwargs: Any
    ) -> None:
        """A batch run starts, or runs again (`resuming`); `ctx.run_id` is its id."""

    def on_run_end(
        self,
        ctx: RunContext,
        *,
        workflow: str,
        status: str,
        items_ok: int,
        items_failed: int,
        error: str | None,
        **kwargs: Any,
    ) -> None:
        """A batch run ends, with its status (ok, partial, failed, interrupted, stopped)."""

    def on_item_start(self, ctx: RunContext, *, key: str, **kwargs: Any) -> None:
        """An item of a batch starts."""

    def on_item_end(
        self,
        ctx: RunContext,
        *,
        key: str,
        output: Any,
        error: BaseException | None,
        started_at: float,
        **kwargs: Any,
    ) -> None:
        """An item of a batch ends, with its output or the error that failed it."""

    def on_step_end(
        self,
        ctx: RunContext,
        *,
        step: Step[Any, Any],
        input: Any,
        output: Any,
        error: BaseException | None,
        started_at: float,
        latency_s: float,
        **kwargs: Any,
    ) -> None:
        """A step ends (`ctx.path` is its path), with its output or error."""

    def on_model_call_start(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        """A model call is about to be sent (durable runs only: `call.response` is None)."""

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        """A model call ends, successful or not."""


@dataclass(slots=True, kw_only=True)
class RunContext:
    """The context of one step's execution. Steps make a child context for each sub-step."""

    gateway: Gateway
    """Where every model call goes."""
    run_id: str | None = None
    """The run this belongs to (None outside a recorded run)."""
    item_id: str | None = None
    """The batch item this belongs to."""
    path: str = ""
    """The step path, e.g. `email-triage/classify`."""
    model: str | None = None
    """The run's default model (a step may name its own); None: the gateway's default."""
    hooks: tuple[RunHooks, ...] = ()
    """Observers of steps and model calls."""
    out_dir: Path | None = None
    """Where action steps write files, when the run has such a folder."""
    budgets: tuple[Budget, ...] = ()
    """Budgets every model call in this context must fit (the run's, the item's)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Run parameters for user steps (shared by the whole run)."""
    effects: Effects = DIRECT
    """How side effects and approvals are carried out (durable runs install their own)."""
    principal: Principal | None = None
    """Who the input is from and what they may act on: set by code from the input (a
    workflow file's `principal:`), never by a model; tools see it (`current_principal()`)."""
    actions: list[ActionRecord] = field(default_factory=list)
    """The tool calls of this item so far (allowed, refused, rejected), shared by its steps:
    what `claims_match_actions` checks a reply against."""

    def child(self, name: str) -> RunContext:
        """The context of a sub-step called `name`."""
        # Spelled out rather than dataclasses.replace: this runs for every step, and replace
        # costs several times as much.
        return RunContext(
            gateway=self.gateway,
            run_id=self.run_id,
            item_id=self.item_id,
            path=f"{self.path}/{name}" if self.path else name,
            model=self.model,
            hooks=self.hooks,
            out_dir=self.out_dir,
            budgets=self.budgets,
            extras=self.extras,
            effects=self.effects,
            principal=self.principal,
            actions=self.actions,
        )

    def for_item(self, item_id: str, *extra_budgets: Budget) -> RunContext:
        """The root context of one batch item, with budgets of its own added."""
        return RunContext(
            gateway=self.gateway,
            run_id=self.run_id,
            item_id=item_id,
            path=self.path,
            model=self.model,
            hooks=self.hooks,
            out_dir=self.out_dir,
            budgets=(*self.budgets, *extra_budgets),
            extras=self.extras,
            effects=self.effects,
            principal=self.principal,
            actions=[],
        )

    def on_model_call_start(self, call: ModelCall) -> None:
        """A call about to be sent, for hooks that keep a record of calls in flight."""
        for hook in self.hooks:
            hook.on_model_call_start(self, call=call)

    def on_model_call(self, call: ModelCall) -> None:
        """The gateway's observer: hand the call's record to every hook."""
        for hook in self.hooks:
            hook.on_model_call(self, call=call)
