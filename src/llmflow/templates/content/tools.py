"""Code steps of the content template: the style guide, and the checks code can make.

The style guide (`style_guide.md` beside this file, or the file named by
`CONTENT_STYLE_GUIDE`) is written for people and read by the model. Its measurable rules, the
word limits under `## Length` and the words under `## Never use`, are also checked by code,
with two rules of any guide (name the product; the text only, no headings): a draft that
breaks one cannot pass, whatever the model's critique says.
"""

# No `from __future__ import annotations`: pydantic resolves these models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmflow import ConfigError, Evaluation

DEFAULT_GUIDE = Path(__file__).parent / "style_guide.md"


def guide_path() -> Path:
    """The style guide: `CONTENT_STYLE_GUIDE`, else the one beside this file."""
    configured = os.environ.get("CONTENT_STYLE_GUIDE")
    return Path(configured) if configured else DEFAULT_GUIDE


def style_guide(item: Any = None) -> str:
    """The style guide's text, for the prompts (the item is not needed)."""
    path = guide_path()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read the style guide {path}: {e.strerror}") from e


class StyleRules(BaseModel):
    """The measurable rules of a style guide."""

    max_words: dict[str, int]
    """Per kind of text (`product description`), its word limit."""
    banned: list[str]
    """Words and phrases never to use."""


def _section(guide: str, title: str) -> list[str]:
    """The `- ` items under the `## title` heading."""
    match = re.search(rf"^##\s+{re.escape(title)}\s*$(.*?)(?=^##\s|\Z)", guide, re.M | re.S | re.I)
    if not match:
        return []
    return [line[2:].strip() for line in match.group(1).splitlines() if line.startswith("- ")]


def style_rules(guide: str) -> StyleRules:
    """The word limits (`- <kind>: at most <n> words` under `## Length`) and banned words
    (under `## Never use`) of a style guide."""
    limits: dict[str, int] = {}
    for line in _section(guide, "Length"):
        rule = re.fullmatch(r"(.+?):\s*at most\s+(\d+)\s+words?\.?", line, re.I)
        if not rule:
            raise ConfigError(
                f"style guide, ## Length: {line!r} is not '<kind>: at most <n> words'"
            )
        limits[rule.group(1).strip().lower()] = int(rule.group(2))
    return StyleRules(max_words=limits, banned=[w.lower() for w in _section(guide, "Never use")])


class StyleCheck(BaseModel):
    """What code found in a draft."""

    words: int
    max_words: int | None
    """The limit for this kind of text, when the guide sets one."""
    banned_used: list[str]
    names_subject: bool
    issues: list[str]
    """Each broken rule, as feedback the writer can act on."""
    ok: bool
    """No rule broken."""


def check_style(payload: dict[str, Any]) -> StyleCheck:
    """Check a draft (`text`) for a brief (`brief`: `kind`, `subject`) against the guide."""
    text = str(payload.get("text") or "")
    brief = payload.get("brief") or {}
    kind = str(brief.get("kind", "")).strip().lower()
    subject = str(brief.get("subject", "")).strip()
    rules = style_rules(style_guide())
    words = len(re.findall(r"\b[\w'’-]+\b", text))
    limit = rules.max_words.get(kind)
    lowered = text.lower()
    banned = [w for w in rules.banned if re.search(rf"\b{re.escape(w)}\b", lowered)]
    names_subject = bool(subject) and subject.lower() in lowered
    issues: list[str] = []
    if not text.strip():
        issues.append("the draft is empty")
    if limit is not None and words > limit:
        issues.append(f"{words} words: cut it to at most {limit}")
    if banned:
        issues.append(f"remove {', '.join(repr(w) for w in banned)} (the guide never uses them)")
    if re.search(r"^\s*#", text, re.M):
        issues.append("remove the headings: give the text only")
    if subject and not names_subject and kind == "product description":
        issues.append(f"name the product, {subject!r}")
    return StyleCheck(
        words=words,
        max_words=limit,
        banned_used=banned,
        names_subject=names_subject,
        issues=issues,
        ok=not issues,
    )


def verdict(payload: dict[str, Any]) -> Evaluation:
    """The editor's `critique` overruled by the code `check`: a draft that breaks a
    measurable rule does not pass, and the broken rules lead the feedback."""
    critique = Evaluation.model_validate(payload["critique"])
    check = StyleCheck.model_validate(payload["check"])
    if check.ok:
        return critique
    feedback = "; ".join(check.issues) + (
        f". Also: {critique.feedback}" if critique.feedback else ""
    )
    return Evaluation(passed=False, score=min(critique.score, 5.0), feedback=feedback[:1000])
