"""Issue 13: the main job tells the truth. Each defect found on the embedded model, as a test
mail, and the code that fixes it: the reader, the grounding gate, the checked replies."""

from __future__ import annotations

import base64
import datetime as dt
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from llmflow import ModelRequest, ModelResponse, RunStore, run_batch
from llmflow.apps.email_triage import build, load_inbox, parse_email, truth
from llmflow.apps.email_triage.workflow import Triage
from llmflow.inputs.email import EXCERPT_CHARS, GAP, RawEmail
from llmflow.steps.grounding import echoes, find_dates, parse_date, ungrounded
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway

DATE = "Tue, 24 Nov 2026 09:00:00 +0000"


def mail(
    body: str,
    *,
    sender: str = "Laura Mitchell <laura@inbox.example>",
    subject: str = "A question",
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@northwind-outfitters.example"
    msg["Subject"] = subject
    msg["Date"] = DATE
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def raw(data: bytes, name: str = "test.eml") -> RawEmail:
    return RawEmail(source=name, data=data)


CHINESE = "您好，我的订单 NW-10600 被重复扣款两次，每次 342.00 元。请今天退还多扣的款项。谢谢！"


def chinese_base64() -> bytes:
    encoded = base64.encodebytes(CHINESE.encode("gb18030")).decode()
    return (
        "From: =?utf-8?b?546L5Lyf?= <wang.wei@mail.example>\n"
        "To: support@northwind-outfitters.example\n"
        "Subject: =?utf-8?b?6YeN5aSN5omj5qy+?=\n"
        f"Date: {DATE}\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="gb2312"\n'
        "Content-Transfer-Encoding: base64\n\n" + encoded
    ).encode()


def forwarded() -> bytes:
    inner = EmailMessage()
    inner["From"] = "Ops Monitor <alerts@hosting.example>"
    inner["Subject"] = "OUTAGE: checkout API down since 08:10 UTC"
    inner["Date"] = DATE
    inner.set_content(
        "The checkout API has returned errors since 08:10 UTC. Orders cannot be paid.\n"
        "Please confirm who is on call and restart the payment workers."
    )
    outer = EmailMessage()
    outer["From"] = "Elena Costa <elena.costa@northwind-outfitters.example>"
    outer["To"] = "support@northwind-outfitters.example"
    outer["Subject"] = "Fwd: OUTAGE"
    outer["Date"] = DATE
    outer.set_content("FYI, see below.")
    outer.add_attachment(inner)
    return outer.as_bytes()


def long_mail() -> bytes:
    filler = "Here is some background about our trip and the gear we used. " * 6500  # ~400 KB
    ask = "Could you please refund order NW-10777 by 30 November 2026?"
    return mail(filler + "\n\n" + ask + "\n\nThanks,\nLaura", subject="Long story")


# -- the reader --------------------------------------------------------------------------


def test_a_base64_body_in_a_legacy_charset_is_decoded() -> None:
    email = parse_email(raw(chinese_base64()))
    assert CHINESE in email.body and email.subject == "重复扣款"
    assert "342.00 CNY" in truth.amounts_by_code(email)


def test_a_chinese_double_charge_complaint_is_not_spam() -> None:
    """No rule answers by script or keyword, and the ml tier, trained on mails in Chinese,
    Japanese, Korean, Arabic and Hebrew too, does not call the complaint spam for its script
    (it read it as billing until 205 training mails were added; now as support, at 0.51:
    a wrong department, but the mail is answered)."""
    import asyncio

    from llmflow.apps.email_triage.classifier import SPAM_RULES, _from_examples
    from llmflow.apps.email_triage.classifier import classification_text as text
    from llmflow.runtime.runner import run
    from llmflow.steps.ml import rules

    email = parse_email(raw(chinese_base64()))
    assert asyncio.run(run(rules("rules", SPAM_RULES), email.excerpt)).label is None
    [label] = _from_examples("category").predict([text(email.sender, email.subject, email.excerpt)])
    assert label.label in ("billing", "support")


def test_a_quoted_printable_latin1_body_is_decoded() -> None:
    data = (
        "From: Élodie <e@courriel.example>\nSubject: Taille\nDate: " + DATE + "\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Pourriez-vous =E9changer la doudoune (229,00 =80) ?\n"
    ).encode()
    email = parse_email(raw(data))
    assert "échanger" in email.body and "229,00 €" in email.body


def test_a_forwarded_message_is_read_as_the_forwarded_mail() -> None:
    email = parse_email(raw(forwarded()))
    assert email.forwarded is not None
    assert email.forwarded.subject.startswith("OUTAGE")
    assert "restart the payment workers" in email.excerpt
    assert "Ops Monitor" in email.excerpt
    assert "restart the payment workers" in truth.request_by_code(email)


def test_an_inline_forward_without_a_note_keeps_the_forwarded_text() -> None:
    body = (
        "---------- Forwarded message ---------\nFrom: Kim <kim@mail.example>\n"
        "Subject: broken zip\n\nThe zip of my jacket broke. Can you repair it?"
    )
    email = parse_email(raw(mail(body)))
    assert "Can you repair it?" in email.excerpt


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "auto-reply"),
        ({"X-Autoreply": "yes"}, "auto-reply"),
        ({"Precedence": "auto_reply"}, "auto-reply"),
        ({"List-Unsubscribe": "<https://news.example/u/1>"}, "bulk"),
        ({"Precedence": "bulk"}, "bulk"),
        ({"List-Id": "<deals.news.example>"}, "bulk"),
        ({"Auto-Submitted": "auto-generated"}, "message"),  # a receipt or notice: read it
    ],
)
def test_auto_replies_and_bulk_mail_are_known_by_their_headers(
    headers: dict[str, str], kind: str
) -> None:
    assert parse_email(raw(mail("I am out of the office.", headers=headers))).kind == kind


def test_an_empty_mail_is_an_empty_item_not_an_error() -> None:
    data = f"From: someone@mail.example\nTo: support@x.example\nDate: {DATE}\n\n".encode()
    email = parse_email(raw(data))
    assert email.kind == "empty" and email.body == ""


def test_a_long_mail_keeps_its_head_and_its_tail() -> None:
    data = long_mail()
    assert len(data) > 390_000
    email = parse_email(raw(data))
    assert len(email.excerpt) <= EXCERPT_CHARS and GAP in email.excerpt
    assert email.excerpt.startswith("Here is some background")
    assert "Could you please refund order NW-10777" in email.excerpt
    assert "NW-10777" in truth.request_by_code(email)
    assert truth.deadline_by_code(email) == dt.date(2026, 11, 30)


# -- the grounding check -----------------------------------------------------------------


def test_numbers_and_amounts_are_compared_by_value_across_formats() -> None:
    source = "Montant : 1 250,00 EUR, commande NW-10482, le 4 décembre 2026."
    assert ungrounded("The customer asks for 1,250 EUR for order NW-10482.", source) == []
    assert ungrounded("Refund due by 2026-12-04.", source) == []
    bad = ungrounded("Le client réclame 120 EUR; SSN 123-48-7890; by 2027-01-05.", source)
    assert bad == ["2027-01-05", "123-48-7890", "120", "SSN"]
    assert ungrounded("Call Bob Smith.", source) == ["Bob", "Smith"]


def test_dates_in_several_languages_and_relative_to_the_mail() -> None:
    ref = dt.date(2026, 11, 24)  # a Tuesday
    assert parse_date("bis Freitag, 4. Dezember", ref) == dt.date(2026, 12, 4)
    assert parse_date("avant le 4 décembre 2026") == dt.date(2026, 12, 4)
    assert parse_date("antes del 4 de diciembre de 2026") == dt.date(2026, 12, 4)
    assert parse_date("by Dec 4th", ref) == dt.date(2026, 12, 4)
    assert parse_date("tomorrow", ref) == dt.date(2026, 11, 25)
    assert parse_date("by Friday", ref) == dt.date(2026, 11, 27)
    assert parse_date("04.12.2026") == dt.date(2026, 12, 4)
    assert parse_date("The order_numbers mentioned in the email are NW-10482.", ref) is None
    assert [d.value for d in find_dates("Friday 4 December 2026", ref)] == [dt.date(2026, 12, 4)]


def test_an_answer_that_copies_its_instructions_is_an_echo() -> None:
    instructions = "- request: what the sender wants from us, in one short sentence."
    assert echoes("What the sender wants from us, in one short sentence.", [instructions])
    assert not echoes("Refund the duplicate charge on order NW-10517.", [instructions])


def test_a_deadline_must_be_a_date_the_mail_states() -> None:
    email = parse_email(raw(mail("Please send the invoice by 4 December 2026.")))
    assert truth.deadline_of_model("2026-12-04", email)[0] == dt.date(2026, 12, 4)
    assert truth.deadline_of_model("2027-12-05", email)[0] is None
    assert truth.deadline_of_model("The order_numbers are NW-10482.", email)[0] is None


# -- replies -----------------------------------------------------------------------------


def test_reply_checks_catch_placeholders_the_customers_name_and_cut_offs() -> None:
    email = parse_email(raw(mail("Where is order NW-10482?")))
    assert (
        truth.reply_problems(
            "Hi Laura,\n\nWe are checking NW-10482.\n\nNorthwind Outfitters", email
        )
        == []
    )
    signed_as_her = "Hi,\n\nWe are checking.\n\nBest,\nLaura Mitchell"
    assert any("sender's name" in p for p in truth.reply_problems(signed_as_her, email))
    placeholder = "Hi Laura,\n\nWe ship to [address].\n\n[Your Name]\nNorthwind Outfitters"
    assert any("placeholder" in p for p in truth.reply_problems(placeholder, email))
    assert "cut off at max_tokens" in truth.reply_problems("Hi", email, cut_off=True)


def test_the_template_reply_is_signed_by_us_in_the_senders_language() -> None:
    email = parse_email(
        raw(
            mail(
                "Könnten Sie uns bitte die Rechnung für NW-10533 schicken? Danke.",
                sender="Katrin Müller <k@b.example>",
            )
        )
    )
    reply = truth.reply_by_code(email, "billing", ["NW-10533"], "Northwind Outfitters")
    assert reply.startswith("Hallo Katrin,") and reply.endswith("Northwind Outfitters")
    assert truth.reply_problems(reply, email) == []


# -- the workflow: an inventing model never reaches the output ---------------------------

INVENTED = ["120 EUR", "123-48-7890", "2027-03-01", "9999", "Bob Smith", "[Your Name]"]


def liar(request: ModelRequest) -> str | ModelResponse:
    """Answers every step with facts that are in no mail, copies its instructions, signs as
    the customer, and runs out of tokens in replies."""
    if request.choices:
        return ModelResponse(text=request.choices[0], choice_probs={request.choices[0]: 1.0})
    if request.schema_name == "extract":
        return json_reply(
            {
                "request": "What the sender wants from us, in one short sentence.",
                "deadline": "2027-03-01",
                "order_numbers": ["NW-99999", "9999"],
                "invoice_numbers": ["INV-2027-0001"],
                "needs_reply": True,
            }
        )
    if any("Our reply:" in (m.content or "") for m in request.messages):  # repairs too
        return ModelResponse(
            text="Dear customer, we refund 120 EUR to Bob Smith. [Your Name] Laura Mitch",
            finish_reason="length",
        )
    return "Bob Smith wrote on 2027-03-01 about 120 EUR and SSN 123-48-7890; refund 9999."


async def test_the_grounding_gate_keeps_invented_facts_out_of_every_output(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a-refund.eml").write_bytes(
        mail(
            "I returned order NW-10482 on 3 November. Could you please refund the $189.90 "
            "by 30 November 2026?\n\nThanks,\nLaura Mitchell",
            subject="Refund for NW-10482",
        )
    )
    (folder / "b-chinese.eml").write_bytes(chinese_base64())
    (folder / "c-forward.eml").write_bytes(forwarded())
    (folder / "d-auto.eml").write_bytes(
        mail("I am away.", headers={"Auto-Submitted": "auto-replied"})
    )
    (folder / "e-news.eml").write_bytes(
        mail("Deals!", headers={"List-Unsubscribe": "<https://n.example/u>"})
    )
    (folder / "f-empty.eml").write_bytes(f"From: x@mail.example\nDate: {DATE}\n\n".encode())
    (folder / "g-long.eml").write_bytes(long_mail())
    model = ScriptedModel(liar)
    out = tmp_path / "out"
    batch = await run_batch(
        build(tiers=truth.MODEL_TIERS),
        load_inbox(folder),
        gateway=scripted_gateway(model),
        store=RunStore(tmp_path / "runs.db"),
        out_dir=out,
    )
    assert batch.status == "ok", [r.error for r in batch.failed]
    outputs: dict[str, Triage] = {r.key: r.output for r in batch.results}
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    shown = json.dumps(
        [
            {
                k: r[k]
                for k in (
                    "summary",
                    "request",
                    "deadline",
                    "order_numbers",
                    "invoice_numbers",
                    "reply",
                )
            }
            for r in records
        ],
        ensure_ascii=False,
    )
    for fact in [*INVENTED, "NW-99999", "INV-2027-0001", "What the sender wants"]:
        assert fact not in shown, fact
    digest = (out / "digest.md").read_text()
    assert "Bob" not in digest and "2027" not in digest

    refund = outputs["a-refund.eml"]
    assert refund.extraction is not None
    assert refund.extraction.deadline == "2026-11-30"
    assert "refund" in refund.extraction.request.lower()
    assert refund.extraction.order_numbers == ["NW-10482"]
    assert refund.amounts == ["189.90 USD"]
    assert refund.reply is not None and refund.reply.rstrip().endswith("Northwind Outfitters")
    assert set(refund.rejected) == {"summary", "request", "deadline", "reply"}
    assert "cut off" in refund.rejected["reply"] and "echoes" in refund.rejected["request"]
    assert refund.tiers["reply"] == "code"

    assert outputs["b-chinese.eml"].classification.category == "billing"
    assert outputs["c-forward.eml"].email.forwarded is not None
    for name, kind in (
        ("d-auto.eml", "auto-reply"),
        ("e-news.eml", "bulk"),
        ("f-empty.eml", "empty"),
    ):
        t = outputs[name]
        assert t.classification is None and t.reply is None and t.filed_as == f"{kind}/{name}"
    assert "## Filed by code (3)" in digest
    long = outputs["g-long.eml"]
    assert long.extraction is not None and long.extraction.deadline == "2026-11-30"
    # Code-filed mail never reaches the model: 4 mails read, none of the 3 others.
    prompts = [r.messages[-1].content or "" for r in model.requests]
    assert not any("I am away." in p or "Deals!" in p for p in prompts)


async def test_on_the_embedded_model_the_code_tier_answers_without_model_calls(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.eml").write_bytes(
        mail("Could you please refund the $189.90 for order NW-10482 by 30 November 2026?")
    )
    model = ScriptedModel(liar)
    gateway = scripted_gateway(model)
    gateway.register("local", model)  # the scripted model stands in for the embedded one
    batch = await run_batch(
        build(),  # the run is on `local`, so truth.LOCAL_TIERS
        load_inbox(folder),
        gateway=gateway,
        model="local",
        store=RunStore(tmp_path / "runs.db"),
    )
    (result,) = batch.results
    t = result.output
    assert set(t.tiers.values()) == {"code"}
    assert all(r.choices for r in model.requests)  # only the cascades' unsure labels
    assert t.extraction.deadline == "2026-11-30" and t.reply.endswith("Northwind Outfitters")
