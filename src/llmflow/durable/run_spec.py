"""What a process needs to rebuild a durable run: the `RunSpec` every item workflow carries
as JSON, and the digests that tell a resume whether the code or the inputs changed under it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import ConfigError
from ..models.budget import Budget
from ..runtime.runner import Item
from ..steps.base import Step


class CodeChangedError(ConfigError):
    """A run is resumed with workflow code whose steps differ from the code it started with."""


class RunSpec(BaseModel):
    """What a process needs to rebuild a run: stored with every item workflow, as JSON."""

    run_id: str
    workflow: str
    """The workflow's registered name or `module:attr`."""
    source: str | None
    """The input (file or folder) `workflow.load` reads."""
    items_total: int
    keys_digest: str
    """A digest of the item keys: the inputs must not change under a run."""
    code: str
    """A fingerprint of the workflow's step tree (`fingerprint`)."""
    model: str | None = None
    base_url: str | None = None
    """The endpoint, without credentials (a resume takes them from OPENAI_BASE_URL)."""
    concurrency: int = 4
    out_dir: str | None = None
    cache: bool = True
    max_cost: str | None = None
    max_tokens: int | None = None
    max_requests: int | None = None
    max_cost_per_item: str | None = None
    gateway: str | None = None
    """`module:attr` of a function(Settings) -> Gateway (custom providers, tests)."""
    call_checkpoints: Literal["store", "dbos"] = "store"
    """Where completed model calls are checkpointed: `store`, the run store, with the calls'
    records (`ledger.py`); `dbos`, as DBOS steps (runs started before llmflow had the ledger,
    whose stored specs lack this field: `stored` reads them so)."""

    @classmethod
    def stored(cls, data: dict[str, Any]) -> RunSpec:
        """A spec as an item workflow stored it."""
        return cls.model_validate({"call_checkpoints": "dbos", **data})

    def budget(self) -> Budget | None:
        if self.max_cost is None and self.max_tokens is None and self.max_requests is None:
            return None
        return Budget(
            max_cost=Decimal(self.max_cost) if self.max_cost else None,
            max_tokens=self.max_tokens,
            max_requests=self.max_requests,
        )

    def item_budget(self) -> Callable[[], Budget] | None:
        if self.max_cost_per_item is None:
            return None
        per_item = Decimal(self.max_cost_per_item)
        return lambda: Budget(
            max_cost=per_item, scope="item", flags={"cost": "--max-cost-per-item"}
        )


def fingerprint(step: Step[Any, Any]) -> str:
    """A digest of the step tree's names, kinds and classes: what a replay depends on.
    (Prompts may change between a crash and a resume; the shape of the run may not.)"""

    def shape(s: Step[Any, Any], role: str) -> list[Any]:
        return [role, s.name, s.kind, type(s).__qualname__, [shape(c, r) for r, c in s.children()]]

    return hashlib.sha256(repr(shape(step, "")).encode()).hexdigest()[:16]


def keys_digest(items: Sequence[Item]) -> str:
    return hashlib.sha256("\n".join(i.key for i in items).encode()).hexdigest()[:16]
