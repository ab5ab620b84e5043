"""Defects found by triaging mails nobody tuned the triage on (a blind review, /tmp/unseen_inbox):
each test is a general case of one wrong value the triage stated."""

from __future__ import annotations

from email.message import EmailMessage

from llmflow.apps.email_triage import parse_email
from llmflow.apps.email_triage.amounts import amounts_by_code
from llmflow.inputs.email import RawEmail

DATE = "Fri, 04 Dec 2026 09:00:00 +0100"


def email(body: str, *, sender: str = "Sam Reader <sam@inbox.example>", subject: str = "Hi"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@northwind-outfitters.example"
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg.set_content(body)
    return parse_email(RawEmail(source="t.eml", data=msg.as_bytes()))


# -- amounts -------------------------------------------------------------------------------


def test_a_dot_before_three_digits_is_a_thousands_separator() -> None:
    # "1.299 €" is one thousand two hundred and ninety-nine euros, not 1.30 EUR
    assert amounts_by_code(email("Sie haben 1.299 € berechnet, nicht 1.234,56 €.")) == [
        "1299.00 EUR",
        "1234.56 EUR",
    ]
    assert amounts_by_code(email("Total: 12.435 EUR")) == ["12435.00 EUR"]
    assert amounts_by_code(email("It cost $12.50 and then $1.299.000")) == [
        "12.50 USD",
        "1299000.00 USD",
    ]


def test_dollar_signs_of_other_currencies_are_not_us_dollars() -> None:
    assert amounts_by_code(email("fui cobrado R$ 1.250,00, mas o valor era R$980,00")) == [
        "1250.00 BRL",
        "980.00 BRL",
    ]
    assert amounts_by_code(email("I paid C$349.00, my friend paid CA$ 20 and A$15")) == [
        "349.00 CAD",
        "20.00 CAD",
        "15.00 AUD",
    ]
    assert amounts_by_code(email("It was $75 or US$80.")) == ["75.00 USD", "80.00 USD"]
