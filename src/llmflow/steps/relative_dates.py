"""Deadlines written as a period from the mail's date, for `grounding.find_dates`: "within 48
hours", "within 3 business days", "by the end of next week", "by the end of the month",
"before the 15th", "end of January", "bis Ende Woche", "d'ici la fin de la semaine", "en los
próximos dos días", "entro fine mese", "binnen 5 werkdagen", "今月末まで", "48小时内".

Only what the reference date determines is read: the end of a week is its Friday (the end of
the working week; on a Saturday or Sunday "the end of this week" is left unread), the end of
a month its last day, "by the 15th" the next 15th on or after the reference (unless that is
a month away: "by the 5th" written on the 8th is left unread), "within N days" the
reference plus N days (business days skip Saturday and Sunday), "within N hours" the day it
ends on (the reference's time of day is needed unless N is a multiple of 24). A period
counted from another event ("within 14 days of delivery") is no date; "soon", "next week",
"in a few days" are none. Nothing here calls a model.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from .date_languages import numbered

_COUNTS = numbered(
    [
        "",
        "one a an ein eine einen einem einer eins un une uno una um uma een",
        "two zwei deux dos due dois duas twee",
        "three drei trois tres tre três drie",
        "four vier quatre cuatro quattro quatro",
        "five fünf cinq cinco cinque vijf",
        "six sechs seis sei zes",
        "seven sieben sept siete sette sete zeven",
        "eight acht huit ocho otto oito",
        "nine neun neuf nueve nove negen",
        "ten zehn dix diez dieci dez tien",
    ]
) | {"fourteen": 14, "vierzehn": 14, "quinze": 15, "quince": 15, "quindici": 15}
_CJK_COUNTS = {c: i for i, c in enumerate("〇一二三四五六七八九十", start=0)} | {"两": 2, "兩": 2}

_COUNT = "|".join(sorted(_COUNTS, key=len, reverse=True))


def _spaced(pattern: str) -> str:
    """`pattern` with each space matching any run of white space: a mail wraps its lines
    anywhere ("d'ici la fin\\ndu mois")."""
    return pattern.replace(" ", r"\s+")


_WITHIN = (
    r"within(?: the next)?|in the next|innerhalb(?: von| der nächsten)?|binnen(?: der "
    r"nächsten)?|in den nächsten|sous|dans les(?: prochain(?:e)?s)?|d'ici|"
    r"en (?:los|las) próxim[oa]s|dentro de(?: (?:los|las) próxim[oa]s)?|"
    r"entro(?: (?:i|le) prossim[ie])?|nei prossimi|em até|n[oa]s próxim[oa]s|in de komende"
)
"""Words that bound a period from now ("within", "innerhalb", "sous", "entro"). A bare "in
3 days" is not read: it is as often how long something took ("they replaced it in two
days") as when it is due."""
_UNIT = (
    r"(?P<hours>hours?|hrs?|h|stunden|heures|horas|ore|uur)"
    r"|(?P<business>business days?|working days?|werktagen?|arbeitstagen?|jours ouvrés|"
    r"jours ouvrables|días hábiles|dias hábiles|días laborables|giorni lavorativi|dias úteis|"
    r"werkdagen)"
    r"|(?P<days>days?|tagen?|jours?|días|dias|giorni|dagen)"
    r"|(?P<weeks>weeks?|wochen?|semaines?|semanas?|settimane|settimana|weken)"
)
_PERIOD = re.compile(
    _spaced(rf"(?<![\w'’-])(?:{_WITHIN})\s+(?P<n>\d{{1,3}}|{_COUNT})\s*(?:{_UNIT})(?![\w-])"), re.I
)
_FROM_EVENT = re.compile(
    _spaced(
        r"\s*(?:\([^)]*\)\s*)?(?:of|after|from|following|nach|ab|après|à compter|à partir|"
        r"suivant|desde|después|tras|siguientes|a partir|dalla|dal|dalle|da|dopo|após|a contar|na|"
        r"vanaf)\b"
    ),
    re.I,
)
"""A period counted from another event ("within 14 days of delivery", "binnen 14 dagen na
ontvangst"): the mail does not say when that is."""

_THIS_WEEK = (
    r"(?:the )?end of (?:the |this )?(?:working |work |business )?week"
    r"|ende (?:der |dieser )?woche"
    r"|(?:la )?fin de (?:la|cette) semaine(?! prochaine)"
    r"|(?:el )?final(?:es)? de (?:la|esta) semana(?! que viene| próxima)"
    r"|(?:la )?fine (?:della|di questa) settimana(?! prossima)"
    r"|(?:o )?(?:final|fim) (?:da|desta) semana(?! que vem)"
    r"|eind(?:e)? (?:van )?(?:de|deze) week"
)
_NEXT_WEEK = (
    r"(?:the )?end of next week|ende (?:der )?(?:nächste[rn]?|kommende[rn]?) woche"
    r"|(?:la )?fin de la semaine prochaine"
    r"|(?:el )?final(?:es)? de la (?:próxima semana|semana que viene)"
    r"|(?:la )?fine della (?:prossima settimana|settimana prossima)"
    r"|(?:o )?(?:final|fim) da (?:próxima semana|semana que vem)"
    r"|eind(?:e)? (?:van )?volgende week"
)
_THIS_MONTH = (
    r"(?:the )?end of (?:the |this )?month|month[- ]end"
    r"|ende (?:des |dieses )?monats|ende monat|monatsende"
    r"|(?:la )?fin (?:du|de ce) mois(?! prochain)"
    r"|(?:el )?final(?:es)? de(?:l| este) mes(?! que viene| próximo)|fin de(?:l| este) mes"
    r"|(?:la )?fine (?:del |di questo )?mese(?! prossimo)"
    r"|(?:o )?(?:final|fim) (?:do|deste) mês(?! que vem)"
    r"|eind(?:e)? (?:van )?(?:de|deze) maand"
)
_NEXT_MONTH = (
    r"(?:the )?end of next month|ende (?:des )?nächsten monats"
    r"|(?:la )?fin du mois prochain"
    r"|(?:el )?final(?:es)? del (?:próximo mes|mes que viene)"
    r"|(?:la )?fine del (?:prossimo mese|mese prossimo)"
    r"|(?:o )?(?:final|fim) do (?:próximo mês|mês que vem)"
    r"|eind(?:e)? (?:van )?volgende maand"
)
_END = re.compile(
    _spaced(
        rf"(?<![\w'’-])(?:(?P<next_week>{_NEXT_WEEK})|(?P<this_week>{_THIS_WEEK})"
        rf"|(?P<next_month>{_NEXT_MONTH})|(?P<this_month>{_THIS_MONTH}))(?![\w-])"
    ),
    re.I,
)
_CJK_END = re.compile(
    r"(?P<next_week>来週中)|(?P<this_week>今週中)"
    r"|(?P<next_month>来月末|下个?月[底末]|下個?月[底末])"
    r"|(?P<this_month>今月末|今月中|本月[底末]|这个?月[底末]|這個?月[底末]|(?<![\d来下個个先上前毎每])月末|(?<![\d下個个上前每])月底)"
)
"""The same in Japanese and Chinese, which write no spaces between words."""
_PAST = re.compile(
    r"\s+(?:dernier|dernière|passée?|pasad[oa]|anterior|scors[oa]|passad[oa]|vorige)\b", re.I
)
"""A word after "la fin du mois" that puts it in the past: the last month's, not this one's."""
_END_OF_MONTH_NAMED = (
    r"(?<![\w'’-])(?:(?:the )?end of|ende|fin(?: de)?|finales de|final de|fine|fim de|"
    r"eind(?:e)?(?: van)?)\s+(?P<month>{months})(?![\w-])"
)
_DAY_OF_MONTH = re.compile(
    _spaced(
        r"(?<![\w'’-])(?:(?:by|before|no later than|on or before) the "
        r"(?P<en>\d{1,2})(?:st|nd|rd|th)(?!\s+of\b)"
        r"|bis (?:zum|spätestens zum|spätestens am) (?P<de>\d{1,2})\.(?!\s*\d)"
        r"|(?:avant le|d'ici le) (?P<fr>\d{1,2})(?=\s*[.,;!?)]|\s*$)"
        r"|antes del (?P<es>\d{1,2})(?=\s*[.,;!?)]|\s*$)"
        r"|entro il (?P<it>\d{1,2})(?=\s*[.,;!?)]|\s*$))"
    ),
    re.I | re.M,
)
"""A day of the month after a word that sets a deadline ("by the 15th", "bis zum 15."):
"until the 30th" is left out, as it as often says how long something was ("valid until the
30th")."""
_CJK_PERIOD = re.compile(
    r"(?<![\d月])(?P<n>\d{1,3}|[一二两兩三四五六七八九十]{1,2})\s*(?:个|個)?\s*"
    r"(?:(?P<hours>小时|小時|時間)|(?P<business>工作日|営業日)|(?P<days>天|日))"
    r"\s*(?:之内|以内|内|內)"
)


def _last_day(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _business_days(ref: dt.date, n: int) -> dt.date:
    day = ref
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    if word.lower() in _COUNTS:
        return _COUNTS[word.lower()]
    if all(c in _CJK_COUNTS for c in word):  # 三, 十, 两
        if len(word) == 1:
            return _CJK_COUNTS[word]
        if word[0] == "十":
            return 10 + _CJK_COUNTS[word[1]]
        return None
    return None


def _after(ref: dt.date, at: dt.time | None, n: int, m: re.Match[str]) -> dt.date | None:
    if m["hours"]:
        if n % 24 == 0:
            return ref + dt.timedelta(days=n // 24)
        if at is None:
            return None  # "within 36 hours": the day depends on the time it was sent
        return (dt.datetime.combine(ref, at) + dt.timedelta(hours=n)).date()
    if m["business"]:
        return _business_days(ref, n)
    if m["days"]:
        return ref + dt.timedelta(days=n)
    return ref + dt.timedelta(weeks=n)


def period_dates(
    text: str, ref: dt.date, at: dt.time | None = None, months: dict[str, int] | None = None
) -> list[tuple[int, int, dt.date]]:
    """(start, end, date) of each period in `text` that `ref` (the mail's date; `at` its time
    of day) determines. `months` names the months for "end of January"."""
    found: list[tuple[int, int, dt.date]] = []
    for m in _PERIOD.finditer(text):
        if _FROM_EVENT.match(text, m.end()):
            continue
        n = _count(m["n"])
        if n and (value := _after(ref, at, n, m)) is not None:
            found.append((m.start(), m.end(), value))
    for m in _CJK_PERIOD.finditer(text):
        n = _count(m["n"])
        if n and (value := _after(ref, at, n, m)) is not None:
            found.append((m.start(), m.end(), value))
    friday = ref + dt.timedelta(days=4 - ref.weekday())
    for m in [*_END.finditer(text), *_CJK_END.finditer(text)]:
        if _PAST.match(text, m.end()):
            continue  # "la fin du mois dernier", "final de la semana pasada": past
        if m["this_week"]:
            if ref.weekday() > 4:
                continue  # on a weekend, "the end of this week" is no clear day
            value = friday
        elif m["next_week"]:
            value = friday + dt.timedelta(days=7)
        elif m["this_month"]:
            value = _last_day(ref.year, ref.month)
        else:
            year, month = (ref.year + 1, 1) if ref.month == 12 else (ref.year, ref.month + 1)
            value = _last_day(year, month)
        found.append((m.start(), m.end(), value))
    if months:
        names = "|".join(sorted((n for n in months if n.isalpha()), key=len, reverse=True))
        for m in re.finditer(_spaced(_END_OF_MONTH_NAMED.format(months=names)), text, re.I):
            month = months[m["month"].lower()]
            if m["month"] == "may":
                continue  # "the end of may": English writes the month May
            year = ref.year + (1 if month < ref.month else 0)
            found.append((m.start(), m.end(), _last_day(year, month)))
    for m in _DAY_OF_MONTH.finditer(text):
        day = int(next(g for g in m.groups() if g))
        year, month = ref.year, ref.month
        if day < ref.day:
            if ref.day - day < 15:
                continue  # "by the 5th" on the 8th: a slip or a past day, not next month's
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if 1 <= day <= calendar.monthrange(year, month)[1]:
            found.append((m.start(), m.end(), dt.date(year, month, day)))
    return found
