"""Classifying an email: a cascade per label set, cheapest tier first.

category: rules (unmistakable scams) → ml (TF-IDF + logistic regression) → the LLM;
priority: ml → the LLM. The ml tiers are trained from the labelled example emails in
`training/emails.jsonl` (priority's also from `training/priority_emails.jsonl`) the first
time the workflow is built, and stored as version 1 in the state directory; `llmflow
calibrate` and `llmflow distill` store newer versions (new thresholds, a model retrained from
the run history), which later builds use.

Every tier reads the same text: the sender, the subject, a blank line, and the newest message;
the priority ml tier also reads the urgency cues code finds in it (`priority_cues.py`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from ...analysis.tuning import save_version, tuned
from ...errors import InputError
from ...patterns.cascade import Cascade, cascade
from ...steps.classify import classify
from ...steps.ml import MLStep, data_hash, rules
from ...store.classifiers import ClassifierVersions
from .priority_cues import with_cues

TRAINING = Path(__file__).parent / "training" / "emails.jsonl"
PRIORITY_TRAINING = Path(__file__).parent / "training" / "priority_emails.jsonl"
"""Example emails written in groups of four that differ only in how urgent they are: the
priority ml tier trains on them too, the category tier does not (5-fold cross-validation on
the training mails, bench/RESULTS-triage-training-cv-priority-mails.md: priority 0.652 ->
0.715 with them, category 0.886 -> 0.878, as four mails of one topic and language in one
category teach category little but the topic and the script)."""
CALIBRATED = Path(__file__).parent / "calibrated.json"
"""Thresholds per LLM-tier model, measured by bench/triage_thresholds.py on the training
emails (for `local`, the embedded model)."""
INSTRUCTIONS = Path(__file__).parent / "instructions"
WORKFLOW = "email-triage"

# The ml tier reads character 2–5-grams besides words: it reads Chinese and Japanese, which
# have no spaces between words (5-fold cross-validation on the training emails: category
# 0.856 -> 0.874, priority 0.618 -> 0.636). Mails in Chinese, Japanese, Korean, Arabic and
# Hebrew are among the examples, so no rule answers by script: keyword rules for those
# scripts (billing or support on money or order words) scored below the ml tier alone on the
# same folds (0.858 against 0.874; on the mails in those scripts 0.529 against 0.671).
CHAR_NGRAMS = True

# The priority ml tier also reads the urgency cues code finds (a deadline today, tomorrow or
# by a weekday, "urgent", "FYI"), in many languages: 5-fold cross-validation on the training
# mails, priority accuracy 0.637 -> 0.652, macro-F1 0.428 -> 0.514 (see `priority_cues.py` and
# bench/RESULTS-triage-priority-cv.md). Category reads the mail alone.
CUED = {"priority"}

# Until `llmflow calibrate` measures better ones on your mail: an ml answer this sure is
# kept, anything less goes to the LLM.
DEFAULT_THRESHOLDS = {"category": 0.6, "priority": 0.5}

SPAM_RULES = [
    (
        r"\b(you('ve| have) (won|been selected)|lottery|claim your (prize|reward|winnings))\b",
        "spam",
    ),
    (r"\b(bitcoin|crypto(currency)?) (investment|opportunity|profits?)\b", "spam"),
    (r"\b(guaranteed|double) (returns?|profits?)\b", "spam"),
]


def classification_text(sender: str, subject: str, body: str) -> str:
    """What every tier reads (the sender tells colleagues from customers)."""
    return f"From: {sender}\nSubject: {subject}\n\n{body.strip()[:1500]}"


def training_rows(path: Path | None = None) -> list[dict[str, Any]]:
    """The example emails (`TRAINING` by default) as the text every tier reads and its labels."""
    path = path or TRAINING
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(
                {
                    "text": classification_text(row["from"], row["subject"], row["body"]),
                    "category": row["category"],
                    "priority": row["priority"],
                }
            )
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"line {number}: {e}", source=str(path)) from e
    return rows


def examples(name: str) -> list[dict[str, Any]]:
    """The example emails the ml tier of label set `name` trains on."""
    rows = training_rows()
    if name == "priority":
        rows += training_rows(PRIORITY_TRAINING)
    return rows


def cascades(home: Path, labels: dict[str, list[str]], model: str | None = None) -> list[Cascade]:
    """The category and priority cascades, with their newest stored versions applied."""
    built = []
    for name, choices in labels.items():
        ml = _trained(home, name)
        llm = classify(
            "llm",
            choices,
            instructions=(INSTRUCTIONS / "system.md").read_text(encoding="utf-8")
            + "\n\n"
            + (INSTRUCTIONS / f"{name}.md").read_text(encoding="utf-8"),
            model=model,
        )
        tiers = [(ml, DEFAULT_THRESHOLDS[name]), (llm, 0.0)]
        if name == "category":
            tiers.insert(0, (rules("rules", SPAM_RULES), 1.0))
        by_model = {
            model: [float(named.get(step.name, t)) for step, t in tiers]
            for model, cascades_ in _calibrated().items()
            if (named := cascades_.get(name)) is not None
        }
        flow = Cascade(name, tiers, by_model=by_model)
        built.append(tuned(flow, home, WORKFLOW))
    return built


@functools.cache
def _calibrated() -> dict[str, dict[str, dict[str, float]]]:
    if not CALIBRATED.is_file():
        return {}
    found: dict[str, dict[str, dict[str, float]]] = json.loads(CALIBRATED.read_text("utf-8"))
    return found


def _trained(home: Path, name: str) -> MLStep:
    """The ml tier: the stored newest version while it was made for the example emails as they
    are now, else trained now from them and stored as a new version (an update that changes
    the examples or the training options retrains: an old model is never used)."""
    versions = ClassifierVersions(home, WORKFLOW, name)
    latest = versions.latest()
    if latest is not None and (latest / "model.skops").is_file():
        made_for = ClassifierVersions.read_meta(latest).get("workflow_data_sha256")
        if made_for == examples_sha256(name):
            return MLStep.load("ml", latest / "model.skops", text=ml_text(name))
    ml = _from_examples(name)
    save_version(
        cascade(name, (ml, DEFAULT_THRESHOLDS[name])),
        home,
        WORKFLOW,
        meta={"source": f"trained from {_sources(name)} ({len(examples(name))} example emails)"},
    )
    return ml


def _sources(name: str) -> str:
    if name == "priority":
        return f"{TRAINING.name} and {PRIORITY_TRAINING.name}"
    return TRAINING.name


def examples_sha256(name: str) -> str:
    """The data hash (`MLStep.data_sha256`) of the ml tier trained from the example emails,
    computed without training it."""
    rows = examples(name)
    options = {"char_ngrams": CHAR_NGRAMS, "out_of_scope": None, "novelty": None}
    text = ml_text(name)
    return data_hash([text(r["text"]) for r in rows], [r[name] for r in rows], options)


def ml_text(name: str) -> Callable[[str], str]:
    """What the ml tier of label set `name` reads, from the text every tier reads."""
    return with_cues if name in CUED else str


def train_tier(name: str, texts: Sequence[str], labels: Sequence[str]) -> MLStep:
    """The ml tier of label set `name` as the triage trains it, on other rows (for out-of-fold
    answers): it reads `ml_text(name)` of each text, in training and when it runs."""
    text = ml_text(name)
    return MLStep.train("ml", [text(t) for t in texts], labels, char_ngrams=CHAR_NGRAMS, text=text)


@functools.cache
def _from_examples(name: str) -> MLStep:
    """Trained once per process (the examples ship with the package and do not change)."""
    rows = examples(name)
    return train_tier(name, [r["text"] for r in rows], [r[name] for r in rows])


def label_sets(category: Any, priority: Any) -> dict[str, list[str]]:
    """Label lists from the Literal types of the classification."""
    return {"category": list(get_args(category)), "priority": list(get_args(priority))}
