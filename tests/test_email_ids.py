"""Order and invoice ids found by code (`apps.email_triage.ids`), in several languages."""

from __future__ import annotations

import pytest

from llmflow.apps.email_triage.ids import INVOICE_ID, ORDER_ID


@pytest.mark.parametrize(
    ("text", "invoices"),
    [
        ("Invoice INV-2026-0193 is overdue.", ["INV-2026-0193"]),
        ("Reminder: INV-HT-0087 due Friday", ["INV-HT-0087"]),
        # German: the Rechnung's own prefix, or the word before a bare number
        ("Gutschrift GS-2026-318 zu Rechnung RE-2026-4471", ["RE-2026-4471"]),
        ("aus unserer Rechnung RE-2026-4471 haben wir", ["RE-2026-4471"]),
        ("die Rechnung 2026-4471 über 1.284,00 €", ["2026-4471"]),
        ("Rechnungsnummer: RG-77120", ["RG-77120"]),
        ("Rechnung Nr. 2026/117 vom 3.12.", ["2026/117"]),
        # French, Spanish, Italian, Arabic
        ("Facture FA-2026-0042 en pièce jointe", ["FA-2026-0042"]),
        ("la factura n.º 8812 y la factura número 8813", ["8812", "8813"]),
        ("la fattura n. 88412 è disponibile", ["88412"]),
        ("فاتورة رقم SF-88412 بقيمة", ["SF-88412"]),
        ("invoice #88172 attached", ["88172"]),
        ("PayPal invoice PP-INV-88213 is available", ["PP-INV-88213"]),
        # not invoices: an order, a year, a reply prefix, a credit note alone
        ("Invoice for order NW-10611 please", []),
        ("the invoice 2027 budget", []),
        ("RE: your mail of 2026", []),
        ("Gutschrift GS-2026-318", []),
    ],
)
def test_invoice_ids(text: str, invoices: list[str]) -> None:
    assert INVOICE_ID.findall(text) == invoices


def test_order_ids_are_not_invoices_or_return_labels() -> None:
    text = "Order NW-10482, return label RMA-5487, invoice INV-20261, Rechnung RE-44710."
    assert ORDER_ID.findall(text) == ["NW-10482"]
    assert INVOICE_ID.findall(text) == ["INV-20261", "RE-44710"]
    assert ORDER_ID.findall("NW-10482 and NW-10482 again, SO-55910") == ["NW-10482", "SO-55910"]
