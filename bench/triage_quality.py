"""Email triage's classification on a labelled inbox: each tier alone, and the cascade as it
runs on the embedded model.

The 41 labelled sample mails (`sample_inbox/eval-{category,priority}.jsonl`, never used for
training or calibration) go through every tier once (`analysis.tuning.answers`): the rules,
the ml tier trained on the example emails (`training/emails.jsonl`), and the real embedded
SmolLM2-135M scoring the labels. Each variant is scored from those answers
(`runtime.evaluation.score`); the cascade uses the thresholds a run on `local` uses
(`calibrated.json`). The baseline is the embedded LLM alone, run in the same process.

`--inbox hard` scores the hard mails instead (`hard_inbox/`, issue 13's test set): the
mails the triage classifies (`kind` "message" in its labels.jsonl), each read as the
workflow reads it (sender, subject, the excerpt of the newest message); the auto-replies,
bulk and empty mails, which the triage files by their headers without classifying them, are
counted as recognised or not. Results go to RESULTS-triage-quality-hard.md.

    .venv/bin/python bench/triage_quality.py [--inbox sample|hard] [--model local]

`--model` runs the LLM tier on another model, e.g. the opt-in `local:qwen2.5-coder-1.5b`, with
the thresholds a run on it uses; results go to RESULTS-triage-quality[-hard]-<model>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from sklearn.metrics import f1_score

from llmflow import Gateway, Settings
from llmflow.analysis.evaluation import score, variant_names
from llmflow.analysis.tier_answers import TierAnswers
from llmflow.analysis.tuning import answers
from llmflow.apps.email_triage import SAMPLE_INBOX, parse_email
from llmflow.apps.email_triage.classifier import (
    cascades,
    classification_text,
    examples,
    label_sets,
)
from llmflow.apps.email_triage.workflow import Category, Priority
from llmflow.steps.ml import read_labelled

RESULTS = Path(__file__).with_name("RESULTS-triage-quality.md")
HARD_INBOX = SAMPLE_INBOX.parent / "hard_inbox"


Sets = dict[str, tuple[list[str], list[str]]]


def hard_mails() -> tuple[Sets, list[str], list[str]]:
    """Per label set, the texts and labels of the hard mails the triage classifies; one line
    per mail it files by its headers (its expected kind, and the kind the reader saw); and
    the names of the classified mails."""
    labels = [json.loads(line) for line in (HARD_INBOX / "labels.jsonl").read_text().splitlines()]
    texts: list[str] = []
    filed: list[str] = []
    for row in labels:
        email = parse_email(HARD_INBOX / row["file"])
        if row["kind"] != "message":
            mark = "recognised" if email.kind == row["kind"] else "MISSED"
            filed.append(f"| {row['file']} | {row['kind']} | {email.kind} | {mark} |")
            continue
        texts.append(classification_text(email.sender, email.subject, email.excerpt))
    classified = [r for r in labels if r["kind"] == "message"]
    sets = {name: (texts, [r[name] for r in classified]) for name in ("category", "priority")}
    return sets, filed, [r["file"] for r in classified]


def picks(tiers: TierAnswers, thresholds: list[float]) -> list[str]:
    """Per text, the cascade's label and the tier that gave it, as `score` picks them."""
    out = []
    last = len(tiers.tiers) - 1
    for i in range(len(tiers.answers[0])):
        for t, name in enumerate(tiers.tiers):
            said = tiers.answers[t][i]
            if said.label is not None and (t == last or said.confidence >= thresholds[t]):
                out.append(f"{said.label} ({name})")
                break
            if t == last:
                out.append(f"none ({name})")
    return out


async def main(inbox: str, model: str) -> None:
    lines: list[str] = []
    started = time.perf_counter()
    hard, filed, names = hard_mails() if inbox == "hard" else ({}, [], [])
    per_mail: dict[str, list[str]] = {}
    cascade_said: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as home:
        gateway = Gateway(Settings(model=model))
        for flow in cascades(Path(home), label_sets(Category, Priority), model=model):
            if inbox == "hard":
                texts, truth = hard[flow.name]
            else:
                texts, truth = read_labelled(SAMPLE_INBOX / f"eval-{flow.name}.jsonl")
            tiers = await answers(flow, texts, gateway)
            # as `Cascade.thresholds`: a local model without its own takes `local`'s
            thresholds = flow.by_model.get(model) or flow.by_model["local"]
            scores = {
                s.name: s for s in score(tiers, truth, thresholds, variant_names(tiers.tiers))
            }
            baseline = scores["llm-only"]
            if inbox == "hard":
                per_mail[flow.name] = [
                    f"{want} | {got}"
                    for want, got in zip(truth, picks(tiers, thresholds), strict=True)
                ]
            lines += [
                f"## {flow.name} ({len(truth)} mails)",
                "",
                f"Cascade thresholds on `{model}`: {[round(t, 3) for t in thresholds]}.",
                "",
                "| variant | accuracy | vs llm-only | macro-F1 | s per mail | share per tier |",
                "|---|---:|---:|---:|---:|---|",
            ]
            for s in scores.values():
                shares = ", ".join(f"{t} {v:.0%}" for t, v in s.shares.items() if v)
                ratio = s.accuracy / baseline.accuracy if baseline.accuracy else float("inf")
                lines.append(
                    f"| {s.name} | {s.accuracy:.3f} | {ratio:.2f}x | {s.macro_f1:.3f} | "
                    f"{s.seconds_per_item:.3f} | {shares} |"
                )
            said = [p.rsplit(" (", 1)[0] for p in picks(tiers, thresholds)]
            cascade_said[flow.name] = dict(zip(texts, said, strict=True))
            if flow.name == "priority" and "category" in cascade_said:
                # as `workflow._classification` files it: spam is low
                spam = cascade_said["category"]
                filed_as = [
                    "low" if spam.get(t) == "spam" else p for t, p in zip(texts, said, strict=True)
                ]
                right = sum(f == g for f, g in zip(filed_as, truth, strict=True)) / len(truth)
                ratio = right / baseline.accuracy if baseline.accuracy else float("inf")
                macro = f1_score(truth, filed_as, average="macro")
                lines.append(
                    f"| cascade, spam is low (as the workflow files it) | {right:.3f} | "
                    f"{ratio:.2f}x | {macro:.3f} | | |"
                )
            lines.append("")
            print("\n".join(lines[-len(scores) - 7 :]))
    total = time.perf_counter() - started
    if inbox == "hard":
        rows = [
            f"| {name} | {cat} | {pri} |"
            for name, cat, pri in zip(
                names, per_mail["category"], per_mail["priority"], strict=True
            )
        ]
        write_hard([*lines, *per_mail_table(rows)], filed, total, len(names), model)
        return
    results_for(RESULTS, model).write_text(
        "\n".join(
            [
                "# Email triage: classification quality on the sample inbox",
                "",
                f"Measured {date.today()} by `bench/triage_quality.py` on Python "
                f"{platform.python_version()} ({platform.machine()}, 2 CPU cores) in "
                f"{total:.0f} s. The 41 labelled sample mails; {trained_on()}; the LLM tier is "
                f"{llm_named(model)} "
                "scoring the labels by log-probabilities; the cascade uses the "
                f"thresholds a run on `{model}` uses. Baseline: that LLM alone, in the "
                "same process.",
                "",
                *lines,
            ]
        )
        + "\n",
        encoding="utf-8",
    )


def per_mail_table(rows: list[str]) -> list[str]:
    return [
        "## Per mail: gold label | the cascade's label (the tier that gave it)",
        "",
        "| mail | category | cascade | priority | cascade |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def trained_on() -> str:
    """Which example emails the ml tiers trained on."""
    return (
        f"the ml tiers trained on the {len(examples('category'))} example emails (priority's "
        f"also on the {len(examples('priority')) - len(examples('category'))} contrastive "
        "priority mails)"
    )


def llm_named(model: str) -> str:
    return "the real embedded SmolLM2-135M" if model == "local" else f"the real `{model}`"


def results_for(path: Path, model: str) -> Path:
    """`path`, or for a model other than `local` its copy named after the model."""
    if model == "local":
        return path
    return path.with_name(f"{path.stem}-{model.removeprefix('local:').replace('/', '-')}.md")


def write_hard(
    lines: list[str], filed: list[str], total: float, classified: int, model: str
) -> None:
    out = results_for(RESULTS.with_name("RESULTS-triage-quality-hard.md"), model)
    recognised = sum("| recognised |" in line for line in filed)
    out.write_text(
        "\n".join(
            [
                "# Email triage: classification quality on the hard mails",
                "",
                f"Measured {date.today()} by `bench/triage_quality.py --inbox hard` on Python "
                f"{platform.python_version()} ({platform.machine()}, 2 CPU cores) in "
                f"{total:.0f} s. The hard mails (`apps/email_triage/hard_inbox/`, a test set: "
                "nothing was trained, calibrated or tuned on it): the "
                f"{classified} the triage classifies, each read as the workflow reads it "
                "(sender, subject, the newest message's excerpt). "
                f"{trained_on().capitalize()}; the LLM tier is {llm_named(model)} "
                "scoring the labels by log-probabilities; the cascade uses the "
                f"thresholds a run on `{model}` uses. Baseline: that LLM alone, in the "
                "same process.",
                "",
                *lines,
                f"## Filed by their headers ({recognised}/{len(filed)} recognised by code)",
                "",
                "Never classified, never sent to a model: the reader's `kind`.",
                "",
                "| mail | expected | read as | |",
                "|---|---|---|---|",
                *filed,
                "",
            ]
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", choices=("sample", "hard"), default="sample")
    parser.add_argument("--model", default="local")
    args = parser.parse_args()
    asyncio.run(main(args.inbox, args.model))
