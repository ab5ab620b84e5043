"""Claims checked by code: a reply may only say that what happened happened.

`claims_match_actions` is a step to put after an agent: it finds what the reply asserts
about actions ("I have refunded NW-1042", "your order was cancelled", "the mail is sent")
and compares each with the tool calls of the item that actually succeeded
(`RunContext.actions`: side-effect tools, kind `action`, status ok). A claim with no such
call behind it (the tool was refused, rejected, failed, or never called; or it acted on
another id than the one claimed) is a mismatch: the reply is rewritten (or the item fails,
`on_mismatch="block"`), and the mismatch is recorded in the step's output.

The claim patterns are deliberately plain (past tense and "has been done" forms, in
English, German, Spanish and French); a negated or future sentence ("was not refunded",
"will be refunded once approved") is not a claim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .base import Step
from .context import RunContext
from .principal import ActionRecord, ToolRefusedError


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """How a reply claims one kind of action, and which tools can make it true."""

    claim: re.Pattern[str]
    """Words that assert it happened."""
    tools: re.Pattern[str]
    """The names of tools that do it."""


def _claim(words: str, tools: str) -> ActionClaim:
    return ActionClaim(re.compile(words, re.IGNORECASE), re.compile(tools, re.IGNORECASE))


_DONE = r"(?:issued|processed|made|completed|confirmed|recorded|approved|initiated|done|placed)"
CLAIMS: dict[str, ActionClaim] = {
    "refund": _claim(
        rf"\brefunded\b|\brefund\b[\w\s.,€$]{{0,40}}?\b(?:has been|have been|was|is|got|been)\s+"
        rf"{_DONE}\b|\b{_DONE}\s+(?:a|the|your)\s+(?:full\s+)?refund\b|\berstattet\b|"
        r"\bR[üu]ckerstattung\b[\w\s]{0,30}?\b(?:veranlasst|bearbeitet|ausgef[üu]hrt)\b|"
        r"\breembols(?:ado|ada|amos)\b|\brembours[ée]e?s?\b",
        r"refund",
    ),
    "cancel": _claim(r"\bcancell?ed\b|\bstorniert\b|\bcancelad[oa]\b|\bannul[ée]e?s?\b", r"cancel"),
    "send": _claim(
        r"\b(?:sent|e-?mailed|mailed|forwarded)\b|\bgesendet\b|\benviad[oa]\b", r"send|mail"
    ),
    "book": _claim(
        r"\b(?:booked|reserved|scheduled)\b|\bgebucht\b|\breservad[oa]\b", r"book|reserv|schedul"
    ),
    "charge": _claim(r"\b(?:charged|billed)\b", r"charge|bill|pay"),
    "delete": _claim(r"\b(?:deleted|removed|erased)\b", r"delete|remove|erase"),
    "change": _claim(
        r"\b(?:updated|changed)\s+(?:your|the)\s+(?:address|email|account|order|details)\b",
        r"update|change|edit",
    ),
}
"""The action claims checked by default, by name."""

_NOT = re.compile(
    r"\b(?:not|no|never|cannot|can't|couldn't|could not|unable|won't|will|would|once|if|"
    r"until|after|pending|awaiting|waiting|before|nicht|kein|keine|no se|pas|ne)\b|n't\b",
    re.IGNORECASE,
)
"""Words that make the claim that follows them in its sentence not (yet) a fact."""
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=\S))+[.!?]*")
"""A sentence: up to a stop followed by a space or the end (119.90 EUR stays whole)."""
_ID = re.compile(r"\b[A-Z]{1,5}-\d{2,}\b|#\d{3,}\b")
"""Ids a claim names (NW-1042, INV-2026-0412, #1042): each must be in the action's call."""


class Mismatch(BaseModel):
    """A claim in a reply with no successful action behind it."""

    action: str
    """Which kind of action (refund, cancel, ...)."""
    sentence: str
    """The reply's sentence that claims it."""
    why: str
    """What the run's tool calls show instead."""


class ClaimsCheck(BaseModel):
    """The outcome of checking a reply's claims against the run's actions."""

    ok: bool
    """Every claim has a successful action behind it."""
    message: str
    """The reply to send: the original when ok, else the rewritten one."""
    original: str
    """The reply as the agent wrote it."""
    claims: list[str]
    """The kinds of action the reply claims."""
    mismatches: list[Mismatch]
    """Claims with no action behind them."""
    actions: list[str]
    """The side-effect tool calls that succeeded (`tool(arguments)`)."""


def claimed(text: str, claims: Mapping[str, ActionClaim] = CLAIMS) -> list[tuple[str, str]]:
    """The (action, sentence) pairs that `text` asserts happened."""
    found: list[tuple[str, str]] = []
    for sentence in (m.group(0).strip() for m in _SENTENCE.finditer(text or "")):
        for action, claim in claims.items():
            for match in claim.claim.finditer(sentence):
                if not _NOT.search(sentence[: match.start()][-40:]):
                    found.append((action, sentence))
                    break
    return found


def _shown(record: ActionRecord) -> str:
    args = record.arguments
    if isinstance(args, dict):
        return f"{record.tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    return f"{record.tool}({args!r})"


def check_claims(
    reply: str,
    actions: list[ActionRecord],
    *,
    claims: Mapping[str, ActionClaim] = CLAIMS,
    rewrite: Callable[[list[Mismatch], str], str] | None = None,
) -> ClaimsCheck:
    """Check `reply` against `actions` (see the module's docstring)."""
    done = [a for a in actions if a.side_effect and a.status == "ok"]
    mismatches: list[Mismatch] = []
    kinds: list[str] = []
    for action, sentence in claimed(reply, claims):
        kinds.append(action)
        tools = claims[action].tools
        matching = [a for a in done if tools.search(a.tool)]
        if not matching:
            tried = [a for a in actions if tools.search(a.tool)]
            why = (
                "; ".join(f"{_shown(a)} {a.status}" for a in tried)
                if tried
                else f"no {action} tool was called"
            )
            mismatches.append(Mismatch(action=action, sentence=sentence, why=why))
            continue
        evidence = " ".join(f"{_shown(a)} {a.result}" for a in matching).upper()
        missing = [i for i in _ID.findall(sentence) if i.upper().lstrip("#") not in evidence]
        if missing:
            why = f"{', '.join(missing)}: no successful {action} of it in this run"
            mismatches.append(Mismatch(action=action, sentence=sentence, why=why))
    ok = not mismatches
    message = reply if ok else (rewrite or default_rewrite)(mismatches, reply)
    return ClaimsCheck(
        ok=ok,
        message=message,
        original=reply,
        claims=sorted(set(kinds)),
        mismatches=mismatches,
        actions=[_shown(a) for a in done],
    )


def default_rewrite(mismatches: list[Mismatch], reply: str) -> str:
    """The reply sent instead of one that claims what did not happen."""
    kinds = sorted({m.action for m in mismatches})
    return (
        f"I'm sorry: I could not complete that ({', '.join(kinds)}): nothing of the kind was "
        "done in this conversation. A member of our team will look at your request and get "
        "back to you."
    )


class ClaimsMatchActions(Step[Any, ClaimsCheck]):
    """Checks an agent's reply against the tool calls that succeeded in the item."""

    kind = "check"

    def __init__(
        self,
        name: str = "claims",
        *,
        reply: Callable[[Any], str] | None = None,
        claims: Mapping[str, ActionClaim] = CLAIMS,
        on_mismatch: Literal["rewrite", "block"] = "rewrite",
        rewrite: Callable[[list[Mismatch], str], str] | None = None,
    ) -> None:
        super().__init__(name)
        self.reply = reply or reply_text
        """Finds the reply's text in the step's input."""
        self.claims = claims
        self.on_mismatch = on_mismatch
        self.rewrite = rewrite

    async def run(self, input: Any, ctx: RunContext) -> ClaimsCheck:
        result = check_claims(
            self.reply(input), ctx.actions, claims=self.claims, rewrite=self.rewrite
        )
        if not result.ok and self.on_mismatch == "block":
            problems = "; ".join(f"{m.sentence!r} ({m.why})" for m in result.mismatches)
            raise ToolRefusedError(
                ctx.path, f"the reply claims what did not happen: {problems}", status="blocked"
            )
        return result


def reply_text(value: Any) -> str:
    """The text of a reply: a string, a `message`/`text`/`reply` field, or its str()."""
    if isinstance(value, str):
        return value
    for key in ("message", "text", "reply", "answer"):
        found = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if isinstance(found, str):
            return found
    return "" if value is None else str(value)


def claims_match_actions(
    name: str = "claims",
    *,
    reply: Callable[[Any], str] | None = None,
    claims: Mapping[str, ActionClaim] = CLAIMS,
    on_mismatch: Literal["rewrite", "block"] = "rewrite",
    rewrite: Callable[[list[Mismatch], str], str] | None = None,
) -> ClaimsMatchActions:
    """A step that checks a reply's claims about actions against what the run did; put it
    after an agent. Its output's `message` is the reply to send."""
    return ClaimsMatchActions(
        name, reply=reply, claims=claims, on_mismatch=on_mismatch, rewrite=rewrite
    )


def check_reply(reply: Any, ctx: RunContext) -> dict[str, Any]:
    """`claims_match_actions` as a code step of a workflow file
    (`function: llmflow.steps.claims:check_reply`): the check's output, as a mapping."""
    return check_claims(reply_text(reply), ctx.actions).model_dump()
