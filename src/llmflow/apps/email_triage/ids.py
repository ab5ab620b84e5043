"""Order and invoice ids found by code, in the languages of the mail.

An invoice id is found by its prefix (INV-, and the prefixes invoices carry in other languages:
RE-/RG-/RECH- for a German Rechnung, FA-/FAC-/FACT- for a facture or factura, FT- for a
fattura, FV- for a faktura, NF- for a nota fiscal; also behind a short code, PP-INV-88213) or by
the word before it: "Rechnung RE-2026-4471", "Rechnung 2026-4471", "invoice #88172", "fattura
n. 88412", "فاتورة رقم SF-88412". An order id is two to four capitals and four to eight digits
(NW-10482), not an invoice's or a return label's (RMA-5487).
"""

from __future__ import annotations

import re

_INVOICE_PREFIX = r"(?:INV|RE|RG|RECH|FA|FAC|FACT|FT|FV|NF)"
_INVOICE_WORD = (
    r"(?i:invoices?|rechnung(?:snummer)?|facture|factura|fattura|faktura|factuur|fatura"
    r"|請求書|发票|發票|인보이스|청구서|فاتورة|חשבונית)"
)
_NUMBER_WORD = (
    r"(?i:no\.?|nr\.?|n\.?[º°]|n\.|number|nummer|numéro|número|núm\.?|numero|رقم|מס['׳]?"
    r"|番号|号码|號碼|번호)"
)
_ID = r"[A-Z0-9][\w/-]*\d"


class IdPattern:
    """A regular expression whose matches are ids, each in whichever group matched."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def findall(self, text: str) -> list[str]:
        """The ids in `text`, in order, each once."""
        found = (next(g for g in m.groups() if g) for m in self.pattern.finditer(text))
        return list(dict.fromkeys(found))


INVOICE_ID = IdPattern(
    # by its prefix: INV-2026-0193, RE-2026-4471, PP-INV-88213
    rf"(?<![\w-])((?:[A-Z]{{2,4}}-)?{_INVOICE_PREFIX}-[\w/-]*\d)(?![\w/-])"
    # by the word before it and a number sign: invoice #88172, fattura n. 88412, Rechnung Nr. 17
    rf"|{_INVOICE_WORD}\s*(?:{_NUMBER_WORD}\s*[:#]?|[:#])\s*#?({_ID})(?![\w/-])"
    # by the word right before an id with a dash: Rechnung 2026-4471, invoice PZ-4471
    rf"|{_INVOICE_WORD}\s+([A-Z]{{1,5}}-[\w/-]*\d|\d{{2,}}-[\w/-]*\d)(?![\w/-])"
)
"""Invoice ids (INV-2026-0193, RE-2026-4471, "Rechnung 2026-4471", "invoice #88172")."""

_OTHER_LABEL = re.compile(
    r"(?i:\b(?:customer|client|kunden\w*|kd\.?-?nr|cliente|klant|ticket\w*|pickup|abholung|"
    r"tracking\w*|sendung\w*|paketnummer|vorgangs?nummer|przesyłki|takip|трек\w*|"
    r"account (?:number|no\.?|id)|mandatsreferenz|sku|artikel\w*|art\.-?nr|item no|serial|"
    r"serien\w*|amtsgericht|"
    r"handelsregister|registro|iban|vat|ust|credit[- ]?(?:note|memo)|gutschrift|creditnota|"
    r"nota de cr[ée]dito|nota di credito|note de crédit)\b)"
    r"|\bHR[AB]\b"
)
"""Words that name a number of another kind than an order: a customer, account or ticket
number, a pickup or tracking reference (Sendungsnummer, numer przesyłki, takip numarası), an
article (SKU), a commercial register entry (HRB), a credit note."""
_VOUCHER = re.compile(
    r"(?i:\b(?:gift ?card|gutschein|geschenkkarte|voucher|coupon|promo|discount|rabatt|"
    r"carte[- ]cadeau|bon d'achat|tarjeta regalo|cupón|buono regalo|cadeaubon|cadeaukaart)"
    r"(?:[- ]?(?:code|number|nummer|nr\.?|no\.?|numéro|número|codice))?\s*[:#]?\s*"
    r"|\b(?<!order )(?<!order-)(?:code|kod(?: rabatowy)?|kodu)\s*[:#]?\s*)$"
)
"""A gift card, voucher or discount code: the label right before the id ("gift card code
GC-88214", "Gutschein-Code GS-40012", "the code XMAS-2026"); "a gift card for NW-10482" still
names an order."""
_ORDER_WORD = re.compile(
    r"(?i:\b(?:orders?|bestell\w*|auftrag\w*|pedidos?|commandes?|ordine|bestelling|"
    r"encomendas?|purchase|po)\b)|注文|订单|訂單"
)
_POSTCODE = re.compile(r"[A-ZÄÖÜÉ][a-zäöüßéèàâçñ]+")
_COUNTRIES = frozenset(
    ("AT", "BE", "CH", "CZ", "DE", "DK", "ES", "FI", "FR", "GB", "HR", "HU", "IE", "IT", "LI"),
) | frozenset(("LU", "NL", "NO", "PL", "PT", "SE", "SI", "SK"))
"""Country codes written before a postcode (CH-8004 Zürich)."""


class OrderIdPattern(IdPattern):
    """Order ids, less what the text says is another kind of number: one behind a label
    such as "Kundennummer", "Customer ID", "SKU", "pickup reference", "HRB" (on the same line,
    with no order word after it), or a postcode behind its country code before a town
    ("CH-8004 Zürich")."""

    def findall(self, text: str) -> list[str]:
        found: list[tuple[int, str]] = []
        for m in self.pattern.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            before = text[max(line_start, m.start() - 40) : m.start()]
            labels = list(_OTHER_LABEL.finditer(before))
            if labels and not _ORDER_WORD.search(before[labels[-1].end() :]):
                continue
            if _VOUCHER.search(before):
                continue
            if m.group(1).startswith(("HRA-", "HRB-")):
                continue  # a commercial register entry
            prefix = m.group(1).split("-")[0]
            town = _POSTCODE.match(text[m.end() :].lstrip(" "))
            if prefix in _COUNTRIES and town and not _ORDER_WORD.search(before):
                continue
            found.append((m.start(), m.group(1)))
        found += [(m.start(), m.group(0)) for m in _NUMBERED.finditer(text) if _listed(text, m)]
        return list(dict.fromkeys(i for _, i in sorted(found)))


_NUMBERED = re.compile(r"(?<![\w#&/-])#\d{3,10}(?![\w-])")
"""A number behind a number sign, as a shop names its orders ("Order #1001"): an order id
only where an order word labels or lists it (`_listed`)."""
_NOT_ORDER_WORD = re.compile(r"(?i:\b(?:in|out of) order\b)")
_SENTENCE_BREAK = re.compile(r"(?<!\b[Nn][or])[.!?;]\s|\n\s*\n")
_LIST = r"(?:#\d+\s*(?:,|/|&|\band\b|\bund\b|\bet\b|\by\b|\be\b|\bor\b|\boder\b|\bou\b)?\s*)*"
_LABELS = re.compile(
    # "order #1001", "order number #1001", "orders #4411, #4412 and"
    rf"(?i:\s*(?:numbers?|nos?\.?|nr\.?|ids?|nummer|numéro|número)?\s*:?\s*{_LIST}"
    # "three orders last week by mistake: #4411, #4412 and", "two orders (#4411, "
    rf"|[^#\d\n]{{0,60}}[:(]\s*{_LIST})"
)
_ANOTHER = re.compile(
    r"(?i:\b(?:issues?|tickets?|cases?|rooms?|zimmer|tables?|items?|steps?|pages?|lines?|"
    r"parts?|photos?|pictures?|images?|invoices?|rechnung\w*|factures?|facturas?|pr|codes?|"
    r"coupons?|vouchers?|gutschein\w*|gift ?cards?|promo\w*|discount\w*|rabatt\w*|phone|tel|"
    r"fax|apt|suite|unit|box|seat|gate|flight)\b)"
)
"""Labels of numbers written with a number sign that name no order (issue #12, room #12,
promo code: #1234)."""


def _listed(text: str, m: re.Match[str]) -> bool:
    """Whether an order word labels the number at `m` ("order #1001", "Bestellung #1001") or
    lists it after a colon in its sentence ("three orders last week: #4411, #4412 and
    #4413"), with no other label (ticket, issue, invoice, room) between them."""
    start = max((b.end() for b in _SENTENCE_BREAK.finditer(text, 0, m.start())), default=0)
    before = _NOT_ORDER_WORD.sub(" ", text[start : m.start()])
    words = list(_ORDER_WORD.finditer(before))
    if not words:
        return False
    after = before[words[-1].end() :]
    return bool(_LABELS.fullmatch(after)) and not (
        _ANOTHER.search(after) or _OTHER_LABEL.search(after)
    )


ORDER_ID = OrderIdPattern(
    rf"(?<![\w-])(?!{_INVOICE_PREFIX}-|RMA-)([A-Z]{{2,4}}-\d{{4,8}})(?![\w-])"
)
"""Order ids (NW-10482); not invoices, not return labels (RMA-5487), not numbers the text
labels as another kind (customer, ticket, SKU, pickup reference) or postcodes (CH-8004)."""
