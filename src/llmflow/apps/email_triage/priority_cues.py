"""Urgency cues found by code, for the priority ml tier: a few words that say "soon" or "no
action" in many languages, turned into marker tokens the classifier reads beside the mail.

The ml tier learns its words from 605 example mails, two to four per language and label: it
cannot learn from them that "mañana", "明天" and "by Friday" all mean a deadline is near, or that
"dringend" and "至急" both ask for speed. A regular expression per cue can say so, and the tier
weighs the marker (`cue_deadline_soon`, ...) like any other word: a cue is evidence the model
learns the weight of from the examples, not a rule that sets a label.
Which cues are kept was decided by cross-validation on the training mails
(bench/RESULTS-triage-priority-cv.md): each kept cue lowers the out-of-fold macro-F1 when it
is left out. Cues for an outage, a double charge and a reminder were tried and dropped: they
fire on a handful of the example mails, and leaving them out changed accuracy and macro-F1 by
0.002 at most. Nothing here calls a model.
"""

from __future__ import annotations

import re

from ...steps.date_languages import SCRIPT_RELATIVE
from ...steps.grounding import WEEKDAYS

_WEEKDAY = "|".join(sorted((w for w in WEEKDAYS if len(w) > 3), key=len, reverse=True))


def _words(*alternatives: str) -> re.Pattern[str]:
    """Any of the alternatives, ignoring case (Chinese and Japanese have no spaces between
    words, so only the Latin-script alternatives are bounded by `\\b`)."""
    return re.compile("|".join(alternatives), re.IGNORECASE)


CUES: dict[str, re.Pattern[str]] = {
    # A deadline within a day or two: today, tonight, tomorrow, end of day, a weekday it is
    # needed by. Weekday names alone are not enough ("I ordered on Thursday").
    "cue_deadline_soon": _words(
        r"\b(?:today|tonight|tomorrow|heute|morgen früh|bis morgen|aujourd'hui|demain|hoy"
        r"|mañana|manana|amanhã|jutro|dzisiaj|yarın|bugün)\b",
        r"\b(?:end of (?:the )?day|eod|close of business|within (?:24|48) hours"
        r"|in (?:24|48) hours|next 24 hours)\b",
        rf"\b(?:by|before|until|no later than|bis|avant|avant le|antes del?|para el|até)"
        rf"\s+(?:this |next |(?:le |el )?)?(?:{_WEEKDAY})\b",
        SCRIPT_RELATIVE.pattern,
        r"내일|오늘",
    ),
    # Words that ask for speed, in the languages of the example mails.
    "cue_urgent_word": _words(
        r"\b(?:urgent|urgently|urgency|asap|as soon as possible|immediately|right away"
        r"|emergency|critical|time[- ]sensitive|dringend|sofort|eilig|umgehend|urgente"
        r"|urgentemente|d'urgence|immédiatement|inmediato|inmediatamente|imediatamente"
        r"|pilne|pilnie|natychmiast|acil|acilen|hemen)\b",
        r"紧急|緊急|加急|尽快|盡快|马上|立即|至急|大至急|急ぎ|긴급|급히|즉시",
        r"عاجل|فوراً|فورا|דחוף|בדחיפות|מיד",
    ),
    # Nothing to do: for information, thanks, a newsletter.
    "cue_no_action": _words(
        r"\b(?:fyi|for your information|no action (?:needed|required)|nothing to do"
        r"|no need to reply|no reply needed|just wanted to (?:say|let you know)|newsletter"
        r"|unsubscribe|zur info|zur kenntnis|pour info|pour information|para tu información"
        r"|sólo para informar|do wiadomości|bilginize)\b",
        r"仅供参考|僅供參考|参考まで|ご参考|참고용|للعلم|لعلمكم|לידיעתך|לידיעתכם",
    ),
}


def cues(text: str) -> list[str]:
    """The names of the cues found in `text`, in `CUES` order."""
    return [name for name, pattern in CUES.items() if pattern.search(text)]


def with_cues(text: str) -> str:
    """`text` with a last line naming its cues (unchanged when it has none): what the priority
    ml tier reads."""
    found = cues(text)
    return f"{text}\n\n{' '.join(found)}" if found else text
