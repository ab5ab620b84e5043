"""The triage's steps on a real mailbox: act on the message's IMAP server, and send its reply
over SMTP, only when a person approved that exact message.

Both do nothing for a run that did not read a mailbox. What the run may do is in its
snapshot's manifest (`llmflow run --send-replies ... --dry-run`), so a resumed run does the
same as the run it finishes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ...steps.context import RunContext
from ...untrusted import domains, one_line, other_domains

if TYPE_CHECKING:
    from .workflow import Triage


def act_on_server(triage: Triage, ctx: RunContext) -> Triage:
    """On a message read over IMAP: the keyword `$llmflow-<category>`, `\\Flagged` when
    urgent, the drafted reply saved in Drafts threaded to it, then a copy or a move to
    `<folder>/<Category>` when the source URL says `file=copy|move`. Each action is keyed by
    the message and this step and checks the server first: never done twice. In a dry run,
    says what it would do instead."""
    from ...inputs.imap import (
        MessageActions,
        act_in_mailbox,
        draft_message_id,
        run_options,
        snapshot_message,
        triage_folder,
    )

    found = snapshot_message(ctx.run_id, triage.email.source)  # the run's id is the snapshot's
    if found is None:
        return triage
    ref, raw = found
    c = triage.classification
    category = c.category if c else "unsorted"
    flags = [f"$llmflow-{category}"] + (["\\Flagged"] if c and c.priority == "urgent" else [])
    copy_to, move_to = triage_folder(ref, category)
    actions = MessageActions(flags=flags, draft=triage.reply, copy_to=copy_to, move_to=move_to)
    key = f"{ref.identity}#{ctx.path}"
    dry_run = run_options(ctx.run_id).dry_run
    done = act_in_mailbox(triage.email, actions, ref=ref, raw=raw, key=key, dry_run=dry_run)
    return triage.model_copy(
        update={
            "mailbox_message": ref.identity,
            "mailbox_actions": done,
            "reply_message_id": draft_message_id(key) if triage.reply else None,
        }
    )


def sends_replies(run_id: str | None) -> bool:
    """Whether run `run_id` sends replies (`--send-replies`): each one waits for approval."""
    from ...inputs.imap import run_options

    return run_id is not None and run_options(run_id).send is not None


def approval_prompt(triage: Triage, to: list[str], subject: str, location: str) -> str:
    """What a person is asked before reply `triage.reply` is sent to `to`. The mail's From
    and Subject are one line each, without control characters (they are the sender's
    words, shown in a terminal by `llmflow approvals list`); a reply that goes to
    another domain than the From's (the mail's Reply-To) says so: a mail can claim to be
    from a colleague and ask that replies go elsewhere."""
    mail = triage.email
    senders = domains(mail.sender)
    elsewhere = other_domains(mail.sender, to)
    warning = (
        f"Note: {one_line(', '.join(elsewhere))} is not at the domain of the mail's From "
        f"({', '.join(sorted(senders)) or 'none'}): the mail asks replies to go there "
        "(Reply-To), and its From can be forged.\n"
        if elsewhere and mail.reply_to
        else ""
    )
    return (
        f"Send this reply to {one_line(', '.join(to))} via {location}?\n{warning}"
        f"Subject: {one_line(subject)}\n"
        f"In reply to: {one_line(mail.sender)}: {one_line(mail.subject)}\n\n"
        f"{triage.reply}"
    )


async def send_reply(triage: Triage, ctx: RunContext) -> Triage:
    """Send the drafted reply when the run was given an SMTP server (`--send-replies`):
    first checked against what was sent before and the limits, then shown to a person
    (a durable approval: `llmflow approvals list`, `llmflow approve|reject`, the viewer's
    approvals inbox), then sent as exactly the message approved, once. A rejected or
    refused reply is recorded, not sent; its draft stays in Drafts. A dry run only says
    what it would ask."""
    from ...inputs.imap import parse_source, reply_message, run_options, snapshot_message
    from ...inputs.smtp import draft_digest, parse_target, recipients, refusal, send_approved

    options = run_options(ctx.run_id)
    found = snapshot_message(ctx.run_id, triage.email.source)
    if options.send is None or found is None or not triage.reply or not triage.reply_message_id:
        return triage
    ref, raw = found
    target = parse_target(options.send)
    sender = parse_source(ref.url, ref.user).from_address()
    mid = triage.reply_message_id
    message = reply_message(triage.email, raw, triage.reply, sender=sender, message_id=mid)
    to, subject = ", ".join(recipients(message)), str(message["Subject"])

    def record(line: str) -> Triage:
        return triage.model_copy(update={"mailbox_actions": [*triage.mailbox_actions, line]})

    if not sender:
        return record("not sent: the reply has no From: add from=you@example.com to the URL")
    if options.dry_run:
        return record(f"would ask to send to {to} via {target.location}: {subject!r} ({mid})")
    run_id = ctx.run_id or ""

    async def check() -> str | None:
        return refusal(target, run_id, mid)

    refused = await ctx.effects.run(check, ctx.child("check"))
    if refused is not None:  # sent before, or a limit reached: nobody is asked
        return record(f"not sent: {refused}")
    digest = draft_digest(message)
    prompt = approval_prompt(triage, recipients(message), subject, target.location)
    details = {"action": "send a reply", "from": sender, "to": to, "subject": subject,
               "message_id": mid, "in_reply_to": triage.email.message_id,
               "smtp": target.location, "text": triage.reply, "digest": digest}  # fmt: skip
    decision = await ctx.effects.approval(ctx, prompt, details=details)
    if not decision.approved:
        who = decision.by or "a reviewer"
        return record(f"not sent: rejected by {who}" + (f": {decision.comment}" if
                                                        decision.comment else ""))  # fmt: skip

    async def send() -> str:
        return await asyncio.to_thread(
            send_approved, message, target, approved=digest, run_id=run_id
        )

    return record(await ctx.effects.run(send, ctx.child("smtp")))
