"""What the rest of llmflow asks of a run store: the `Store` protocol, and the records it takes.

`store.sqlite.RunStore` is today's implementation (one file per state directory). Another
store (PostgreSQL, for runs recorded by workers on several machines) implements the same
protocol and passes the same contract tests (`tests/test_store_contract.py`). The store
knows only its own record types, never the gateway's or the steps': the recorder
(`runtime.recording`) turns those into `CallRecord`s and plain values. A store writes every
text through `llmflow.redact.redact`, so that no credential reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol


class Row(Protocol):
    """A row read back: columns by name (`row["status"]`) and `keys()`."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...


def usage_cost(row: Row) -> Decimal | None:
    """A `Store.usage` (or `step_usage`, `cost_by`) row's cost in dollars, exact, from its
    `cost_pico` (dollars x 10^12); None when a call's price is unknown."""
    if row["unpriced"]:
        return None
    return Decimal(int(row["cost_pico"] or 0)) / Decimal(10**12)


@dataclass(slots=True, kw_only=True)
class CallRecord:
    """One model call as the store keeps it."""

    id: str
    """Unique id of the call (a call in flight is recorded again under it when it ends)."""
    model: str
    """The model name as resolved (`local`, `openai:gpt-4.1-mini`)."""
    provider: str
    """The provider key (credentials never included)."""
    prompt: str | None
    """The request as JSON."""
    response: str | None
    """The answer: text, or the tool calls as JSON; None when the call failed."""
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    attempts: int
    status: str
    """ok | failed | running (sent, no answer yet) | interrupted (cut off)."""
    error: str | None
    started_at: float
    cost: str | None
    """Dollars as a decimal string; None: the price is unknown."""
    cached: bool


class Store(Protocol):
    """A run store: runs, items, steps, model calls, the response cache and corrections."""

    # -- writing: queued, committed together by `flush` (the recorder flushes per item) ----

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def start_run(
        self,
        run_id: str,
        *,
        workflow: str,
        model: str | None,
        source: str | None,
        out_dir: str | None,
        items_total: int,
        commit: bool = True,
    ) -> None: ...

    def resume_run(self, run_id: str) -> None: ...

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        items_ok: int,
        items_failed: int,
        error: str | None,
        items_total: int | None = None,
    ) -> None: ...

    def start_item(self, item_id: str, *, run_id: str, key: str) -> None: ...

    def end_item(
        self, item_id: str, *, status: str, output: Any, error: BaseException | None
    ) -> None: ...

    def add_step(
        self,
        *,
        run_id: str | None,
        item_id: str | None,
        path: str,
        kind: str,
        input: Any,
        output: Any,
        error: BaseException | None,
        started_at: float,
        latency_s: float,
    ) -> None: ...

    def add_call(self, call: CallRecord, *, run_id: str | None, item_id: str | None,
                 step_path: str) -> None: ...  # fmt: skip

    def interrupt_calls(self, run_id: str) -> None: ...

    def correct(self, item_id: str, step: str, label: str, note: str | None = None) -> None: ...

    def add_decision(
        self,
        *,
        run_id: str | None,
        item_id: str | None,
        path: str,
        step: str,
        model: str | None,
        tier: str,
        label: str,
        confidence: float | None,
        attempts: Sequence[dict[str, Any]],
        audit_label: str | None,
        created_at: float,
    ) -> None:
        """Record a cascade's decision on an item: the tier that answered, every tier tried,
        and the last tier's label when it audited the answer (one record per item and path)."""
        ...

    # -- the response cache -----------------------------------------------------------------

    def cache_get(self, key: str) -> str | None: ...

    def cache_put(self, key: str, model: str, response: str) -> None: ...

    def cache_drop(self, key: str) -> None: ...

    # -- reading ----------------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool: ...

    def runs(self, limit: int = 20) -> Sequence[Row]: ...

    def find_run(self, run_id: str) -> Row: ...

    def latest_run(self, workflow: str, model: str) -> Row | None: ...

    def find_item(self, run_id: str, key: str) -> Row: ...

    def rows(self, table: str, run_id: str) -> Sequence[Row]: ...

    def stream(self, table: str, run_id: str) -> Iterator[Row]:
        """`rows`, read as iterated: a run of any size in constant memory."""
        ...

    def call_costs(self, run_id: str | None = None) -> Sequence[Row]: ...

    def decisions(self, step: str, workflow: str | None = None) -> Sequence[Row]: ...

    def cascade_decisions(
        self,
        step: str,
        workflow: str | None = None,
        *,
        since: float | None = None,
        model: str | None = None,
    ) -> Sequence[Row]:
        """Recorded decisions of cascade `step` (of `workflow`, since a time, on a model),
        oldest first: rows of (run_id, item_id, model, tier, label, confidence, attempts as
        JSON, audit_label, correction, created_at)."""
        ...

    # -- paged reading (the viewer, `runs list|show`) ----------------------------------------
    # A run's totals are kept as its rows are written (items by status; per step path; per
    # step path, model and day of its model calls), counting a resumed run's new and rerun
    # items as they land: `usage`, `step_usage`, `item_counts` and `cost_by` read them and
    # never sum a run's rows, so they take the same time on a run of 10 or 100,000 items.
    # Their usage columns: calls, cached, input_tokens, output_tokens (cache hits excluded),
    # cost (float dollars), cost_pico (exact: `usage_cost`), unpriced, failed, latency_ms.

    def run_page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        workflow: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Sequence[Row]: ...

    def workflows(self) -> list[str]: ...

    def usage(self, run_ids: Sequence[str]) -> Mapping[str, Row]: ...

    def item_page(
        self, run_id: str, *, limit: int = 50, offset: int = 0, status: str | None = None
    ) -> Sequence[Row]: ...

    def item_counts(self, run_id: str) -> dict[str, int]: ...

    def step_usage(self, run_id: str) -> Sequence[Row]: ...

    def item(self, item_id: str) -> Row | None: ...

    def item_rows(self, table: str, item_id: str) -> Sequence[Row]: ...

    def call(self, call_id: str) -> Row | None: ...

    def cost_by(self, by: str, *, since: float | None = None) -> Sequence[Row]:
        """Usage grouped by day, workflow, step or model (column `key`), from the local day
        of `since` on (whole days)."""
        ...
