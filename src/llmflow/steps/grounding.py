"""Grounding by code: is every fact a model wrote stated in its source?

"Right shape is not right content": a grammar makes a small model's output parse, not true.
`ungrounded(output, source)` lists the facts in `output` that `source` does not state: numbers
and amounts (compared by value: 1,250 = 1 250 = 1.250,00 = 1250), dates (compared as dates:
2026-12-04 = 4 December 2026 = 4. Dezember 2026), ids (NW-10482, 123-48-7890: as tokens),
email addresses, URLs and capitalised names. `find_dates` reads dates in English, German,
French, Spanish, Italian, Portuguese and Dutch, absolute and relative to a reference date
("by Friday", "tomorrow"), and
through `date_languages` in Chinese, Japanese, Korean, Arabic and Hebrew (12月15日, 15 ديسمبر,
יום חמישי); numbers in any of those scripts' digits compare by value too;
`echoes` tells an answer that copies its instructions back. Use them in a `gate`, a refine
loop's evaluator or a cascade tier's condition; nothing here calls a model.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .date_languages import DIGITS, SCRIPT_MONTHS, date_from, numbered, script_dates
from .relative_dates import period_dates

DAY_FIRST_MONTHS = numbered(
    [
        "stycznia styczeń января ocak",
        "lutego luty февраля şubat subat",
        "marca marzec марта mart",
        "kwietnia kwiecień апреля nisan",
        "maj maja мая mayıs mayis",
        "czerwca czerwiec июня haziran",
        "lipca lipiec июля temmuz",
        "augusti sierpnia sierpień августа ağustos agustos",
        "września wrzesień сентября eylül eylul",
        "października październik октября ekim",
        "listopada listopad ноября kasım kasim",
        "grudnia grudzień декабря aralık aralik",
    ],
    start=1,
)
"""Month names of Polish, Russian (as a date writes them: "11 grudnia", "20 декабря"), Turkish
and Swedish, read after the day only: "18 Aralık", never "Nisan 5" (a name, or a month?)."""

MONTHS = (
    DAY_FIRST_MONTHS
    | numbered(
        [
            "january jan januar janvier enero ene gennaio janeiro januari",
            "february feb februar février fevrier febrero febbraio fevereiro februari",
            "march mar märz maerz mars marzo março maart",
            "april apr avril abril abr aprile",
            "may mai mayo maggio maio mei",
            "june jun juni juin junio giugno junho",
            "july jul juli juillet julio luglio julho",
            "august aug août aout agosto ago augustus",
            "september sep sept septembre septiembre settembre setembro",
            "october oct oktober okt octobre octubre ottobre outubro",
            "november nov novembre noviembre novembro",
            "december dec dezember dez décembre decembre diciembre dic dicembre dezembro",
        ],
        start=1,
    )
    | SCRIPT_MONTHS
)

WEEKDAYS = numbered(
    [
        "monday mon montag lundi lunes lunedì lunedi segunda-feira maandag",
        "tuesday tue tues dienstag mardi martes martedì martedi terça-feira terca-feira dinsdag",
        "wednesday wed mittwoch mercredi miércoles miercoles mercoledì mercoledi quarta-feira "
        "woensdag",
        "thursday thu thurs donnerstag jeudi jueves giovedì giovedi quinta-feira donderdag",
        "friday fri freitag vendredi viernes venerdì venerdi sexta-feira vrijdag",
        "saturday sat samstag samedi sábado sabado zaterdag",
        "sunday sun sonntag dimanche domingo domenica zondag",
    ]
)

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_MONTH_FIRST = "|".join(sorted(MONTHS.keys() - DAY_FIRST_MONTHS.keys(), key=len, reverse=True))
_WEEKDAY = "|".join(sorted((w for w in WEEKDAYS if len(w) > 3), key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th|er|º|°)?"
_DATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("ymd", re.compile(r"\b(\d{4})([-/.])(\d{1,2})\2(\d{1,2})\b")),
    (
        "dmy",
        re.compile(
            rf"\b(\d{{1,2}}){_ORD}\.?\s+(?:of\s+|de\s+)?({_MONTH})\.?(?:\s*,?\s*(?:de\s+)?(\d{{4}}))?\b",
            re.I,
        ),
    ),
    (
        "mdy",
        re.compile(rf"\b({_MONTH_FIRST})\.?\s+(\d{{1,2}}){_ORD}\b(?:,?\s*(\d{{4}}))?", re.I),
    ),
    ("numeric", re.compile(r"\b(\d{1,2})([./])(\d{1,2})\2(\d{4}|\d{2})\b")),
    # day and month with dots and no year: "bis 7.1.", "am Freitag, den 18.12."
    ("dm", re.compile(r"(?<![\d.,$€£¥])\b(\d{1,2})\.(\d{1,2})\.(?![\d.])")),
]
_RELATIVE = re.compile(
    rf"\b(today|tomorrow|tonight|heute|morgen|aujourd'hui|demain|hoy|mañana|"
    rf"(?<!black )(?<!cyber )(?:this |next |coming |nächsten |prochain )?(?:{_WEEKDAY}))\b",
    re.I,
)

_MORNING = re.compile(
    r"\b(?:esta|la|una|cada|pasado|heute|gestern|vorgestern|guten|jeden|am|einen|après-|"
    r"d'après-)\s*$",
    re.I,
)
"""Words before mañana / Morgen / demain that make it a morning (esta mañana, por la mañana,
heute Morgen, Guten Morgen) or another day (pasado mañana, après-demain): not tomorrow."""
_PAST_BEFORE = re.compile(
    r"\b(?:since|last|seit|letzten|letzte|vergangenen|depuis|desde(?: el)?|el pasado)\s+$", re.I
)
_PAST_AFTER = re.compile(r"\s+(?:dernier|passé|pasado)\b", re.I)
"""A weekday said to be past: since Tuesday, last Tuesday, seit Dienstag, mardi dernier."""


@dataclass(frozen=True)
class FoundDate:
    """A date stated in a text: its value, where it is, and how it was written."""

    value: dt.date
    start: int
    end: int
    text: str
    period: bool = False
    """Read as a period from the reference date ("within 48 hours", "end of next week")."""


def find_dates(
    text: str,
    ref: dt.date | None = None,
    *,
    day_first: bool | None = False,
    at: dt.time | None = None,
) -> list[FoundDate]:
    """The dates written in `text`, in order. A date without a year takes the reference
    date's year (year 1 without a reference); relative dates ("tomorrow", "by Friday") need
    `ref` (the mail's date) and are skipped without it. Numeric dates read day first when
    written with dots (4.12.2026), month first with slashes unless the first part is > 12;
    `day_first` (a text in a language that writes dates so: French, German, Spanish...) reads
    slashes day first too, unless the second part is > 12; `day_first=None` (a text whose
    writer may use either order: English) leaves out a slashed date that reads both ways
    (05/01/2027), as a guess would be a fact shown unverified. Periods from the reference
    ("within 48 hours", "by the end of next week", "before the 15th", "bis Ende Woche",
    "今月末") are read by `relative_dates.period_dates`; `at`, the reference's time of day,
    places "within 36 hours"."""
    text = text.translate(DIGITS)
    found: list[FoundDate] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for kind, pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if not free(m.start(), m.end()):
                continue
            g = m.groups()
            value: dt.date | None = None
            if kind == "ymd":
                value = date_from(int(g[0]), int(g[2]), int(g[3]), ref)
            elif kind == "dmy":
                value = date_from(int(g[2]) if g[2] else None, MONTHS[g[1].lower()], int(g[0]), ref)
            elif kind == "mdy":
                value = date_from(int(g[2]) if g[2] else None, MONTHS[g[0].lower()], int(g[1]), ref)
            elif kind == "dm":
                value = date_from(None, int(g[1]), int(g[0]), ref)
            else:
                a, b, year = int(g[0]), int(g[2]), int(g[3])
                if day_first is None and g[1] != "." and a <= 12 and b <= 12 and a != b:
                    continue
                first = g[1] == "." or a > 12 or (bool(day_first) and b <= 12)
                day, month = (a, b) if first else (b, a)
                value = date_from(year, month, day, ref)
            if kind in ("dmy", "mdy") and g[1 if kind == "dmy" else 0] == "may":
                continue  # "the other 2 may ship": English writes the month May
            if value is not None:
                found.append(FoundDate(value, m.start(), m.end(), m.group(0)))
                taken.append((m.start(), m.end()))
    if ref is not None:
        for start, end, value in period_dates(text, ref, at, MONTHS):
            if free(start, end):
                found.append(FoundDate(value, start, end, text[start:end], period=True))
                taken.append((start, end))
        for m in _RELATIVE.finditer(text):
            after_date = re.match(r",?\s*(the|den|der|le|el|il)?\s*\d", text[m.end() :], re.I)
            if not free(m.start(), m.end()):
                continue
            if after_date:  # "Friday 4 December": the written date says which Friday
                if dated := _weekday_and_day(m, text, ref, free):
                    value, end = dated
                    found.append(FoundDate(value, m.start(), end, text[m.start() : end]))
                    taken.append((m.start(), end))
                continue
            word = m.group(1).lower()
            before, after = text[max(0, m.start() - 30) : m.start()], text[m.end() : m.end() + 30]
            if word in ("today", "tonight", "heute", "aujourd'hui", "hoy"):
                value = ref
            elif word in ("tomorrow", "morgen", "demain", "mañana"):
                if word != "tomorrow" and _MORNING.search(before):
                    continue  # "esta mañana", "heute Morgen": a morning, not tomorrow
                value = ref + dt.timedelta(days=1)
            else:
                day_name = word.split()[-1]
                if word == day_name and (_PAST_BEFORE.search(before) or _PAST_AFTER.match(after)):
                    back = (ref.weekday() - WEEKDAYS[day_name]) % 7 or 7
                    value = ref - dt.timedelta(days=back)  # "since Tuesday": the last one
                else:
                    ahead = (WEEKDAYS[day_name] - ref.weekday()) % 7
                    if not (ahead == 0 and word.startswith("this ")):
                        ahead = ahead or 7  # "this Friday" on a Friday is today
                    value = ref + dt.timedelta(days=ahead)
            found.append(FoundDate(value, m.start(), m.end(), m.group(0)))
            taken.append((m.start(), m.end()))
    for start, end, value in script_dates(text, ref):
        if free(start, end):
            found.append(FoundDate(value, start, end, text[start:end]))
            taken.append((start, end))
    return sorted(found, key=lambda d: d.start)


_DAY_AFTER_WEEKDAY = re.compile(
    r",?\s*(?:(?:the|den|le|el|il)\s+(\d{1,2})(?:st|nd|rd|th|\.)?|(\d{1,2})(?:st|nd|rd|th))"
    r"(?![\d.,/:-]*\d)",
    re.I,
)
"""A day of the month after a weekday, marked as one by an article or an ordinal ("Friday the
18th", "Freitag, den 18.", "Friday 18th"); not "Friday 11 pallets"."""


def _weekday_and_day(
    m: re.Match[str], text: str, ref: dt.date, free: Callable[[int, int], bool]
) -> tuple[dt.date, int] | None:
    """A weekday and a day of the month with no month ("Friday the 18th", "Freitag, den 18."):
    the first day of that number on or after `ref`, within two months, that falls on that
    weekday; None when none does or a month follows (read as a date already)."""
    d = _DAY_AFTER_WEEKDAY.match(text, m.end())
    if not d or not free(d.start(), d.end()) or m.group(1).lower().split()[0] in ("this", "next"):
        return None
    weekday, day = WEEKDAYS[m.group(1).lower().split()[-1]], int(d.group(1) or d.group(2))
    year, month = ref.year, ref.month
    for _ in range(2):
        if day <= calendar.monthrange(year, month)[1]:
            value = dt.date(year, month, day)
            if value >= ref and value.weekday() == weekday:
                return value, d.end()
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _same_date(a: dt.date, b: dt.date) -> bool:
    """Equal dates; a date read without a year (year 1) matches any year."""
    return (a.month, a.day) == (b.month, b.day) and (a.year == b.year or 1 in (a.year, b.year))


def parse_date(text: str, ref: dt.date | None = None) -> dt.date | None:
    """The one date `text` holds, or None when it holds none (a sentence is not a date)."""
    found = find_dates(text, ref)
    return found[0].value if found else None


# Numbers: digits with thousands separators (comma, dot, space, apostrophe) and decimals.
_NUMBER = re.compile(
    r"(?<![0-9A-Za-z_.,])\d{1,3}(?:[,.\u00a0\u202f' ]\d{3})+(?:[.,]\d+)?(?![0-9A-Za-z_])"
    r"|\d+(?:[.,]\d+)?"
)
_ID = re.compile(r"(?<![\w-])(?=[\w/-]*\d)[A-Za-z0-9]+(?:[-/_][A-Za-z0-9]+)+(?![\w-])")
_MIXED = re.compile(r"(?<![\w-])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{4,}(?![\w-])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\bhttps?://[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+", re.I)
_NAME = re.compile(r"(?<![\w'’-])[^\W\d_][\w'’-]*", re.U)
_SENTENCE_END = re.compile(r"[.!?:。！？؟\n]\s*$")
NUMBER_WORDS = {
    w: n
    for n, words in enumerate(
        [
            "zero null zéro cero",
            "one a an single once ein eine un une uno una",
            "two twice both pair couple zwei deux dos",
            "three drei trois tres",
            "four vier quatre cuatro",
            "five fünf cinq cinco",
            "six sechs seis",
            "seven sieben sept siete",
            "eight acht huit ocho",
            "nine neun neuf nueve",
            "ten zehn dix diez",
            "eleven elf onze once",
            "twelve dozen zwölf douze doce",
        ]
    )
    for w in words.split()
}


CURRENCY_MARKS = {
    "usd": ("$", "dollar", "دولار", "美元"), "eur": ("€", "euro", "欧元", "歐元"),
    "gbp": ("£", "pound"), "jpy": ("¥", "円", "日元", "yen"),
    "cny": ("¥", "元", "人民币", "人民幣", "rmb", "yuan"), "ils": ("₪", "ש״ח", 'ש"ח', "שקל", "nis"),
    "krw": ("₩", "원"),
}  # fmt: skip
"""ISO codes of currencies and how a source may write them: an output's "JPY" is grounded by
a source's 円 or ¥ (after NFKC, ￥ is ¥)."""


def _values(token: str) -> set[Decimal]:
    """Every value a written number can mean: "1,250" is 1250 or 1.25, "1.250,00" is 1250."""
    compact = re.sub(r"[\u00a0\u202f' ]", "", token)
    readings = {compact.replace(",", ""), compact.replace(".", "").replace(",", ".")}
    if compact.count(",") == 1 and "." not in compact:
        readings.add(compact.replace(",", "."))
    out = set()
    for r in readings:
        try:
            out.add(Decimal(r).normalize())
        except InvalidOperation:
            continue
    return out


def _fold(text: str) -> str:
    """Lowercased, accents kept, compatibility forms folded (full-width and Arabic-Indic
    digits, ligatures)."""
    return unicodedata.normalize("NFKC", text).casefold().translate(DIGITS)


@dataclass(frozen=True)
class Source:
    """A source text, indexed once for many checks."""

    text: str
    folded: str
    numbers: frozenset[Decimal]
    digits: frozenset[str]
    dates: tuple[dt.date, ...]

    @classmethod
    def of(cls, text: str, ref: dt.date | None = None, at: dt.time | None = None) -> Source:
        folded = _fold(text)
        numbers: set[Decimal] = set()
        for m in _NUMBER.finditer(folded):
            numbers |= _values(m.group(0))
        for word in re.findall(r"[^\W\d_]+", folded):
            if word in NUMBER_WORDS:
                numbers.add(Decimal(NUMBER_WORDS[word]))
        digits = frozenset(re.sub(r"\D", "", m.group(0)) for m in _ID.finditer(folded))
        # a slashed date such as 04/01/2027 states either reading (4 January, April 1)
        both = [*find_dates(text, ref, at=at), *find_dates(text, ref, day_first=True, at=at)]
        dates = tuple(dict.fromkeys(d.value for d in both))
        return cls(text, folded, frozenset(numbers), digits, dates)

    def states_date(self, value: dt.date) -> bool:
        return any(_same_date(value, d) for d in self.dates)


def ungrounded(
    output: str,
    source: str | Source,
    *,
    allowed: Iterable[str] = (),
    ref: dt.date | None = None,
    names: bool = True,
) -> list[str]:
    """The facts in `output` that `source` does not state, as written in `output` (empty:
    grounded). `allowed` is text the output may use besides the source (our own name and
    signature, the words of a template); `ref` dates relative expressions; `names=False`
    skips the capitalised-name check (for text in a language without capitals, say)."""
    src = source if isinstance(source, Source) else Source.of(source, ref)
    extra = _fold(" ".join(allowed))
    known = src.folded + "\n" + extra
    problems: list[str] = []
    text = output
    covered: list[tuple[int, int]] = []

    def cover(start: int, end: int) -> None:
        covered.append((start, end))

    def is_covered(start: int, end: int) -> bool:
        return any(start >= a and end <= b for a, b in covered)

    for d in find_dates(text, ref):
        if not src.states_date(d.value) and _fold(d.text) not in known:
            problems.append(d.text)
        cover(d.start, d.end)
    for pattern in (_URL, _EMAIL):
        for m in pattern.finditer(text):
            if is_covered(m.start(), m.end()):
                continue
            if _fold(m.group(0)).rstrip(".,") not in known:
                problems.append(m.group(0))
            cover(m.start(), m.end())
    for pattern in (_ID, _MIXED):
        for m in pattern.finditer(text):
            if is_covered(m.start(), m.end()):
                continue
            token = _fold(m.group(0))
            digits = re.sub(r"\D", "", token)
            if token not in known and not (len(digits) >= 6 and digits in src.digits):
                problems.append(m.group(0))
            cover(m.start(), m.end())
    for m in _NUMBER.finditer(_fold(text)):
        if is_covered(m.start(), m.end()):
            continue
        values = _values(m.group(0))
        if not values & src.numbers and m.group(0) not in extra:
            problems.append(m.group(0))
        cover(m.start(), m.end())
    if names:
        for m in _NAME.finditer(text):
            word = m.group(0).strip("'’-")
            if is_covered(m.start(), m.end()) or not word or not word[0].isupper():
                continue
            before = text[: m.start()]
            if (
                not before.strip()
                or _SENTENCE_END.search(before)
                or before.rstrip().endswith(('"', "“", "(", "- ", "*"))
            ):
                continue  # a sentence's first word: capitalised for grammar, not as a name
            folded = _fold(word)
            if folded in MONTHS or folded in WEEKDAYS or folded in {"i", "ok", "pdf"}:
                continue
            marks = CURRENCY_MARKS.get(folded, ())
            if folded not in known and not any(mark in known for mark in marks):
                problems.append(word)
    return list(dict.fromkeys(problems))


def echoes(answer: str, texts: Iterable[str], threshold: float = 0.6) -> bool:
    """Whether `answer` copies (or nearly copies) one of `texts` - an instruction line or a
    field's description - back, instead of answering it."""
    a = " ".join(_fold(answer).split()).strip(" .")
    if not a:
        return False
    for text in texts:
        for line in re.split(r"[\n]|(?<=[.:])\s", text):
            b = " ".join(_fold(line).split()).strip(" .-")
            if len(b) < 12:
                continue
            if b in a or a in b or difflib.SequenceMatcher(None, a, b).ratio() >= threshold:
                return True
    return False


_LABEL_COLON = re.compile(r":(?!\d)")
"""A colon as a list's label has ("Total: 5 EUR"), not a time's ("12:00")."""


def split_sentences(text: str) -> list[str]:
    """Sentences of a mail's text: paragraphs joined across their line breaks, then split
    after . ! ? (and their CJK and Arabic forms)."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if not lines:
            continue
        # A list or a table (short lines with colons or bullets) stays one line per sentence.
        if (
            len(lines) > 1
            and sum(bool(_LABEL_COLON.search(line)) or line[:1] in "-*•" for line in lines)
            > len(lines) / 2
        ):
            out += lines
            continue
        joined = " ".join(lines)
        # A break after . ! ? before a capital (not after "4." in "4. Dezember") or after 。！？
        ends = r"(?<![\s(]\d\.)(?<![\s(]\d\d\.)(?<=[.!?؟])\s+(?=[\"'„«¿¡(\w])|(?<=[。！？])"
        pieces: list[str] = []
        for piece in (s.strip() for s in re.split(ends, joined) if s.strip()):
            if pieces and _continues(pieces[-1], piece):
                pieces[-1] += " " + piece
            else:
                pieces.append(piece)
        out += pieces
    return out


_ABBREVIATION = re.compile(
    r"(?<![\w.])(?:inkl|exkl|zzgl|ca|bzw|ggf|evtl|vgl|z\.\s?b|d\.\s?h|u\.\s?a|mt|st|dr|mr|mrs|ms|"
    r"prof|approx|e\.g|i\.e|p\.\s?ex|sr|sra|av|dott|sig|ing|ul|\w*str|руб|коп|тыс)\.$",
    re.I,
)
_MONTH_ABBREVIATION = re.compile(
    r"(?<![\w.])(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|janv|févr|avr|juil|déc|"
    r"okt|dez|ene|dic|gen|ago|set)\.$",
    re.I,
)
_NUMBER_SIGN = re.compile(r"(?<![\w.])(?:no|nr|n|núm|num|art|tel|ref)\.$", re.I)


def _continues(sentence: str, next_piece: str) -> bool:
    """Whether a split after `sentence` fell on an abbreviation rather than a sentence's
    end: "inkl. Versand", "Mt. Hood", "Dr. Weber", or "n." / "Nr." before a number."""
    if _ABBREVIATION.search(sentence):
        return True
    if _MONTH_ABBREVIATION.search(sentence) and re.match(
        r"(?:\d{1,2}(?:st|nd|rd|th)?|\d{4})\b", next_piece
    ):
        return True  # "by Dec. 18", "le 5 janv. 2027" is read whole: a date, not two sentences
    return bool(_NUMBER_SIGN.search(sentence) and re.match(r"#?[\w/-]*\d", next_piece))
