from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest

from llmflow import InputError
from llmflow.apps.email_triage import load_inbox, parse_email
from llmflow.inputs.email import Email, RawEmail, newest_message
from tests.mails import message, parsed


def good_files(inbox: Path) -> list[str]:
    return [json.loads(line)["file"] for line in (inbox / "labels.jsonl").read_text().splitlines()]


def test_the_sample_inbox_is_large_and_varied_enough(inbox: Path) -> None:
    labels = [json.loads(line) for line in (inbox / "labels.jsonl").read_text().splitlines()]
    assert len(labels) >= 30
    assert {row["category"] for row in labels} == {
        "billing",
        "support",
        "sales",
        "internal",
        "spam",
    }


def test_every_good_sample_email_parses(inbox: Path) -> None:
    for name in good_files(inbox):
        email = parse_email(inbox / name)
        assert email.sender and email.subject and len(email.body) > 40, name
        assert email.excerpt and len(email.excerpt) <= 1500


def test_the_malformed_sample_is_rejected_naming_the_file(inbox: Path) -> None:
    with pytest.raises(InputError, match=r"099-malformed\.eml: not an email"):
        parse_email(inbox / "099-malformed.eml")


def test_html_only_mail_becomes_text(inbox: Path) -> None:
    email = parse_email(inbox / "004-payment-failed-subscription.eml")
    assert "<" not in email.body and "payment" in email.body.lower()


def test_attachments_are_listed(inbox: Path) -> None:
    email = parse_email(inbox / "006-hosting-receipt-pdf.eml")
    (attachment,) = email.attachments
    assert attachment.filename.endswith(".pdf")
    assert attachment.content_type == "application/pdf" and attachment.size > 1000


def test_non_english_mail_is_decoded(inbox: Path) -> None:
    email = parse_email(inbox / "005-rechnung-ust-id.eml")
    assert "Rechnung" in email.subject
    assert any(ch in email.body for ch in "äöüß")


def test_a_long_thread_keeps_only_the_newest_message_in_the_excerpt(inbox: Path) -> None:
    email = parse_email(inbox / "015-warranty-thread-escalation.eml")
    assert email.body.count(">") > 5
    assert ">" not in email.excerpt
    assert newest_message("Yes.\n\nOn Mon, 1 Dec 2026, Ann wrote:\n> Ok?") == "Yes."


def test_unknown_paths_and_empty_folders_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        load_inbox(tmp_path / "missing")
    with pytest.raises(InputError, match=r"no \.eml files"):
        load_inbox(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"not a folder of \.eml files"):
        load_inbox(tmp_path / "notes.txt")


def test_an_mbox_becomes_one_item_per_message(tmp_path: Path, inbox: Path) -> None:
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for name in good_files(inbox)[:3]:
        box.add((inbox / name).read_bytes())
    box.flush()
    box.close()
    items = load_inbox(tmp_path / "inbox.mbox")
    assert [i.key for i in items] == ["inbox.mbox#1", "inbox.mbox#2", "inbox.mbox#3"]
    assert isinstance(items[0].value, RawEmail)
    assert parse_email(items[0].value).subject


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    folder = tmp_path / "mail.eml"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot read"):
        parse_email(folder)


@pytest.mark.parametrize(
    "subject", ["转发：订单 NW-30211", "転送: 注文 NW-30211", "전달: 주문 NW-30211"]
)
def test_a_forward_subject_in_chinese_japanese_or_korean_reads_the_forwarded_mail(
    subject: str,
) -> None:
    """Outlook writes a forward's header block without '>' marks; the subject's prefix tells
    it from a reply's quote, in the languages mail clients localise it to."""
    body = (
        "请处理。\n\nFrom: Wang Fang <wang.fang@mail.example>\nSent: Friday, 4 December 2026\n"
        "To: Northwind\nSubject: NW-30211\n\nMy order NW-30211 arrived broken. Please send a "
        "replacement before Friday."
    )
    sender = "Mei Lin <mei.lin@northwind-outfitters.example>"
    email = parsed(message(body, sender=sender, subject=subject), source="f.eml")
    assert "arrived broken" in email.excerpt


def test_a_web_form_from_noreply_with_the_customer_as_reply_to_gets_a_reply() -> None:
    """A shop's contact form sends from noreply@ with the customer as Reply-To: the reply
    goes there (`reply_message` addresses it to Reply-To), so one is drafted. Without a
    Reply-To, or with a no-reply one, none is."""
    from llmflow.apps.email_triage import truth

    def web_form(reply_to: str | None) -> Email:
        msg = message(
            "Message: Could you tell me when order NW-30990 will ship?",
            sender="Northwind Web Form <noreply@northwind-outfitters.example>",
            subject="Contact form: order NW-30990",
        )
        if reply_to:
            msg["Reply-To"] = reply_to
        return parsed(msg, source="form.eml")

    form = web_form("Lena Park <lena.park@mail.example>")
    assert form.reply_to == "Lena Park <lena.park@mail.example>"
    assert truth.needs_reply_by_code(form, "support")
    assert not truth.needs_reply_by_code(web_form(None), "support")
    assert not truth.needs_reply_by_code(web_form("bounces@lists.example"), "support")


def test_a_reply_goes_to_the_reply_to_address() -> None:
    from llmflow.inputs.mailbox_actions import reply_message

    msg = message("When will order NW-30990 ship?", sender="Form <noreply@shop.example>",
                  subject="Contact form")  # fmt: skip
    msg["Reply-To"] = "Lena Park <lena.park@mail.example>"
    form = parsed(msg)
    reply = reply_message(form, msg.as_bytes(), "Hello", sender=None, message_id="<r@x.invalid>")
    assert reply["To"] == "lena.park@mail.example"
    plain = parsed(message("Hi", sender="Sam <sam@mail.example>", subject="Hi"))
    reply = reply_message(plain, b"", "Hello", sender=None, message_id="<s@x.invalid>")
    assert reply["To"] == "sam@mail.example"
