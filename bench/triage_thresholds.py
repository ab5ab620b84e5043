"""Email triage's cascade thresholds for the embedded model, calibrated on the training emails.

Whether the ml tier should hand an unsure mail to the LLM depends on how good that LLM is. For
the embedded SmolLM2-135M this measures it, without touching the sample inbox (the evaluation
set): on a fixed sample of the training emails, the ml tier answers out of fold (5-fold:
trained on the other four fifths), the rules and the real embedded LLM tier answer as they
would in a run, and `calibrate` picks the thresholds with the best accuracy (target 1.0, so
the lowest threshold among the most accurate), kept only when sending mails on to the LLM
tier is right significantly more often than not (a sign test; else the tier before it answers
every mail it labels: `earned`). The result is written to
`src/llmflow/apps/email_triage/calibrated.json`, which the workflow uses as its thresholds when
the LLM tier runs on `local`; `llmflow calibrate` on your own data overrides it.

    .venv/bin/python bench/triage_thresholds.py [--rows 100] [--model local]

`--model` calibrates for another LLM tier, e.g. the opt-in `local:qwen2.5-coder-1.5b`
(`pip install '.[qwen]'`): its thresholds are added to calibrated.json under that name (a
model without its own takes those of `local`, `patterns.cascade`), and its results go to
RESULTS-triage-thresholds-<model>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from triage_quality import results_for  # bench/: the script's folder is on sys.path

from llmflow import Gateway, Settings
from llmflow.analysis.calibration import calibrate, cascade_answers, simulate
from llmflow.analysis.tuning import answers
from llmflow.apps.email_triage.classifier import (
    cascades,
    examples,
    label_sets,
    train_tier,
    training_rows,
)
from llmflow.apps.email_triage.workflow import Category, Priority
from llmflow.steps.label import Label

HERE = Path(__file__).parent
OUT = HERE.parent / "src" / "llmflow" / "apps" / "email_triage" / "calibrated.json"
RESULTS = HERE / "RESULTS-triage-thresholds.md"


def out_of_fold(name: str, texts: list[str], labels: list[str], folds: int = 5) -> list[Label]:
    # the examples the triage's tier of `name` trains on besides these (priority's contrastive
    # mails), in every fold
    extra = examples(name)[len(texts) :]
    order = list(range(len(texts)))
    random.Random(11).shuffle(order)
    said: list[Label | None] = [None] * len(texts)
    for k in range(folds):
        held = set(order[k::folds])
        train = [i for i in order if i not in held]
        # the ml tier as the triage trains it (priority's reads the code cues too)
        ml = train_tier(
            name,
            [texts[i] for i in train] + [r["text"] for r in extra],
            [labels[i] for i in train] + [r[name] for r in extra],
        )
        for i, label in zip(
            sorted(held), ml.predict([ml.text(texts[i]) for i in sorted(held)]), strict=True
        ):
            said[i] = label
    return [s for s in said if s is not None]


def right(answers: list[list[Label]], truth: list[str], thresholds: list[float]) -> list[bool]:
    """Per row, whether the cascade with `thresholds` answers it right."""
    said = cascade_answers(answers, thresholds)
    return [a is not None and a[1].label == y for a, y in zip(said, truth, strict=True)]


def earned(
    answers: list[list[Label]], truth: list[str], names: list[str], calibrated: list[float]
) -> tuple[list[float], str]:
    """The calibrated thresholds if sending mails on to the LLM tier is right significantly
    more often than the tier before it answering them (exact one-sided sign test over the
    mails the two answer differently, p < 0.05); else the thresholds with which the tier
    before the LLM answers every mail it labels. With the reason, for the results."""
    cheap = list(calibrated)
    cheap[names.index("llm") - 1] = 0.0
    if cheap == calibrated:
        return calibrated, "The calibrated cascade sends no mail on to the LLM tier."
    with_llm, without = right(answers, truth, calibrated), right(answers, truth, cheap)
    gained = sum(a and not b for a, b in zip(with_llm, without, strict=True))
    lost = sum(b and not a for a, b in zip(with_llm, without, strict=True))
    n = gained + lost
    p = sum(math.comb(n, k) for k in range(gained, n + 1)) / 2**n if n else 1.0
    said = (
        f"Sending the unsure mails on to the LLM tier: right on {gained} mails the tier before "
        f"it got wrong, wrong on {lost} it got right (one-sided sign test p = {p:.3f})"
    )
    if p < 0.05:
        return calibrated, said + ": a gain, kept."
    return cheap, said + ": no gain beyond chance, so the LLM tier is not asked (chosen)."


async def main(rows: int, model: str) -> None:
    data = training_rows()
    texts = [r["text"] for r in data]
    sample = sorted(random.Random(5).sample(range(len(data)), rows))
    report: dict[str, dict[str, object]] = {}
    lines = []
    with tempfile.TemporaryDirectory() as home:
        built = cascades(Path(home), label_sets(Category, Priority), model=model)
        gateway = Gateway(Settings(model=model))
        for flow in built:
            truth_all = [r[flow.name] for r in data]
            ml_all = out_of_fold(flow.name, texts, truth_all)
            started = time.perf_counter()
            tiers = await answers(flow, [texts[i] for i in sample], gateway)
            seconds = time.perf_counter() - started
            names = tiers.tiers
            tier_answers = [
                [ml_all[i] for i in sample] if name == "ml" else tiers.answers[t]
                for t, name in enumerate(names)
            ]
            truth = [truth_all[i] for i in sample]
            result = calibrate(tier_answers, truth, 1.0, current=[t for _, t in flow.tiers])
            calibrated = list(result.thresholds)
            # The LLM tier is paid only for a gain the sample can tell from chance: on 100
            # mails, "most accurate" may mean one mail more, which is noise, and an LLM tier
            # that is far worse alone then costs more and answers worse elsewhere.
            thresholds, gain = earned(tier_answers, truth, names, calibrated)
            default = simulate(tier_answers, truth, [t for _, t in flow.tiers])
            cheap = simulate(tier_answers, truth, thresholds)
            alone = {
                name: sum(a.label == y for a, y in zip(tier_answers[t], truth, strict=True))
                / len(truth)
                for t, name in enumerate(names)
            }
            report[flow.name] = dict(zip(names, thresholds, strict=True))
            lines += [
                f"## {flow.name}",
                "",
                "| | accuracy | share per tier |",
                "|---|---:|---|",
                *(f"| {name} alone | {alone[name]:.3f} | |" for name in names),
                f"| cascade, default thresholds {[t for _, t in flow.tiers]} | {default[0]:.3f} | "
                + ", ".join(f"{n} {s:.0%}" for n, s in zip(names, default[1], strict=True))
                + " |",
                f"| cascade, most accurate {[round(t, 3) for t in calibrated]} | "
                f"{result.accuracy:.3f} | "
                + ", ".join(f"{n} {s:.0%}" for n, s in zip(names, result.shares, strict=True))
                + " |",
                f"| **cascade, chosen** {[round(t, 3) for t in thresholds]} | {cheap[0]:.3f} | "
                + ", ".join(f"{n} {s:.0%}" for n, s in zip(names, cheap[1], strict=True))
                + " |",
                "",
                gain,
                "",
                f"The LLM tier took {seconds / rows:.2f} s per email.",
                "",
            ]
            print(flow.name, alone, "default", default, "calibrated", result)
    calibrated = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {}
    calibrated[model] = report
    OUT.write_text(json.dumps(calibrated, indent=2) + "\n", encoding="utf-8")
    llm = "the embedded SmolLM2-135M" if model == "local" else f"`{model}`"
    results_for(RESULTS, model).write_text(
        "\n".join(
            [
                f"# Email triage: cascade thresholds for {llm}",
                "",
                f"Measured {date.today()} by `bench/triage_thresholds.py` on Python "
                f"{platform.python_version()} ({platform.machine()}), {rows} of the {len(data)} "
                "training emails (fixed seed); the ml tier out of fold (5-fold), rules and the "
                f"LLM tier on {llm} (labels scored by log-probabilities) as in a "
                "run. The thresholds are written to "
                "`src/llmflow/apps/email_triage/calibrated.json` and used when the LLM tier runs "
                f"on `{model}`.",
                "",
                *lines,
            ]
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--model", default="local")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.model))
