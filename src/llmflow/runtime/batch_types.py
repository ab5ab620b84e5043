"""What a batch run takes and gives: the `Workflow` (a step, how to load its items, what to do
after), each `Item` and its `ItemResult`, the `BatchResult`, and how an item is executed
(`ItemExecutor`). `runner.py` runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..steps.base import Step
from ..steps.context import RunContext


@dataclass(slots=True)
class Item:
    """One input of a batch."""

    key: str
    """Its name in the batch (a file name, a message number)."""
    value: Any
    """The input handed to the workflow's step."""


@dataclass(slots=True, kw_only=True)
class ItemResult:
    """What became of one item."""

    key: str
    """The item's key."""
    output: Any = None
    """The step's output, when it succeeded."""
    error: BaseException | None = None
    """Why it failed, when it did."""

    @property
    def ok(self) -> bool:
        return self.error is None


RunStatus = Literal["ok", "partial", "failed", "interrupted", "stopped"]


@dataclass(slots=True, kw_only=True)
class BatchResult:
    """The outcome of a batch run."""

    run_id: str
    """The run's id in the store."""
    workflow: str
    """The workflow's name."""
    results: list[ItemResult]
    """One per item, in input order (only the items that ran, if interrupted)."""
    status: RunStatus = "ok"
    """ok: every item succeeded; partial: some failed; failed: all failed; interrupted (by
    Ctrl-C); stopped (by the run's budget, or a provider that is down: `error` says
    which)."""
    error: str | None = None
    """Why the run stopped early, when it did."""
    out_dir: Path | None = None
    """Where the run wrote its files."""
    artifacts: dict[str, Path] = field(default_factory=dict)
    """Files the workflow's finish step wrote (e.g. `digest`)."""
    not_started: int = 0
    """Items never started because the run's budget could not hold them (status `stopped`)."""

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]


Finish = Callable[[BatchResult, RunContext], dict[str, Path]]
Loader = Callable[[Path], list[Item]]


@dataclass(slots=True, kw_only=True)
class Workflow:
    """A step to run on each item of a batch, how to load the batch, and what to do after."""

    name: str
    """The workflow's name (the root of every step path)."""
    step: Step[Any, Any]
    """What runs on each item."""
    load: Loader | None = None
    """Turns a CLI input (file or folder) into items."""
    finish: Finish | None = None
    """Batch-level actions after every item ran (e.g. a digest); returns the files written."""
    description: str = ""
    """One line for `--help` and listings."""
    columns: Callable[[Any], dict[str, str]] | None = None
    """The columns of an item's output in the CLI's result table."""


ItemExecutor = Callable[[int, Item], Awaitable[ItemResult]]
"""How one item of a batch is executed: in this process (`BatchRun.run_item`), or by the
durable engine as a checkpointed workflow that may run in another process."""
