"""How the viewer writes values: money, tokens, times, JSON, clipped texts, bar charts.

Every text the templates show goes through `llmflow.redact` (the Jinja environment's
`finalize`) and is HTML-escaped (autoescape): a mail holding `<script>` is shown as text.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from ..redact import redact


def money(value: float | None, unpriced: int | None = 0) -> str:
    if unpriced:
        return "unknown"
    if not value:
        return "$0"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def count(value: int | float | None) -> str:
    return f"{int(value or 0):,}"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def ms(value: float | None) -> str:
    return "" if value is None else seconds(value / 1000)


def pretty(text: Any) -> str:
    """JSON text indented (other text as it is)."""
    if text is None:
        return ""
    if not isinstance(text, str):
        return json.dumps(text, indent=2, ensure_ascii=False, default=repr)
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def clip(text: Any, n: int = 160) -> str:
    """A text cut to `n` characters, on one line."""
    if text is None:
        return ""
    one = " ".join(str(text).split())
    return one if len(one) <= n else one[: n - 1] + "…"


def messages(prompt: str | None) -> list[dict[str, str]]:
    """A recorded request's messages as (role, text) for display."""
    if not prompt:
        return []
    try:
        request = json.loads(prompt)
    except ValueError:
        return [{"role": "request", "content": prompt}]
    found = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(found, list):
        return [{"role": "request", "content": pretty(prompt)}]
    shown = []
    for m in found:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if not isinstance(content, str):
            content = pretty(json.dumps(content)) if content is not None else ""
        if m.get("tool_calls"):
            content = (content + "\n" if content else "") + pretty(json.dumps(m["tool_calls"]))
        shown.append({"role": str(m.get("role", "?")), "content": content})
    return shown


def request_extras(prompt: str | None) -> dict[str, str]:
    """What a request asked besides its messages (schema, tools, sampling), as JSON texts."""
    try:
        request = json.loads(prompt or "")
    except ValueError:
        return {}
    if not isinstance(request, dict):
        return {}
    return {k: pretty(json.dumps(v)) for k, v in request.items() if k != "messages" and v}


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    text: str


def bars(rows: list[Bar], *, width: int = 640, row: int = 22) -> Markup:
    """A horizontal bar chart as inline SVG, every label escaped."""
    if not rows:
        return Markup('<p class="muted">no model calls recorded</p>')
    top = max(r.value for r in rows) or 1.0
    label_w, text_w = 260, 110
    span = width - label_w - text_w
    height = row * len(rows) + 4
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, r in enumerate(rows):
        y = i * row + 2
        w = max(1.0, span * r.value / top) if r.value else 0.0
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row * 0.68:.1f}" text-anchor="end">'
            f"{escape(clip(redact(r.label), 40))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" rx="2"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.68:.1f}">{escape(r.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
