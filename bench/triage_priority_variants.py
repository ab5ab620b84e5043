"""Email triage's priority ml tier as it trains now: could another shape of the same tier do
better? Cross-validation on the training mails only (the sample inbox and the hard mails are
test sets, never read here).

Every variant trains on four fifths of the 970 mails of `training/emails.jsonl` plus all 320
contrastive priority mails (`training/priority_emails.jsonl`), as the triage's tier does, and
is scored on the held-out fifth of the 970; stratified 5-fold, the same shuffles for every
variant. The variants change one thing each against the tier as it is (`train_tier`: TF-IDF
words + character n-grams, calibrated logistic regression with C=10, the urgency cues):

- C=3 or C=30 (less or more weight on fitting the examples);
- class weights balanced (fewer urgent and high mails than normal and low ones);
- words only, no character n-grams;
- the subject read twice (it often says how urgent a mail is);
- a mail the category tier calls spam is low, whatever the priority tier says;
- the category appended as a word (`cat_billing`, ...): the gold category in training, in
  scoring the answer of the triage's category ml tier trained on the same four fifths (what
  it would read in a run if the priority cascade ran after the category one).

    .venv/bin/python bench/triage_priority_variants.py [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from llmflow.apps.email_triage.classifier import (
    PRIORITY_TRAINING,
    TRAINING,
    classification_text,
    train_tier,
)
from llmflow.apps.email_triage.priority_cues import with_cues
from llmflow.steps.ml import text_classifier

RESULTS = Path(__file__).with_name("RESULTS-triage-priority-variants.md")
Row = dict[str, str]
Predict = Callable[[Sequence[Row]], list[str]]


def load(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["text"] = classification_text(row["from"], row["subject"], row["body"])
            rows.append(row)
    return rows


def as_now(fit: Sequence[Row], _: Sequence[Row]) -> Predict:
    ml = train_tier("priority", [r["text"] for r in fit], [r["priority"] for r in fit])
    return lambda rows: [str(a.label) for a in ml.predict([ml.text(r["text"]) for r in rows])]


def pipeline(
    text: Callable[[Row], str], chars: bool = True, **estimator: Any
) -> Callable[[Sequence[Row], Sequence[Row]], Predict]:
    """A variant of the tier: what it reads (`text`), character n-grams or not, and options
    of its logistic regression."""

    def train(fit: Sequence[Row], _: Sequence[Row]) -> Predict:
        texts, labels = [text(r) for r in fit], [r["priority"] for r in fit]
        model = text_classifier(texts, labels, char_ngrams=chars)
        if estimator:
            model.set_params(
                **{f"calibratedclassifiercv__estimator__{k}": v for k, v in estimator.items()}
            )
            model.fit(texts, labels)
        return lambda rows: [str(label) for label in model.predict([text(r) for r in rows])]

    return train


def cued(row: Row) -> str:
    return with_cues(row["text"])


def subject_twice(row: Row) -> str:
    head = row["text"].split("\n\n", 1)[0]
    return with_cues(f"{head}\n{row['text']}")


def with_category(fit: Sequence[Row], first_fit: Sequence[Row]) -> Predict:
    """Priority reads the category too: gold in training, the category tier's answer in
    scoring (trained on the same fold's mails of `emails.jsonl`)."""
    category = train_tier(
        "category", [r["text"] for r in first_fit], [r["category"] for r in first_fit]
    )

    def text(row: Row, label: str) -> str:
        return f"{with_cues(row['text'])}\n\ncat_{label}"

    model = text_classifier(
        [text(r, r["category"]) for r in fit], [r["priority"] for r in fit], char_ngrams=True
    )

    def predict(rows: Sequence[Row]) -> list[str]:
        said = [str(a.label) for a in category.predict([r["text"] for r in rows])]
        read = [text(r, c) for r, c in zip(rows, said, strict=True)]
        return [str(label) for label in model.predict(read)]

    return predict


def spam_is_low(fit: Sequence[Row], first_fit: Sequence[Row]) -> Predict:
    """The tier as it is, but a mail the category tier calls spam is low (the definition:
    low = no action needed, spam included), as `workflow._classification` does."""
    priority = as_now(fit, first_fit)
    category = train_tier(
        "category", [r["text"] for r in first_fit], [r["category"] for r in first_fit]
    )

    def predict(rows: Sequence[Row]) -> list[str]:
        said = [str(a.label) for a in category.predict([r["text"] for r in rows])]
        return ["low" if c == "spam" else p for p, c in zip(priority(rows), said, strict=True)]

    return predict


VARIANTS: dict[str, Callable[[Sequence[Row], Sequence[Row]], Predict]] = {
    "as now (C=10, words + characters, cues)": as_now,
    "C=3": pipeline(cued, C=3.0),
    "C=30": pipeline(cued, C=30.0),
    "class weights balanced": pipeline(cued, class_weight="balanced"),
    "words only": pipeline(cued, chars=False),
    "the subject read twice": pipeline(subject_twice),
    "the category appended": with_category,
    "spam is low (the category tier's spam)": spam_is_low,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    first, contrastive = load(TRAINING), load(PRIORITY_TRAINING)
    gold = [r["priority"] for r in first]
    started = time.perf_counter()
    lines = []
    for variant, train in VARIANTS.items():
        runs = []
        for seed in range(args.seeds):
            said = [""] * len(first)
            folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(gold, gold)
            for fold, held in folds:
                first_fit = [first[i] for i in fold]
                predict = train([*first_fit, *contrastive], first_fit)
                for i, label in zip(held, predict([first[i] for i in held]), strict=True):
                    said[i] = label
            right = sum(s == g for s, g in zip(said, gold, strict=True)) / len(gold)
            runs.append((right, float(f1_score(gold, said, average="macro"))))
        accuracy = sum(a for a, _ in runs) / len(runs)
        macro = sum(m for _, m in runs) / len(runs)
        per_seed = ", ".join(f"{a:.3f}" for a, _ in runs)
        lines.append(f"| {variant} | {accuracy:.3f} | {macro:.3f} | {per_seed} |")
        print(lines[-1], flush=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# Email triage: other shapes of the priority ml tier, by cross-validation",
                "",
                f"Measured {date.today()} by `bench/triage_priority_variants.py` on Python "
                f"{platform.python_version()} ({platform.machine()}) in "
                f"{time.perf_counter() - started:.0f} s: trained on four fifths of the "
                f"{len(first)} mails of `emails.jsonl` and all {len(contrastive)} contrastive "
                "priority mails, scored on the held-out fifth; stratified 5-fold, "
                f"{args.seeds} shuffle(s) (seeds {list(range(args.seeds))}). Neither the "
                "sample inbox nor the hard mails were used.",
                "",
                "| variant | accuracy | macro-F1 | accuracy per shuffle |",
                "|---|---:|---:|---|",
                *lines,
                "",
            ]
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
