"""Code steps of the email-triage template: ground the model's ids, file each email.

The emails are parsed by llmflow's email parser (`input: {type: email}`, the parser of the
Python email-triage app); the judgement and writing are LLM steps in workflow.yaml. What
stays code is what code does better: checking the ids the model extracted against the
email's text, checking the request and the deadline the same way as the Python app
(`llmflow.apps.email_triage.truth`: a request that copies the instructions or states a fact
the mail does not is replaced by the mail's own sentence; a deadline must be a date the mail
gives, as an ISO date, else the one code finds, else null), and filing the message.
"""

# No `from __future__ import annotations`: this file is loaded by path, outside sys.modules.
import re
from pathlib import Path
from typing import Any

from llmflow import RunContext
from llmflow.apps.email_triage.ids import INVOICE_ID, ORDER_ID, IdPattern

INSTRUCTIONS = Path(__file__).parent / "instructions"
MAX_IDS = 8


def _field(value: Any, name: str, default: Any = None) -> Any:
    """`value.name` for a model or an object, `value[name]` for a mapping."""
    if isinstance(value, dict):
        return value.get(name, default)
    return getattr(value, name, default)


def ground_ids(payload: dict[str, Any]) -> dict[str, Any]:
    """The model's extraction with its order and invoice numbers checked against the email:
    ids that do not occur in it are dropped, ids the patterns find are added (a small model
    misses some and invents others)."""
    email, extraction = payload["email"], dict(payload["extraction"])
    text = f"{_field(email, 'subject', '')}\n{_field(email, 'body', '')}"

    def occurs(found: str) -> bool:  # as a whole id: NW-1 does not occur in NW-10482
        return (
            bool(found) and re.search(rf"(?<![\w-]){re.escape(found)}(?![\w-])", text) is not None
        )

    def merge(found: list[str] | None, pattern: IdPattern) -> list[str]:
        kept = [i.strip() for i in found or [] if occurs(i.strip())]
        return list(dict.fromkeys([*kept, *pattern.findall(text)]))[:MAX_IDS]

    extraction["order_numbers"] = merge(extraction.get("order_numbers"), ORDER_ID)
    extraction["invoice_numbers"] = merge(extraction.get("invoice_numbers"), INVOICE_ID)
    return _checked(email, extraction)


def _checked(email: Any, extraction: dict[str, Any]) -> dict[str, Any]:
    """The request and deadline checked by code, when the email is llmflow's parsed one."""
    from llmflow.apps.email_triage import truth
    from llmflow.inputs.email import Email

    if not isinstance(email, Email):
        return extraction
    request = str(extraction.get("request") or "").strip()
    instructions = [(INSTRUCTIONS / "extract.md").read_text(encoding="utf-8")]
    if not request or truth.text_problems(request, email, instructions) is not None:
        extraction["request"] = truth.request_by_code(email)
    deadline, _ = truth.deadline_of_model(extraction.get("deadline"), email)
    deadline = deadline or truth.deadline_by_code(email)
    extraction["deadline"] = deadline.isoformat() if deadline else None
    return extraction


def file_email(payload: dict[str, Any], ctx: RunContext) -> dict[str, str | None]:
    """File the `email` under its `category` in the run's output folder
    (`<category>/<file>.eml`); returns where, relative to that folder."""
    email = payload["email"]
    category = str(payload.get("category") or "unsorted")
    if not re.fullmatch(r"[a-z_-]+", category):
        raise ValueError(f"cannot file under {category!r}: categories are lowercase words")
    if ctx.out_dir is None:
        return {"filed_as": None}
    source = str(_field(email, "source") or "email")
    name = Path(source.replace("#", "-")).name
    if not name.endswith(".eml"):
        name += ".eml"
    folder = ctx.out_dir / category
    folder.mkdir(parents=True, exist_ok=True)
    raw: bytes = _field(email, "raw", b"") or b""
    # The original bytes when the parser kept them; else the parsed text, so nothing is lost.
    content = (
        raw
        or (
            f"From: {_field(email, 'sender', '')}\nSubject: {_field(email, 'subject', '')}\n\n"
            f"{_field(email, 'body', '')}"
        ).encode()
    )
    (folder / name).write_bytes(content)  # the same file on a rerun: filing is idempotent
    return {"filed_as": f"{category}/{name}"}


def email_text(email: Any) -> str:
    """The email as the prompts show it: sender, subject, attachments, the newest message."""
    attachments = " ".join(
        str(_field(a, "filename", "")) for a in _field(email, "attachments") or []
    )
    lines = [f"From: {_field(email, 'sender', '')}", f"Subject: {_field(email, 'subject', '')}"]
    if attachments:
        lines.append(f"Attachments: {attachments}")
    return "\n".join([*lines, "", str(_field(email, "excerpt", "") or _field(email, "body", ""))])
