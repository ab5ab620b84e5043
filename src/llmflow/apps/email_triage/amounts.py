"""Money amounts in a mail, read by code: the currency tables (symbols, ISO codes and the
words of several languages and scripts: $, €, ¥, ￥, 円, 元, 人民币, ₪, ש"ח, CNY, JPY, ILS...) and
the reader that normalises "1.250,00 €", "18,700円" or "₪1,150" to "<value> <ISO code>"."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ...inputs.email import Email, newest_text
from ...steps.date_languages import DIGITS

CURRENCIES = {
    "$": "USD", "us$": "USD", "usd": "USD", "美元": "USD", "€": "EUR", "eur": "EUR",
    "euro": "EUR", "euros": "EUR", "欧元": "EUR", "歐元": "EUR", "£": "GBP", "gbp": "GBP",
    "chf": "CHF", "jpy": "JPY", "円": "JPY", "日元": "JPY", "日圆": "JPY", "cny": "CNY",
    "rmb": "CNY", "元": "CNY", "人民币": "CNY", "人民幣": "CNY", "₪": "ILS", "ils": "ILS",
    "nis": "ILS", 'ש"ח': "ILS", "ש״ח": "ILS", "שקל": "ILS", "שקלים": "ILS", "₩": "KRW",
    "krw": "KRW", "cad": "CAD", "aud": "AUD", "sek": "SEK", "brl": "BRL", "r$": "BRL",
    "c$": "CAD", "ca$": "CAD", "a$": "AUD", "au$": "AUD", "nz$": "NZD", "nzd": "NZD",
    "hk$": "HKD", "hkd": "HKD", "s$": "SGD", "sgd": "SGD", "mx$": "MXN", "mxn": "MXN",
}  # fmt: skip
"""Currency symbols, codes and words, as ISO 4217 codes. The yen / yuan sign (¥, ￥) is not
here: `currency` reads it from the text's script (CNY in Chinese text, JPY otherwise)."""

_CODES = r"USD|EUR|GBP|CHF|JPY|CNY|RMB|ILS|NIS|KRW|CAD|AUD|SEK|BRL|NZD|HKD|SGD|MXN"
_WORDS = r'人民币|人民幣|美元|欧元|歐元|日元|日圆|元|円|ש"ח|ש״ח|שקלים|שקל|euros?'
# words ("元", "円") come after; R$, C$, A$... are not US dollars
_CUR = rf"(?:US\$|R\$|CA?\$|AU?\$|NZ\$|HK\$|S\$|MX\$|\$|€|£|¥|￥|₪|₩|{_CODES}|euros?)"
_CUR_AFTER = rf"(?:€|¥|￥|₪|{_CODES}|{_WORDS})"
_AMOUNT_NUM = r"\d{1,3}(?:[,.\u00a0\u202f' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    # a dollar sign behind letters that name no known currency (XY$) is no amount: not USD
    rf"(?<![A-Za-z])(?P<c1>{_CUR})\s?(?P<n1>{_AMOUNT_NUM})(?![\d])"
    # "129,- EUR", "1.650,-- EUR": a dash for no cents
    rf"|(?<![0-9A-Za-z_.,-])(?P<n2>{_AMOUNT_NUM})(?:[.,](?:-{{1,2}}|–))?\s?(?P<c2>{_CUR_AFTER})"
    r"(?![A-Za-z])",
    re.I,
)
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def currency(symbol: str, text: str) -> str | None:
    """The ISO code of a currency as written in `text`; the yen / yuan sign by the text's
    script: CNY where it is Chinese (Han characters, no kana), JPY otherwise."""
    if symbol in ("¥", "￥"):
        return "CNY" if _HAN.search(text) and not _KANA.search(text) else "JPY"
    return CURRENCIES.get(symbol.lower())


def amount_value(token: str) -> Decimal | None:
    """A written amount's value: 1,250.00 = 1.250,00 = 1 250 = 1.250 = 1250; 12,50 = 12.5.
    A dot before groups of three digits and nothing else (1.299, 1.299.000) separates
    thousands: money is not written with three decimals."""
    t = re.sub(r"[\u00a0\u202f' ]", "", token)
    decimal_comma = re.search(r",\d{1,2}$", t) or re.fullmatch(r"\d{1,3}(?:\.\d{3})+", t)
    t = t.replace(".", "").replace(",", ".") if decimal_comma else t.replace(",", "")
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def amounts_by_code(email: Email) -> list[str]:
    """Money amounts in the subject and the newest message (not in the older messages it
    quotes, whose amounts it may correct), normalised as "<value> <ISO currency>"
    ("4820.00 USD")."""
    text = f"{email.subject}\n{newest_text(email)}".translate(DIGITS)
    out: list[str] = []
    for m in _AMOUNT.finditer(text):
        number = m.group("n1") or m.group("n2")
        code = currency(m.group("c1") or m.group("c2"), text)
        value = amount_value(number)
        if value is not None and code:
            out.append(f"{value:.2f} {code}")
    return list(dict.fromkeys(out))[:8]
