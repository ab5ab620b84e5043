"""What a triage run writes: one flat record per email in results.jsonl (`result_record`),
and after the batch digest.md, everything by priority, failed items included."""

from __future__ import annotations

import re
from pathlib import Path

from ...runtime.runner import BatchResult
from ...steps.context import RunContext
from ...untrusted import one_line, other_domains
from .triage_types import PRIORITY_ORDER, Triage
from .truth import cannot_reply


def result_record(triage: Triage) -> dict[str, object]:
    """The flat record of one triaged email, as written to results.jsonl."""
    c, x = triage.classification, triage.extraction
    return {
        "file": triage.email.source,
        "from": triage.email.sender,
        "subject": triage.email.subject,
        "category": c.category if c else None,
        "priority": c.priority if c else None,
        "summary": triage.summary,
        "request": x.request if x else None,
        "deadline": x.deadline if x else None,
        "order_numbers": x.order_numbers if x else [],
        "invoice_numbers": x.invoice_numbers if x else [],
        "needs_reply": x.needs_reply if x else False,
        "amounts": triage.amounts,
        "reply": triage.reply,
        "kind": triage.email.kind,
        "tiers": triage.tiers,
        "rejected": triage.rejected,
        "filed_as": triage.filed_as,
        "mailbox_message": triage.mailbox_message,
        "mailbox_actions": triage.mailbox_actions,
        "reply_message_id": triage.reply_message_id,
    }


_MARKUP = re.compile(r"([\\`*_\[\]<>!|~&])")
"""What Markdown reads inline: emphasis, code, links and images, raw HTML, table cells."""
_BLOCK = re.compile(r"^(?=[#>+=-]|\d+[.)])(\d*)")
"""What Markdown reads at a line's start: a heading, quote, list or rule."""


def _one_line(text: str, limit: int = 300) -> str:
    """Text from the mail (a subject, a sender, a summary) as one line of plain text in
    Markdown, cut at `limit` characters: a mail is from anyone, and its text must not add
    headings, entries, links, remote images or HTML to the digest, nor escape sequences."""
    return _BLOCK.sub(r"\1\\", _MARKUP.sub(r"\\\1", one_line(text, limit)))


def _replies_elsewhere(triage: Triage) -> list[str]:
    """The addresses of the mail's Reply-To at another domain than its From's, where a reply
    goes (ours, or a person's mail client): a mail claiming to be from a colleague can ask
    that replies go elsewhere."""
    return other_domains(triage.email.sender, triage.email.reply_to or "")


def write_digest(batch: BatchResult, ctx: RunContext) -> dict[str, Path]:
    """After the batch: digest.md by priority, and the failed items in results.jsonl."""
    if ctx.out_dir is None:
        return {}
    from ...durable.actions import append_line_once, write_once

    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    done = [r.output for r in batch.results if r.ok and isinstance(r.output, Triage)]
    done.sort(key=lambda t: PRIORITY_ORDER[t.classification.priority] if t.classification else 9)
    results = ctx.out_dir / "results.jsonl"
    # Safe to run again (a resumed run finishes again): each failed item's line is keyed by
    # the run and the item, and the digest is rewritten whole.
    for r in batch.failed:
        record = {"file": r.key, "error": str(r.error)}
        append_line_once(results, record, key=f"{batch.run_id}/failed/{r.key}")
    lines = [f"# Inbox digest — run {batch.run_id}", ""]
    lines.append(f"{len(done)} emails triaged, {len(batch.failed)} could not be read.")
    for priority in PRIORITY_ORDER:
        group = [t for t in done if t.classification and t.classification.priority == priority]
        if not group:
            continue
        lines += ["", f"## {priority.capitalize()} ({len(group)})", ""]
        for t in group:
            assert t.classification is not None
            lines.append(
                f"- **{_one_line(t.email.subject)}** — {_one_line(t.email.sender)} · "
                f"{t.classification.category}"
            )
            if t.summary:
                lines.append(f"  {_one_line(t.summary)}")
            if t.extraction and t.extraction.deadline:
                lines.append(f"  Deadline: {_one_line(t.extraction.deadline)}")
            if t.rejected:
                lines.append(
                    "  Model answers refused as unverified (code answered instead): "
                    + ", ".join(sorted(t.rejected))
                )
            if t.reply:
                lines.append("  A reply is drafted in results.jsonl.")
            if elsewhere := _replies_elsewhere(t):
                lines.append(
                    f"  Replies go to {_one_line(', '.join(elsewhere))} (its Reply-To), at "
                    "another domain than its From (a web form's, or a forged From)."
                )
            elif t.extraction and t.extraction.request and cannot_reply(t.email):
                lines.append(
                    "  No reply drafted: the sender cannot receive one (a no-reply address"
                    " or notice); what it asks needs action elsewhere."
                )
            if t.email.attachments:
                names = ", ".join(a.filename for a in t.email.attachments[:5])
                more = len(t.email.attachments) - 5
                lines.append(
                    f"  Attachments not read (ids, amounts and dates are from the text only): "
                    f"{_one_line(names, 200)}" + (f" and {more} more" if more > 0 else "")
                )
    by_code = [t for t in done if t.classification is None]
    if by_code:
        lines += ["", f"## Filed by code ({len(by_code)})", ""]
        lines += [
            f"- **{_one_line(t.email.subject)}** — {_one_line(t.email.sender)} · {t.email.kind}"
            f" ({_one_line(t.email.kind_reason or '')})"
            for t in by_code
        ]
    if batch.failed:
        lines += ["", "## Could not be read", ""]
        lines += [f"- {_one_line(r.key)}: {_one_line(str(r.error))}" for r in batch.failed]
    digest = ctx.out_dir / "digest.md"
    write_once(digest, "\n".join(lines) + "\n")
    return {"digest": digest, "results": results}
