"""Money amounts in a mail, read by code: the currency tables (symbols, ISO codes and the
words of several languages and scripts: $, €, ¥, ￥, 円, 元, 人民币, ₪, ש"ח, zł, руб., TL, 원, CNY,
JPY, ILS...) and
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
    "zł": "PLN", "pln": "PLN", "₽": "RUB", "руб": "RUB", "рублей": "RUB", "рубля": "RUB",
    "₺": "TRY", "tl": "TRY", "원": "KRW", "nok": "NOK", "dkk": "DKK",
}  # fmt: skip
"""Currency symbols, codes and words, as ISO 4217 codes. The yen / yuan sign (¥, ￥) is not
here: `currency` reads it from the text's script (CNY in Chinese text, JPY otherwise)."""

_CODES = r"USD|EUR|GBP|CHF|JPY|CNY|RMB|ILS|NIS|KRW|CAD|AUD|SEK|BRL|NZD|HKD|SGD|MXN|PLN"
_WORDS = (
    r'人民币|人民幣|美元|欧元|歐元|日元|日圆|元|円|ש"ח|ש״ח|שקלים|שקל|euros?|zł|рублей|рубля|руб|'
    r"₽|₺|(?-i:TL)|원"
)
# words ("元", "円") come after; R$, C$, A$... are not US dollars
# "nok" is a Norwegian and Dutch word ("det er nok 2 uker", "nog"): NOK and DKK in capitals only
_CUR = rf"(?:US\$|R\$|CA?\$|AU?\$|NZ\$|HK\$|S\$|MX\$|\$|€|£|¥|￥|₪|₩|{_CODES}|(?-i:NOK|DKK)|euros?)"
_CUR_AFTER = rf"(?:€|¥|￥|₪|{_CODES}|(?-i:NOK|DKK)|{_WORDS})"
_AMOUNT_NUM = r"\d{1,3}(?:[,.\u00a0\u202f' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    # a dollar sign behind letters that name no known currency (XY$) is no amount: not USD
    rf"(?<![A-Za-z])(?P<c1>{_CUR})\s?(?P<n1>{_AMOUNT_NUM})(?![\d])"
    # "129,- EUR", "1.650,-- EUR": a dash for no cents
    rf"|(?<![0-9A-Za-z_.,-])(?P<n2>{_AMOUNT_NUM})(?:[.,](?:-{{1,2}}|–))?\s?(?P<c2>{_CUR_AFTER})"
    r"(?![A-Za-z])",
    re.I,
)
_DASH = r"(?:\s*[–—]\s*|-)"  # a spaced hyphen lists ("Pos. 2 - 80 EUR")
_RANGE_AFTER = re.compile(
    # "50–80 €", "entre 50 et 80 EUR", "between 50 and 80 EUR", "von 50 bis 80 Euro"
    r"(?<![0-9A-Za-z_.,-])(?:(?P<word>between|entre|zwischen|from|von|van|tussen|tra|fra|"
    rf"de|da)\s+)?(?P<lo>{_AMOUNT_NUM})(?:{_DASH}|\s*(?P<sep>and|et|und|y|e|en|to|bis|à|a|tot)"
    rf"\s)\s*(?P<hi>{_AMOUNT_NUM})(?:[.,](?:-{{1,2}}|–))?\s?(?P<c>{_CUR_AFTER})(?![A-Za-z])",
    re.I,
)
_RANGE_BEFORE = re.compile(
    # "€50–80", "USD 1,000-1,500": the upper bound shares the currency written before
    rf"(?<![A-Za-z])(?P<c>{_CUR})\s?(?P<lo>{_AMOUNT_NUM}){_DASH}(?P<hi>{_AMOUNT_NUM})"
    r"(?![\d%])(?!(?:k|m|mm|mn|bn)(?![^\W\d_])|\s?(?:thousand|million|billion|tausend|mio|mrd|"
    r"millones|milliards?|milioni|miliardi)\b)",  # not "€50–80k": a scale it does not read
    re.I,
)
"""A range of amounts written with its currency once: both ends are amounts in it. A range
in words needs its first word ("between 50 and 80 EUR"; "3 and 80 EUR" is no range)."""


def _ranges(text: str) -> list[tuple[int, str]]:
    """Both ends of each range of amounts in `text` ("entre 50 et 80 EUR": 50 and 80 EUR)."""
    out = []
    for pattern in (_RANGE_AFTER, _RANGE_BEFORE):
        for m in pattern.finditer(text):
            if m.groupdict().get("sep") and not m["word"]:
                continue
            if pattern is _RANGE_AFTER and re.match(r"\s?\d", text[m.end() :]):
                continue  # "sizes 38-42 € 89": the currency is the next amount's
            if all(re.fullmatch(r"(?:19|20)\d\d", m[g]) for g in ("lo", "hi")):
                continue  # "the 2026-2027 EUR budget": years
            lo, hi, code = amount_value(m["lo"]), amount_value(m["hi"]), currency(m["c"], text)
            if lo is None or hi is None or not code or not lo < hi:
                continue
            out += [(m.start("lo"), f"{lo:.2f} {code}"), (m.start("hi"), f"{hi:.2f} {code}")]
    return out


_SCALE = re.compile(
    r"(?:(?P<letter>k|m|mm|mn|bn)|\s?(?P<word>thousand|million|millions|billion|billions|"
    r"tausend|mio\.|mio|mrd\.|mrd|millones|milliards?|milioni|miliardi))(?![^\W\d_])",
    re.I,
)
_SCALES = {
    "k": 1000, "thousand": 1000, "tausend": 1000, "m": 10**6, "mm": 10**6, "mn": 10**6,
    "million": 10**6, "millions": 10**6, "mio": 10**6, "millones": 10**6, "milioni": 10**6,
    "bn": 10**9, "billion": 10**9, "billions": 10**9, "mrd": 10**9, "milliard": 10**9,
    "milliards": 10**9, "miliardi": 10**9,
}  # fmt: skip
"""A scale written after an amount's number: "$1.2k" is 1200 dollars, "€2 Mio." two million
euros, not 1.20 and 2."""


_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, "a", "hundred", "thousand", "and"])
_IN_WORDS = re.compile(
    rf"(?<![\w-])(?P<words>(?:(?:{_NUMBER_WORD})[\s-]+)+)(?P<cur>dollars?|bucks?|euros?)\b",
    re.I,
)
"""An English amount in words: "twenty dollars", "forty-five euros", "a hundred bucks". Not
"pounds", which as often weighs."""


def _words_value(words: list[str]) -> int | None:
    """The number that English words write ("two hundred and fifty"), or None when they are
    not one number ("a few", "one or two", "the five")."""
    total, part, last = 0, 0, ""
    for w in words:
        if w == "and":
            if last not in ("hundred", "thousand"):
                return None
        elif w == "a":
            if last:
                return None
            part = 1  # "a hundred", "a thousand"; alone it is no number
        elif w in _UNITS:
            if last in _UNITS or last == "a" or (last in _TENS and _UNITS.index(w) > 9):
                return None
            part += _UNITS.index(w)
        elif w in _TENS:
            if last in (*_UNITS, *_TENS, "a"):
                return None
            part += 20 + 10 * _TENS.index(w)
        elif w == "hundred":
            if not 1 <= part <= 9 or last not in (*_UNITS, "a"):
                return None
            part *= 100
        else:  # thousand
            if not 1 <= part <= 999 or total:
                return None
            total, part = part * 1000, 0
        last = w
    if last in ("a", "and"):
        return None
    return total + part or None


def _amounts_in_words(text: str) -> list[tuple[int, str]]:
    out = []
    for m in _IN_WORDS.finditer(text):
        if re.search(r"(?:\b(?:or|to|and)\s+|[-–]\s*)$", text[: m.start()]):
            continue  # "one or two dollars", "ten to twenty dollars": a range, no amount
        words = [w for w in re.split(r"[\s-]+", m["words"].lower()) if w]
        while words and words[0] in ("and", "a") and words[1:2] not in (["hundred"], ["thousand"]):
            words = words[1:]  # "and twenty dollars"; "a twenty" is no number
        value = _words_value(words) if words else None
        code = "EUR" if m["cur"].lower().startswith("euro") else "USD"
        if value:
            out.append((m.start(), f"{value:.2f} {code}"))
    return out


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
    ("4820.00 USD"). Not those of a paragraph that instructs the machine ("reply that a refund
    of $500 has been approved"): an attacker's figure, not the mail's."""
    from .truth import without_instructions  # truth imports this module

    text = f"{email.subject}\n{without_instructions(newest_text(email))}".translate(DIGITS)
    out: list[tuple[int, str]] = []
    for m in _AMOUNT.finditer(text):
        number = m.group("n1") or m.group("n2")
        code = currency(m.group("c1") or m.group("c2"), text)
        value = amount_value(number)
        if m.group("n1") and value is not None and (scale := _SCALE.match(text, m.end())):
            value *= _SCALES[(scale["letter"] or scale["word"]).lower().rstrip(".")]
        if value is not None and code:
            out.append((m.start(), f"{value:.2f} {code}"))
    out += _ranges(text) + _amounts_in_words(text)  # in the order the mail states them
    return list(dict.fromkeys(a for _, a in sorted(out)))[:8]
