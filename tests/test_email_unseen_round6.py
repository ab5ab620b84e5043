"""Defects found by a sixth blind review (/tmp/unseen_round6) and the three round 5 left:
shop order numbers written "#4411", deadlines given only as a time of day, ranges of amounts.
Each test is a general case of one wrong or missing value the triage stated."""

from __future__ import annotations

from llmflow.apps.email_triage.ids import ORDER_ID
from tests.mails import message, parsed

DATE = "Mon, 07 Dec 2026 10:00:00 +0100"


def email(
    body: str,
    *,
    sender: str = "Sam Reader <sam@inbox.example>",
    subject: str = "Hi",
    date: str = DATE,
):
    return parsed(message(body, sender=sender, subject=subject, date=date))


def test_a_shop_order_number_after_an_order_word_is_an_order_id() -> None:
    assert ORDER_ID.findall(
        "I placed three orders last week by mistake: #4411, #4412 and #4413."
    ) == [
        "#4411",
        "#4412",
        "#4413",
    ]
    assert ORDER_ID.findall("Re: Order #1001\n\nHi, where is it?") == ["#1001"]
    assert ORDER_ID.findall("Bestellung Nr. #20417 und #20418 fehlen") == ["#20417", "#20418"]
    assert ORDER_ID.findall("orders (#4411, #4412) and NW-10482") == ["#4411", "#4412", "NW-10482"]
    # a number sign no order word labels is no order id: an issue, a ticket, a room, a rank
    for text in (
        "See issue #1234 on GitHub.",
        "My order is late, ticket #55231 was opened.",
        "Order arrived; photo #4412 shows the tear.",
        "We are #3 in the league.",
        "Room #1204, in order to check in early.",
        "Invoice #88172 for my order.",
    ):
        assert ORDER_ID.findall(text) == [], text
