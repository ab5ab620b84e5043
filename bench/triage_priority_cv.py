"""Email triage's priority ml tier: the choices of issue 13, compared by cross-validation on the
training mails only (the sample inbox and the hard mails are test sets, never read here).

Each variant is the triage's own ml tier (`MLStep.train`, TF-IDF words + character n-grams,
calibrated logistic regression), trained on four fifths of the 605 training mails and scored
on the fifth it did not see; stratified 5-fold, repeated with 2 shuffles (10 fits per
variant). Variants: the code cues (`priority_cues.py`) appended to the text or not, and class
weights balanced or not (fewer urgent and high mails than normal and low ones), and the cues
less one cue at a time. Category is scored with and without the cues as a check.

    .venv/bin/python bench/triage_priority_cv.py
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from llmflow import MLStep
from llmflow.apps.email_triage.classifier import CHAR_NGRAMS, training_rows
from llmflow.apps.email_triage.priority_cues import CUES, cues, with_cues

RESULTS = Path(__file__).with_name("RESULTS-triage-priority-cv.md")
SEEDS = (0, 1)


def _train(texts: list[str], labels: list[str], balanced: bool) -> Any:
    ml = MLStep.train("ml", texts, labels, char_ngrams=CHAR_NGRAMS)
    if balanced:  # the same pipeline refitted with class weights inverse to class frequency
        ml.model.set_params(calibratedclassifiercv__estimator__class_weight="balanced")
        ml.model.fit(texts, labels)
    return ml


def cross_validate(
    texts: list[str], labels: list[str], text: Callable[[str], str], balanced: bool
) -> tuple[float, float]:
    """Out-of-fold accuracy and macro-F1, averaged over the shuffles."""
    seen = [text(t) for t in texts]
    accuracy, macro = [], []
    for seed in SEEDS:
        said = [""] * len(texts)
        for train, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(seen, labels):
            ml = _train([seen[i] for i in train], [labels[i] for i in train], balanced)
            for i, label in zip(held, ml.predict([seen[i] for i in held]), strict=True):
                said[i] = str(label.label)
        accuracy.append(sum(s == y for s, y in zip(said, labels, strict=True)) / len(labels))
        macro.append(float(f1_score(labels, said, average="macro")))
    return sum(accuracy) / len(accuracy), sum(macro) / len(macro)


def without(cue: str) -> Callable[[str], str]:
    """`with_cues` less one cue: does that cue earn its place?"""

    def text(t: str) -> str:
        found = [c for c in cues(t) if c != cue]
        return f"{t}\n\n{' '.join(found)}" if found else t

    return text


def main() -> None:
    rows = training_rows()
    texts = [r["text"] for r in rows]
    started = time.perf_counter()
    plain: Callable[[str], str] = str
    variants: list[tuple[str, str, Callable[[str], str], bool]] = [
        ("category", "as now (words + characters)", plain, False),
        ("category", "with the priority cues", with_cues, False),
        ("priority", "as before (words + characters)", plain, False),
        ("priority", "class weights balanced", plain, True),
        ("priority", "code cues appended", with_cues, False),
        ("priority", "code cues + class weights balanced", with_cues, True),
        *(("priority", f"code cues without {c}", without(c), False) for c in CUES),
    ]
    lines = []
    for name, variant, text, balanced in variants:
        accuracy, macro = cross_validate(texts, [r[name] for r in rows], text, balanced)
        lines.append(f"| {name} | {variant} | {accuracy:.3f} | {macro:.3f} |")
        print(lines[-1], flush=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# Email triage: the priority ml tier by cross-validation on the training mails",
                "",
                f"Measured {date.today()} by `bench/triage_priority_cv.py` on Python "
                f"{platform.python_version()} ({platform.machine()}) in "
                f"{time.perf_counter() - started:.0f} s: the {len(rows)} training mails, "
                f"stratified 5-fold, {len(SEEDS)} shuffles (seeds {list(SEEDS)}), out-of-fold "
                "answers of the ml tier as the triage trains it. Neither the sample inbox nor "
                "the hard mails were used.",
                "",
                "| label set | variant | accuracy | macro-F1 |",
                "|---|---|---:|---:|",
                *lines,
                "",
            ]
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
