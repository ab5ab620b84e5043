"""A cheap tier of prompt-injection detection: rules, then a small trained classifier.

`detect_injection(text)` flags text that tries to instruct the model instead of talking to
it: "ignore your instructions", fake system messages, role-play takeovers, instructions
addressed to an AI inside quoted mail or HTML comments, base64 that decodes to any of these,
in English, German, Spanish, French, Italian and Dutch. The rules name what they saw; the
classifier (TF-IDF word and character n-grams + logistic regression, `steps.ml`) is trained
on first use from `injections.jsonl` beside this file: 167 messages written for llmflow
(82 injections, 85 ordinary customer messages), released with the project under its licence.

It is a flag, not a wall: a workflow routes flagged items to a person (the result field,
a gate), while permissions, approvals and the claims check hold whatever the model reads.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

EXAMPLES = Path(__file__).with_name("injections.jsonl")
"""The labelled set the classifier is trained on (`{"text", "label"}`: injection, benign)."""
THRESHOLD = 0.5
"""The classifier's probability of `injection` at or above which text is flagged."""

RULES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "ignore instructions": r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}"
        r"\b(?:instructions?|rules|guidelines|prompt|policy|polic(?:ies)|checks?|approval|"
        r"everything|above|consignes|r[eè]gles)\b",
        "other-language ignore": r"\b(?:ignorier\w*|vergiss|ignora\w*|olvida\w*|ignorez|"
        r"oubliez|negeer)\b[^.\n]{0,40}\b(?:anweisungen|regeln|instrucciones|reglas|"
        r"instructions|consignes|istruzioni|instructies)\b",
        "fake system message": r"(?:^|[\n>\[{\"'(<]|\s)\s*(?:system|admin|administrator|"
        r"developer|assistant)\s*(?:message|note|update|override|prompt)?\s*[:\]>]"
        r"|<\|?im_start\|?>|\[/?INST\]|###\s*system|\"role\"\s*:\s*\"system\"",
        "role takeover": r"\byou are (?:now|no longer)\b|\b(?:pretend|act as|role-?play|simulate)\b"
        r"[^.\n]{0,60}\b(?:refund|admin|owner|unrestricted|no rules|bot|machine)\b"
        r"|\b(?:developer|admin|maintenance|god) mode\b|\bjailbreak\b|\bDAN\b",
        "instructions to the AI": r"\b(?:to|for) the (?:ai|assistant|agent|bot|model)\b|"
        r"\b(?:ai|assistant|agents?) (?:reading|processing|must|should)\b|"
        r"\bhidden instructions?\b|\bnew (?:instructions?|rules?|policy|system prompt)\b",
        "prompt leak": r"\b(?:reveal|print|show|repeat|output)\b[^.\n]{0,30}\b(?:system prompt|"
        r"(?:initial|hidden|original) instructions|instructions you were given)\b",
        "privilege claim": r"\b(?:elevated privileges|admin rights|ownership checks? "
        r"(?:is |are )?disabled|checks? (?:is |are )?disabled|authori[sz]ed? (?:to|you)|"
        r"verification complete|skip[- ]approval|--force)\b",
        "false claim request": r"\b(?:say|claim|tell (?:the customer|me)|confirm)\b[^.\n]{0,40}"
        r"\b(?:refund|order)\b[^.\n]{0,40}\b(?:issued|processed|confirmed|cancelled|approved)\b"
        r"[^.\n]{0,40}\b(?:even if|whether or not|even though|no need)\b",
        "html comment": r"<!--.*?-->",
        "tool syntax": r"\b(?:request_refund|look_up_customer|look_up_order|look_up_invoice)\s*\(",
    }.items()
}
"""What the rule tier looks for, by name."""

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")


class InjectionVerdict(BaseModel):
    """Whether text looks like a prompt injection, and why."""

    flagged: bool
    """Either tier thinks it is one: route the item to a person."""
    score: float
    """The classifier's probability that it is one."""
    rules: list[str]
    """The rules that matched (names from `RULES`)."""
    decoded: list[str] = []
    """Base64 found in the text, decoded (what the rules and classifier also read)."""


def decoded_base64(text: str) -> list[str]:
    """The printable text of every base64 run in `text`."""
    found = []
    for match in _BASE64.finditer(text):
        token = match.group(0)
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            plain = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if plain.isprintable() and sum(c.isalpha() for c in plain) > len(plain) / 2:
            found.append(plain)
    return found


_lock = threading.Lock()
_model: Any = None


def classifier() -> Any:
    """The trained classifier (trained once per process, on first use)."""
    global _model
    with _lock:
        if _model is None:
            from .ml import read_labelled, text_classifier

            texts, labels = read_labelled(EXAMPLES)
            _model = text_classifier(texts, labels, char_ngrams=True)
        return _model


def detect_injection(text: object) -> InjectionVerdict:
    """Rules and classifier on `text` (and on any base64 in it, decoded)."""
    body = "" if text is None else str(text)
    decoded = decoded_base64(body)
    readable = "\n".join([body, *decoded])
    rules = [name for name, rule in RULES.items() if rule.search(readable)]
    model = classifier()
    classes = list(model.classes_)
    parts = [body, *decoded] if body.strip() else decoded
    scores = [float(p[classes.index("injection")]) for p in model.predict_proba(parts or [""])]
    score = round(max(scores), 4)
    return InjectionVerdict(
        flagged=bool(rules) or score >= THRESHOLD, score=score, rules=rules, decoded=decoded
    )


def screen(text: Any) -> dict[str, Any]:
    """`detect_injection` as a workflow file's code step
    (`function: llmflow.steps.injection:screen`): the verdict as a mapping."""
    return detect_injection(text).model_dump()
