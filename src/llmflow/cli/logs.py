"""`llmflow runs show <run> --item KEY`: one item's step tree, with each model call's prompt
and output and each tool call's arguments and result, for reading in a terminal (like
`llm logs`). Long texts are cut to `CLIP` characters; `--full` prints them whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models.pricing import format_cost
from ..ui.format import messages, ms, pretty, seconds
from .app import out

if TYPE_CHECKING:
    from ..store.base import Row
    from ..store.sqlite import RunStore

CLIP = 400
"""Characters of a message, output or argument shown without --full."""
TOOL_KINDS = {"tool", "action", "approval"}


def print_item(store: RunStore, run: Row, key: str, *, full: bool = False) -> None:
    """Print item `key` of `run`: its status, then every step and model call in the order
    they started, indented by depth."""
    from decimal import Decimal

    item = store.find_item(run["id"], key)
    steps = store.item_rows("steps", item["id"])
    calls = store.item_rows("model_calls", item["id"])
    prefix = f"{run['workflow']}/"
    took = f" · took {seconds(item['ended_at'] - item['started_at'])}" if item["ended_at"] else ""
    tokens = sum((c["input_tokens"] or 0) + (c["output_tokens"] or 0) for c in calls
                 if not c["cached"])  # fmt: skip
    _line(f"item {item['key']} · {item['status']}{took} · {len(calls)} model calls · "
          f"{tokens:,} tokens · run {run['id']} ({run['workflow']})", style="bold")  # fmt: skip
    if item["error"]:
        _line(f"error: {item['error']}", style="red")

    entries: list[tuple[float, int, int, Any]] = []
    for s in steps:
        entries.append((float(s["started_at"]), str(s["path"]).count("/"), 0, s))
    for c in calls:
        entries.append((float(c["started_at"]), str(c["step_path"] or "").count("/") + 1, 1, c))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))

    def text(value: Any) -> str:
        shown = pretty(value)
        if full or len(shown) <= CLIP:
            return shown
        return shown[:CLIP] + f"… ({len(shown) - CLIP:,} more characters: --full shows all)"

    for _, depth, is_call, row in entries:
        pad = "  " * depth
        if not is_call:
            name = str(row["path"]).removeprefix(prefix)
            style = "bold magenta" if row["kind"] in TOOL_KINDS else "bold cyan"
            _line(f"{pad}▸ {name} ({row['kind']}) {row['status']} · {ms(row['latency_ms'])}",
                  style=style)  # fmt: skip
            if row["kind"] in TOOL_KINDS:
                _block(pad, "arguments", text(row["input"]))
                if row["output"] is not None:
                    _block(pad, "result", text(row["output"]))
            elif depth == 0 or row["kind"] in ("code", "ml", "rules"):
                _block(pad, "input", text(row["input"]))
                _block(pad, "output", text(row["output"]))
            if row["error"]:
                _block(pad, "error", text(row["error"]), style="red")
            continue
        cost = (
            "$0"
            if row["cached"]
            else format_cost(None if row["cost"] is None else Decimal(row["cost"]))
        )
        status = "cached" if row["cached"] else row["status"]
        tries = f" · {row['attempts']} attempts" if row["attempts"] > 1 else ""
        _line(f"{pad}• model call {row['model']} · {status} · {row['input_tokens'] or 0} in + "
              f"{row['output_tokens'] or 0} out tokens · {ms(row['latency_ms'])} · {cost}{tries}",
              style="yellow")  # fmt: skip
        for m in messages(row["prompt"]):
            _block(pad, m["role"], text(m["content"]))
        _block(pad, "output", text(row["response"]) if row["response"] is not None else "(none)")
        if row["error"]:
            _block(pad, "error", text(row["error"]), style="red")


def _line(text: str, style: str | None = None) -> None:
    out.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _block(pad: str, label: str, body: str, style: str | None = None) -> None:
    lines = body.splitlines() or [""]
    _line(f"{pad}    {label}: {lines[0]}", style=style)
    for line in lines[1:]:
        _line(f"{pad}      {line}", style=style)


def item_json(store: RunStore, run: Row, key: str) -> dict[str, Any]:
    """Item `key` of `run` with its steps and model calls, for `--json`."""
    item = store.find_item(run["id"], key)
    return {
        "item": dict(item),
        "steps": [dict(s) for s in store.item_rows("steps", item["id"])],
        "model_calls": [
            {**dict(c), "cost_usd": dict(c).get("cost")}
            for c in store.item_rows("model_calls", item["id"])
        ],
    }
