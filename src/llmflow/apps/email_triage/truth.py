"""What the triage writes, checked by code: facts by code first, the model's answers only
when grounded in the mail, and code fallbacks that cannot invent anything.

Per field, a tier: "code" (regexes, the date reader, extractive sentences, a reply template)
or "llm" (the model's answer, kept only if it passes the checks here; else the code answer,
and the rejection is recorded). `LOCAL_TIERS` is what `bench/triage_truth.py` measured best
on the embedded model.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from typing import Literal

from ...inputs.email import GAP, Email
from ...steps.grounding import Source, echoes, find_dates, split_sentences, ungrounded

Tier = Literal["llm", "code"]
FIELDS = ("summary", "request", "deadline", "needs_reply", "reply")
LOCAL_TIERS: dict[str, Tier] = {
    "summary": "code",
    "request": "code",
    "deadline": "code",
    "needs_reply": "code",
    "reply": "code",
}
"""The tier per field on the embedded model, as bench/RESULTS-triage-truth.md measured."""
MODEL_TIERS: dict[str, Tier] = {f: "llm" for f in FIELDS}
"""On any other model: its answers, each checked by code, with the code tier as fallback."""

SIGNATURE = "Northwind Outfitters"


def mail_date(email: Email) -> dt.date | None:
    return dt.date.fromisoformat(email.date[:10]) if email.date else None


def source_of(email: Email) -> Source:
    """What a fact must be found in: the sender, the subject, the whole text, attachments."""
    names = " ".join(a.filename for a in email.attachments)
    return _source(f"{email.sender}\n{email.subject}\n{names}\n{email.body}", mail_date(email))


@functools.lru_cache(maxsize=64)
def _source(text: str, ref: dt.date | None) -> Source:
    return Source.of(text, ref)  # indexed once per mail, checked many times


def _content(email: Email) -> list[str]:
    """The sentences of the newest message, greetings and sign-offs left out."""
    text = email.excerpt.replace(GAP.strip(), "\n\n")
    out = []
    for s in split_sentences(text):
        if re.fullmatch(
            r"(hi|hello|hey|dear|hallo|bonjour|hola|guten tag|liebe[rs]?|sehr geehrte[rs]?|"
            r"estimad[oa]s?|madame|monsieur)\b.{0,60}",
            s,
            re.I,
        ):
            continue
        if re.fullmatch(
            r"(thanks?|thank you|best|regards|kind regards|cheers|mit freundlichen grüßen|"
            r"cordialement|saludos|merci|gracias|viele grüße)\b.{0,40}",
            s,
            re.I,
        ):
            continue
        if len(s) < 12 or s.lower().startswith(("forwarded message", "from:", "subject:")):
            continue
        out.append(s)
    return out


def summary_by_code(email: Email, limit: int = 240) -> str:
    """An extractive summary: the message's first sentence and the sentence that asks
    something, as written, within `limit` characters. Nothing in it is not in the mail."""
    sentences = _content(email)
    picked = list(dict.fromkeys([*sentences[:1], *_asks(email)[:1]]))
    if picked and len(" ".join(picked)) > limit:
        picked = picked[:1]
    text = " ".join(picked)
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text or email.subject


def text_problems(text: str, email: Email, instructions: list[str]) -> str | None:
    """Why a model's summary or request cannot be shown (it copies `instructions` back, or
    states a fact the mail does not), or None."""
    if echoes(text, instructions):
        return "echoes the instructions"
    bad = ungrounded(
        text,
        source_of(email),
        allowed=[SIGNATURE],
        ref=mail_date(email),
        names=names_checkable(email),
    )
    return f"ungrounded: {', '.join(bad[:5])}" if bad else None


_ASK = re.compile(
    r"\b(please|pls|kindly|could you|can you|would you|will you|let me know|let us know|"
    r"bitte|könnten sie|können sie|würden sie|por favor|podrían|podrian|pueden|puede|"
    r"merci de|pourriez|pouvez|pourrais|veuillez|reply to this (e-?mail|message)|respond by)\b"
    r"|[?？]|请|麻烦|能否|お願い|ください|부탁|주세요|الرجاء|يرجى|נא |בבקשה",
    re.I,
)
_WISH = re.compile(
    r"\b(i'?d (just |really )?like|i would like|we'?d like|we would like|we need|i need|i want|"
    r"send (me|us)|ich möchte|wir möchten|quisiera|necesito|je voudrais|nous voudrions)\b",
    re.I,
)


def _asks(email: Email) -> list[str]:
    """The sentences that ask something, best first: questions, then please / could you,
    then wishes (I'd like, we need), each in mail order."""
    sentences = [s for s in _content(email) if not s.rstrip().endswith(":")]
    questions = [s for s in sentences if re.search(r"[?？]", s)]
    asks = [s for s in sentences if _ASK.search(s) and s not in questions]
    wishes = [s for s in sentences if _WISH.search(s) and s not in questions + asks]
    return questions + asks + wishes


def request_by_code(email: Email) -> str:
    """The sentence of the newest message that asks something (a question, please / could
    you, I'd like, in several languages), as written; empty when none does."""
    for s in _asks(email):
        return s if len(s) <= 200 else s[:199].rsplit(" ", 1)[0] + "…"
    return ""


_CUE = re.compile(
    r"\b(by|until|before|no later than|deadline|due|latest|at the latest|need(ed)? (it )?(on|for)|"
    r"bis|spätestens|frist|fällig|avant|d'ici|au plus tard|échéance|jusqu'au|"
    r"antes|para el|a más tardar|plazo|hasta)\b",
    re.I,
)
_THEN = re.compile(r"\b(before|by|until) then\b|\bbis dahin\b|\bavant cette date\b", re.I)


def deadline_by_code(email: Email) -> dt.date | None:
    """The date by which the sender wants something, on or after the mail's date: a date in
    the request itself (or "before then": the date of the sentence before it), else the first
    one in a sentence with a deadline cue ("by", "until", "bis", "avant", "antes de"), or
    today / tomorrow in a sentence that asks. None when the mail states none."""
    ref = mail_date(email)
    sentences = _content(email)

    def dates(s: str) -> list[dt.date]:
        return [
            d.value
            for d in find_dates(s, ref)
            if d.value.year > 1 and (ref is None or d.value >= ref)
        ]

    asks = _asks(email)
    if asks:
        request = asks[0]
        if found := dates(request):
            return found[0]
        if _THEN.search(request) and request in sentences:
            before = sentences[: sentences.index(request)]
            if before and (found := dates(before[-1])):
                return found[-1]
    for s in sentences:
        if _CUE.search(s) or (_ASK.search(s) or _WISH.search(s)):
            found = (
                dates(s)
                if _CUE.search(s)
                else [d for d in dates(s) if ref and d <= ref + dt.timedelta(days=1)]
            )
            if found:
                return found[0]
    return None


def deadline_of_model(answer: str | None, email: Email) -> tuple[dt.date | None, str | None]:
    """The model's deadline as a date, if it is one and the mail states it; else None and
    why it was refused."""
    if not answer or not answer.strip() or answer.strip().lower() in ("null", "none", "n/a"):
        return None, None
    found = find_dates(answer, mail_date(email))
    if not found:
        return None, f"not a date: {answer[:60]!r}"
    if not source_of(email).states_date(found[0].value):
        return None, f"a date the mail does not state: {answer[:60]!r}"
    return found[0].value, None


_CURRENCY = {
    "$": "USD", "us$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR", "euro": "EUR",
    "euros": "EUR", "£": "GBP", "gbp": "GBP", "chf": "CHF", "¥": "JPY", "jpy": "JPY",
    "cny": "CNY", "rmb": "CNY", "元": "CNY", "cad": "CAD", "aud": "AUD", "sek": "SEK",
}  # fmt: skip
_CUR = r"(?:US\$|\$|€|£|¥|元|USD|EUR|GBP|CHF|JPY|CNY|RMB|CAD|AUD|SEK|euros?)"
_CUR_AFTER = r"(?:€|元|USD|EUR|GBP|CHF|JPY|CNY|RMB|CAD|AUD|SEK|euros?)"
_AMOUNT_NUM = r"\d{1,3}(?:[,.\u00a0\u202f' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?P<c1>{_CUR})\s?(?P<n1>{_AMOUNT_NUM})(?![\d])"
    rf"|(?<![\w.,-])(?P<n2>{_AMOUNT_NUM})\s?(?P<c2>{_CUR_AFTER})(?![A-Za-z])",
    re.I,
)


def _amount_value(token: str) -> Decimal | None:
    t = re.sub(r"[\u00a0\u202f' ]", "", token)
    decimal_comma = re.search(r",\d{1,2}$", t)  # 1.250,00 or 12,50
    t = t.replace(".", "").replace(",", ".") if decimal_comma else t.replace(",", "")
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def amounts_by_code(email: Email) -> list[str]:
    """Money amounts in the mail, normalised as "<value> <ISO currency>" ("4820.00 USD")."""
    out: list[str] = []
    for m in _AMOUNT.finditer(f"{email.subject}\n{email.body}"):
        number = m.group("n1") or m.group("n2")
        currency = _CURRENCY.get((m.group("c1") or m.group("c2")).lower())
        value = _amount_value(number)
        if value is not None and currency:
            out.append(f"{value:.2f} {currency}")
    return list(dict.fromkeys(out))[:8]


def needs_reply_by_code(email: Email, category: str | None) -> bool:
    """A reply is needed when a customer, prospect or colleague asks something: not spam,
    and the newest message holds a request."""
    if category == "spam" or email.kind != "message":
        return False
    return bool(request_by_code(email))


def names_checkable(email: Email) -> bool:
    """Whether capitalised words can be checked as names: not in German, which capitalises
    every noun."""
    return language(email.excerpt) != "de"


def language(text: str) -> str:
    """A rough guess of the mail's language from its commonest words: en, de, fr, es, or
    "other" (CJK, right-to-left, and anything else)."""
    if re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af\u0590-\u06ff]", text):
        return "other"
    words = re.findall(r"[a-zäöüßàâçéèêëîïôûùüÿñáíóú]+", text.lower())
    marks = {
        "en": {"the", "and", "you", "is", "to", "please", "we", "our", "your"},
        "de": {"und", "der", "die", "das", "ich", "sie", "bitte", "wir", "nicht", "ist"},
        "fr": {"le", "la", "les", "et", "je", "vous", "nous", "est", "pour", "merci"},
        "es": {"el", "los", "las", "y", "que", "por", "para", "usted", "gracias", "mi"},
    }
    scores = {lang: sum(w in m for w in words) for lang, m in marks.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] else "en"


def first_name(email: Email) -> str | None:
    """The sender's first name from the From header's display name, when it looks like a
    person's (not "Accounts Receivable" or "noreply")."""
    name, _ = parseaddr(email.sender)
    words = name.replace('"', "").split()
    if not words or not words[0].isalpha() or len(words) > 4:
        return None
    roles = set(
        [
            "team",
            "support",
            "accounts",
            "billing",
            "service",
            "noreply",
            "no-reply",
            "info",
            "sales",
            "admin",
            "notifications",
            "the",
            "customer",
            "receivable",
            "hr",
            "it",
        ]
    )
    if any(w.lower() in roles for w in words):
        return None
    return words[0]


_TEMPLATES = {
    "en": ("Hello {name},", "Hello,", "Thank you for your message{about}. We have received it, "
           "and {team} will come back to you shortly.", "Kind regards,"),
    "de": ("Hallo {name},", "Guten Tag,", "vielen Dank für Ihre Nachricht{about}. Wir haben sie "
           "erhalten und melden uns in Kürze bei Ihnen.", "Mit freundlichen Grüßen"),
    "fr": ("Bonjour {name},", "Bonjour,", "Merci pour votre message{about}. Nous l'avons bien "
           "reçu et nous revenons vers vous très prochainement.", "Cordialement,"),
    "es": ("Hola {name}:", "Hola:", "Gracias por su mensaje{about}. Lo hemos recibido y le "
           "responderemos en breve.", "Saludos cordiales,"),
}  # fmt: skip
_ABOUT = {"en": " about {ids}", "de": " zu {ids}", "fr": " concernant {ids}", "es": " sobre {ids}"}
_TEAMS = {
    "billing": "our billing team",
    "support": "our customer service team",
    "sales": "our sales team",
    "internal": "I",
}


def reply_by_code(
    email: Email, category: str | None, ids: list[str], signature: str = SIGNATURE
) -> str:
    """A reply from a template per language and category, filled by code: the sender's
    first name, the ids the mail names, our signature. It promises nothing but an answer."""
    lang = language(email.excerpt)
    hello, anonymous, body, bye = _TEMPLATES.get(lang, _TEMPLATES["en"])
    name = first_name(email)
    about = _ABOUT.get(lang, _ABOUT["en"]).format(ids=", ".join(ids[:3])) if ids else ""
    team = _TEAMS.get(category or "", "our team")
    text = body.format(about=about, team=team)
    return "\n".join([hello.format(name=name) if name else anonymous, "", text, "", bye, signature])


_PLACEHOLDER = re.compile(
    r"\[[^\]\n]{1,40}\]|<[^>\n]{1,40}>|\{[^}\n]{0,40}\}|\byour (full )?name\b|\bXXX+\b", re.I
)


def reply_problems(
    reply: str, email: Email, signature: str = SIGNATURE, *, cut_off: bool = False
) -> list[str]:
    """Why a drafted reply cannot be shown: cut off at max_tokens, a placeholder left in,
    signed with the customer's name or not as us, a fact the mail does not state."""
    problems = []
    if cut_off:
        problems.append("cut off at max_tokens")
    if m := _PLACEHOLDER.search(reply):
        problems.append(f"placeholder {m.group(0)!r}")
    if signature.lower() not in reply.lower():
        problems.append(f"not signed as {signature!r}")
    name, _ = parseaddr(email.sender)
    tail = "\n".join(reply.strip().splitlines()[-3:]).lower()
    for word in name.replace('"', "").split():
        if len(word) > 2 and word.lower() in tail and word.lower() not in signature.lower():
            problems.append(f"signed with the sender's name {word!r}")
            break
    bad = ungrounded(
        reply,
        source_of(email),
        allowed=[signature, email.sender],
        ref=mail_date(email),
        names=names_checkable(email),
    )
    if bad:
        problems.append("ungrounded: " + ", ".join(bad[:5]))
    return problems
