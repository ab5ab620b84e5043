"""Dates written outside the Latin alphabet, for `grounding.find_dates`: the tables and readers
for Chinese, Japanese and Korean dates (2026年12月15日, 12月15日, 12월 15일, 2026/12/15), Arabic
and Hebrew month names (15 ديسمبر, 15 בדצמבר), Arabic-Indic and full-width digits, and the
relative words (today, tomorrow, a weekday, next week's weekday) of Chinese, Japanese, Arabic
and Hebrew. Nothing here calls a model.
"""

from __future__ import annotations

import datetime as dt
import re

DIGITS = str.maketrans(
    "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹０１２３４５６７８９٫٬",
    "0123456789" * 3 + ".,",
)
"""Arabic-Indic, Persian and full-width digits (and the Arabic decimal and thousands marks)
as ASCII, one character for one, so positions in a text stay where they were."""


def numbered(rows: list[str], start: int = 0) -> dict[str, int]:
    """Words by their row's number: row i of `rows` holds the names (space-separated, "_" for
    a space inside a name) of number `start + i`, in every language read."""
    return {
        name.replace("_", " "): number
        for number, names in enumerate(rows, start=start)
        for name in names.split()
    }


SCRIPT_MONTHS = numbered(
    [
        "يناير كانون_الثاني ינואר",
        "فبراير شباط פברואר",
        "مارس آذار מרץ מרס",
        "أبريل ابريل إبريل نيسان אפריל",
        "مايو أيار מאי",
        "يونيو يونيه حزيران יוני",
        "يوليو يوليه تموز יולי",
        "أغسطس اغسطس آب אוגוסט",
        "سبتمبر أيلول ספטמבר",
        "أكتوبر اكتوبر تشرين_الأول אוקטובר",
        "نوفمبر تشرين_الثاني נובמבר",
        "ديسمبر كانون_الأول דצמבר",
    ],
    start=1,
)
SCRIPT_MONTHS |= {  # Hebrew writes "in December" as one word
    "ב" + name: number for name, number in SCRIPT_MONTHS.items() if "\u0590" <= name[0] <= "\u05ff"
}
"""Month names in Arabic (the Egyptian and Gulf names and the Levantine ones) and Hebrew,
read like the Latin ones: "15 ديسمبر", "15 בדצמבר 2026"."""

CJK_DATE = re.compile(
    r"(?<!\d)(?:(\d{4})\s*[年년]\s*)?(\d{1,2})\s*[月월]\s*(\d{1,2})\s*[日号號일](?!\d)"
)
"""A Chinese, Japanese or Korean date: 2026年12月15日, 12月15日, 12月15号, 12월 15일."""

_SCRIPT_WEEKDAYS = {
    # Monday first: Chinese (星期五, 周五, 礼拜五), Japanese (金曜日), Arabic, Hebrew (יום חמישי)
    "zh": "一二三四五六日天",
    "ja": "月火水木金土日",
    "ar": ["الاثنين|الإثنين", "الثلاثاء", "الأربعاء|الاربعاء", "الخميس", "الجمعة", "السبت",
           "يوم الأحد|يوم الاحد"],
    "he": ["שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון"],
}  # fmt: skip
_TODAY = "今天|今日|本日|(?<!\\w)(?:اليوم|היום)(?!\\w)"
_TOMORROW = "明天|明日|(?<!\\w)(?:غداً|غدًا|غدا|ו?מחר)(?!\\w)"
_NEXT_WEEK = "下个?|下個?|来週の?|來週の?"
SCRIPT_RELATIVE = re.compile(
    rf"(?P<today>{_TODAY})|(?P<tomorrow>{_TOMORROW})"
    rf"|(?P<next>{_NEXT_WEEK})?(?:星期|礼拜|禮拜|周|週)(?P<zh>[一二三四五六日天])(?![起些末])"
    rf"|(?P<next_ja>{_NEXT_WEEK})?(?P<ja>[月火水木金土日])曜日?"
    rf"|(?<!\w)(?:يوم\s+)?(?P<ar>{'|'.join(_SCRIPT_WEEKDAYS['ar'])})(?!\w)"
    rf"|(?<!\w)[בלו]?יום\s+(?P<he>{'|'.join(_SCRIPT_WEEKDAYS['he'])})(?!\w)"
)
"""Relative dates in Chinese, Japanese, Arabic and Hebrew: today, tomorrow, a weekday (the
next one after the reference date), and next week's weekday (下周五, 来週の金曜日)."""


def date_from(year: int | None, month: int, day: int, ref: dt.date | None) -> dt.date | None:
    """The date of a day and month, with its year when written (two digits: 20xx); without
    one, the reference date's year, or the next year's when that puts it more than two months
    before the reference; year 1 (compared by month and day only) without a reference."""
    if year is None:
        year = 1
        if ref is not None:
            try:
                candidate = dt.date(ref.year, month, day)
            except ValueError:
                return None
            year = ref.year + 1 if (ref - candidate).days > 61 else ref.year
    elif year < 100:
        year += 2000
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _weekday(m: re.Match[str]) -> tuple[int, bool] | None:
    """The weekday (Monday 0) a match names, and whether it says next week's."""
    if m["zh"]:
        return min(_SCRIPT_WEEKDAYS["zh"].index(m["zh"]), 6), bool(m["next"])  # 日, 天: Sunday
    if m["ja"]:
        return (_SCRIPT_WEEKDAYS["ja"].index(m["ja"]), bool(m["next_ja"]))
    for lang in ("ar", "he"):
        if m[lang]:
            names = _SCRIPT_WEEKDAYS[lang]
            return next(i for i, n in enumerate(names) if m[lang] in n.split("|")), False
    return None


def script_dates(text: str, ref: dt.date | None) -> list[tuple[int, int, dt.date]]:
    """(start, end, date) of each CJK date in `text` and, with a reference date, each
    relative date in Chinese, Japanese, Arabic or Hebrew. `text`'s digits must be ASCII
    (translate it with `DIGITS` first)."""
    found: list[tuple[int, int, dt.date]] = []
    for m in CJK_DATE.finditer(text):
        value = date_from(int(m[1]) if m[1] else None, int(m[2]), int(m[3]), ref)
        if value is not None:
            found.append((m.start(), m.end(), value))
    if ref is None:
        return found
    for m in SCRIPT_RELATIVE.finditer(text):
        if m["today"]:
            value = ref
        elif m["tomorrow"]:
            value = ref + dt.timedelta(days=1)
        elif (weekday := _weekday(m)) is not None:
            day, next_week = weekday
            if next_week:  # that day of the week after the reference's
                value = ref + dt.timedelta(days=7 - ref.weekday() + day)
            else:
                value = ref + dt.timedelta(days=(day - ref.weekday()) % 7 or 7)
        else:
            continue
        found.append((m.start(), m.end(), value))
    return found
