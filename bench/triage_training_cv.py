"""Email triage's ml tiers: do the example mails added for issue 13 help? Cross-validation on
the training mails only (the sample inbox and the hard mails are test sets, never read here).

The training file holds the 605 first examples (`<prefix>-001` to `-121` per category) and the
mails added later (numbers above 121). Each variant is the triage's own ml tier (`train_tier`:
TF-IDF words + character n-grams, calibrated logistic regression; priority reads the urgency
cues), scored out of fold, stratified 5-fold, with the same shuffles for every variant:

- "605 only": trained on four fifths of the 605 first mails, scored on the fifth;
- "605 + added": the same folds, the added mails in every training fold; scored on the same
  held-out fifth of the 605 first mails, so the two are compared on the same mails;
- "all, out of fold": every mail in the folds; scored on all of them, and on the added mails
  and on the mails outside the Latin alphabet among them.

`--priority-mails` asks the same of the contrastive priority mails
(`training/priority_emails.jsonl`, which only the priority tier trains on): the 810 mails of
`emails.jsonl` are the "first" ones and those the added ones; results go to
RESULTS-triage-training-cv-priority-mails.md.

`--added-from N` counts the mails of `emails.jsonl` numbered N and above as the added ones
(`--added-from 301`: the non-English mails added after the 810); results go to
RESULTS-triage-training-cv-from-N.md.

    .venv/bin/python bench/triage_training_cv.py [--seeds 1] [--priority-mails | --added-from N]
        [--label category|priority]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from llmflow import MLStep
from llmflow.apps.email_triage.classifier import (
    CHAR_NGRAMS,
    PRIORITY_TRAINING,
    TRAINING,
    classification_text,
    ml_text,
)

RESULTS = Path(__file__).with_name("RESULTS-triage-training-cv.md")
FIRST = 121
"""Examples per category before issue 13's additions."""
_NON_LATIN = re.compile(r"[\u0590-\u06ff\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


def load(priority_mails: bool = False, added_from: int = FIRST + 1) -> list[dict[str, str]]:
    """The training mails; with `priority_mails` the contrastive priority mails too, as the
    added ones (and every mail of `emails.jsonl` as a first one)."""
    rows = []
    files = [TRAINING, PRIORITY_TRAINING] if priority_mails else [TRAINING]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                row["text"] = classification_text(row["from"], row["subject"], row["body"])
                if priority_mails:
                    row["added"] = path == PRIORITY_TRAINING
                else:
                    row["added"] = int(row["id"].rsplit("-", 1)[1]) >= added_from
                rows.append(row)
    return rows


def out_of_fold(
    rows: Sequence[dict[str, str]],
    name: str,
    seed: int,
    extra: Sequence[dict[str, str]] = (),
    text: Callable[[str], str] | None = None,
) -> list[str]:
    """The tier's answers on `rows`, each from a tier trained on the other folds and `extra`;
    it reads `text` of each mail (by default what the triage's tier reads)."""
    text = text or ml_text(name)
    labels = [r[name] for r in rows]
    said = [""] * len(rows)
    for train, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(labels, labels):
        fit = [rows[i] for i in train] + list(extra)
        ml = MLStep.train(
            "ml",
            [text(r["text"]) for r in fit],
            [r[name] for r in fit],
            char_ngrams=CHAR_NGRAMS,
            text=text,
        )
        seen = [ml.text(rows[i]["text"]) for i in held]  # what the tier reads in a run
        for i, answer in zip(held, ml.predict(seen), strict=True):
            said[i] = str(answer.label)
    return said


def scores(said: Sequence[str], gold: Sequence[str]) -> tuple[float, float]:
    right = sum(s == g for s, g in zip(said, gold, strict=True))
    return right / len(gold), float(f1_score(gold, said, average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--priority-mails", action="store_true")
    parser.add_argument("--added-from", type=int, default=FIRST + 1)
    parser.add_argument("--label", choices=("category", "priority"), help="only this label set")
    args = parser.parse_args()
    seeds = range(args.seeds)
    rows = load(args.priority_mails, args.added_from)
    results_file = RESULTS
    if args.priority_mails:
        results_file = RESULTS.with_name(f"{RESULTS.stem}-priority-mails.md")
    elif args.added_from != FIRST + 1:
        results_file = RESULTS.with_name(f"{RESULTS.stem}-from-{args.added_from}.md")
    first = [r for r in rows if not r["added"]]
    added = [r for r in rows if r["added"]]
    started = time.perf_counter()
    lines = []
    n = len(first)
    for name in [args.label] if args.label else ["category", "priority"]:
        gold_first = [r[name] for r in first]
        results: dict[str, list[tuple[float, float]]] = {}
        for seed in seeds:
            results.setdefault(f"{n} only", []).append(
                scores(out_of_fold(first, name, seed), gold_first)
            )
            if added:
                results.setdefault(f"{n} + added (scored on the {n})", []).append(
                    scores(out_of_fold(first, name, seed, added), gold_first)
                )
                said = out_of_fold(rows, name, seed)
                results.setdefault(f"all {len(rows)}, out of fold", []).append(
                    scores(said, [r[name] for r in rows])
                )
                pick = [i for i, r in enumerate(rows) if r["added"]]
                results.setdefault(f"  of which the {len(added)} added", []).append(
                    scores([said[i] for i in pick], [rows[i][name] for i in pick])
                )
                pick = [i for i, r in enumerate(rows) if _NON_LATIN.search(r["body"])]
                results.setdefault(
                    f"  of which the {len(pick)} outside the Latin alphabet (first and added)", []
                ).append(scores([said[i] for i in pick], [rows[i][name] for i in pick]))
        for variant, runs in results.items():
            accuracy = sum(a for a, _ in runs) / len(runs)
            macro = sum(m for _, m in runs) / len(runs)
            lines.append(f"| {name} | {variant} | {accuracy:.3f} | {macro:.3f} |")
            print(lines[-1], flush=True)
    results_file.write_text(
        "\n".join(
            [
                "# Email triage: the added training mails, by cross-validation on the training "
                "mails",
                "",
                f"Measured {date.today()} by `bench/triage_training_cv.py` on Python "
                f"{platform.python_version()} ({platform.machine()}) in "
                f"{time.perf_counter() - started:.0f} s: {len(first)} first and {len(added)} "
                f"added training mails, stratified 5-fold, {len(seeds)} shuffle(s) (seeds "
                f"{list(seeds)}), out-of-fold answers of the ml tier as the triage trains it "
                "(priority with its urgency cues). Neither the sample inbox nor the hard mails "
                "were used.",
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
