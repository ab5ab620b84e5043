"""The hard inbox (`apps/email_triage/hard_inbox/`, issue 13's test set of harder mails):
every mail parses as its labels say, headers are recognised by code, the gold files cover
every mail, and the code tier states nothing the mails do not. No model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmflow.apps.email_triage import SAMPLE_INBOX, parse_email, truth
from llmflow.apps.email_triage.workflow import INSTRUCTIONS, INVOICE_ID, ORDER_ID
from llmflow.inputs.email import EXCERPT_CHARS

HARD_INBOX = SAMPLE_INBOX.parent / "hard_inbox"
MAILS = sorted(p.name for p in HARD_INBOX.glob("*.eml"))


def rows(name: str) -> dict[str, dict[str, Any]]:
    lines = (HARD_INBOX / name).read_text(encoding="utf-8").splitlines()
    return {r["file"]: r for r in (json.loads(line) for line in lines if line.strip())}


LABELS = rows("labels.jsonl")
GOLD = rows("gold-facts.jsonl")


def test_the_labels_and_the_gold_facts_cover_every_mail() -> None:
    assert len(MAILS) >= 20
    assert sorted(LABELS) == MAILS
    assert sorted(GOLD) == MAILS
    for name, label in LABELS.items():
        assert label["kind"] in ("message", "auto-reply", "bulk", "empty"), name
        assert label["priority"] in ("urgent", "high", "normal", "low"), name
        if label["kind"] == "message":
            assert label["category"] in ("billing", "support", "sales", "internal", "spam")
        else:  # filed by code, never classified
            assert label["category"] is None and not label["needs_reply"], name
        gold = GOLD[name]
        assert gold["needs_reply"] == label["needs_reply"], name
        assert bool(gold["request"]) == bool(gold["request_terms"]), name
        for amount in gold["amounts"]:
            value, currency = amount.split()
            assert float(value) >= 0 and len(currency) == 3, (name, amount)


@pytest.mark.parametrize("name", MAILS)
def test_every_hard_mail_parses_as_its_label_says(name: str) -> None:
    email = parse_email(HARD_INBOX / name)
    assert email.kind == LABELS[name]["kind"], (name, email.kind_reason)
    assert email.sender and email.date and email.date.startswith("2026-1")
    assert len(email.excerpt) <= EXCERPT_CHARS
    if email.kind != "empty":
        assert email.body and email.excerpt, name


def test_the_empty_mail_is_an_empty_message_not_an_error() -> None:
    email = parse_email(HARD_INBOX / "118-empty.eml")
    assert email.kind == "empty" and email.body == "" and email.excerpt == ""
    assert not truth.needs_reply_by_code(email, None)


def test_auto_replies_and_bulk_mail_are_recognised_by_their_headers() -> None:
    reasons = {
        name: parse_email(HARD_INBOX / name).kind_reason
        for name, label in LABELS.items()
        if label["kind"] in ("auto-reply", "bulk")
    }
    assert reasons == {
        "107-out-of-office-supplier.eml": "Auto-Submitted: auto-replied",
        "108-abwesenheit-kunde.eml": "X-Autoreply: yes",
        "109-carrier-ticket-ack.eml": "Precedence: auto_reply",
        "110-newsletter-retail-weekly.eml": "List-Unsubscribe header",
        "111-catalogue-precedence-bulk.eml": "Precedence: bulk",
    }


def test_cjk_and_right_to_left_bodies_are_decoded() -> None:
    decoded = {
        "101-double-charge-chinese.eml": "扣了两次",  # GB2312, base64
        "102-haisou-japanese.eml": "届いていません",  # ISO-2022-JP, base64
        "103-wholesale-inquiry-chinese.eml": "报价",
        "104-return-arabic.eml": "ملصق الإرجاع",
        "105-hashbonit-hebrew.eml": "חשבונית מס",
        "122-tents-quote-arabic.eml": "عرض سعر",
        "123-fapiao-spam-chinese.eml": "发票",
    }
    for name, text in decoded.items():
        email = parse_email(HARD_INBOX / name)
        assert text in email.body, name
    assert "重复扣款" in parse_email(HARD_INBOX / "101-double-charge-chinese.eml").subject


def test_the_forward_is_read_as_the_forwarded_mail() -> None:
    email = parse_email(HARD_INBOX / "106-forwarded-outage-report.eml")
    assert email.forwarded and email.forwarded.sender.endswith("<status@paygate.example>")
    assert "9 December 2026" in email.excerpt and "Can you check" in email.excerpt


def test_the_long_mail_keeps_its_request_at_the_end() -> None:
    path = HARD_INBOX / "112-stock-count-very-long.eml"
    assert path.stat().st_size > 100_000
    email = parse_email(path)
    assert len(email.body) > 100_000
    assert "approve writing off" in email.excerpt
    assert "approve writing off" in truth.request_by_code(email)


def test_attachments_are_listed() -> None:
    csv = parse_email(HARD_INBOX / "114-climbing-gym-quote-csv.eml").attachments
    pdf = parse_email(HARD_INBOX / "115-facture-ecart-pdf.eml").attachments
    assert [(a.filename, a.content_type) for a in csv] == [("rental-gear.csv", "text/csv")]
    assert [(a.filename, a.content_type) for a in pdf] == [("INV-2026-0412.pdf", "application/pdf")]
    assert pdf[0].size > 300


@pytest.mark.parametrize("name", [n for n in MAILS if LABELS[n]["kind"] == "message"])
def test_the_code_tier_states_nothing_the_mail_does_not(name: str) -> None:
    """As bench/triage_truth.py scores it: 0 grounding violations in every field code
    writes (summary, request, deadline, ids, reply)."""
    email = parse_email(HARD_INBOX / name)
    instructions = [p.read_text(encoding="utf-8") for p in sorted(INSTRUCTIONS.glob("*.md"))]
    category = LABELS[name]["category"]
    summary = truth.summary_by_code(email)
    assert truth.text_problems(summary, email, instructions) is None, summary
    if request := truth.request_by_code(email):
        assert truth.text_problems(request, email, instructions) is None, request
    if deadline := truth.deadline_by_code(email):
        assert truth.deadline_of_model(deadline.isoformat(), email) == (deadline, None)
    text = f"{email.subject}\n{email.body}"
    ids = [*ORDER_ID.findall(text), *INVOICE_ID.findall(text)]
    reply = truth.reply_by_code(email, category, ids)
    assert truth.reply_problems(reply, email) == [], reply
