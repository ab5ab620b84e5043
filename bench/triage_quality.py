"""Email triage's classification on the sample inbox: each tier alone, and the cascade as it
runs on the embedded model.

The 41 labelled sample mails (`sample_inbox/eval-{category,priority}.jsonl`, never used for
training or calibration) go through every tier once (`analysis.tuning.answers`): the rules,
the ml tier trained on the 525 example emails, and the real embedded SmolLM2-135M scoring the
labels. Each variant is scored from those answers (`runtime.evaluation.score`); the cascade
uses the thresholds a run on `local` uses (`calibrated.json`). The baseline is the embedded
LLM alone, run in the same process.

    .venv/bin/python bench/triage_quality.py
"""

from __future__ import annotations

import asyncio
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from llmflow import Gateway, Settings
from llmflow.analysis.evaluation import score, variant_names
from llmflow.analysis.tuning import answers
from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.apps.email_triage.classifier import cascades, label_sets
from llmflow.apps.email_triage.workflow import Category, Priority
from llmflow.steps.ml import read_labelled

RESULTS = Path(__file__).with_name("RESULTS-triage-quality.md")


async def main() -> None:
    lines: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        gateway = Gateway(Settings(model="local"))
        for flow in cascades(Path(home), label_sets(Category, Priority)):
            texts, truth = read_labelled(SAMPLE_INBOX / f"eval-{flow.name}.jsonl")
            tiers = await answers(flow, texts, gateway)
            thresholds = flow.by_model["local"]
            scores = {
                s.name: s for s in score(tiers, truth, thresholds, variant_names(tiers.tiers))
            }
            baseline = scores["llm-only"]
            lines += [
                f"## {flow.name} ({len(truth)} mails)",
                "",
                f"Cascade thresholds on `local`: {[round(t, 3) for t in thresholds]}.",
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
            lines.append("")
            print("\n".join(lines[-len(scores) - 6 :]))
    total = time.perf_counter() - started
    RESULTS.write_text(
        "\n".join(
            [
                "# Email triage: classification quality on the sample inbox",
                "",
                f"Measured {date.today()} by `bench/triage_quality.py` on Python "
                f"{platform.python_version()} ({platform.machine()}, 2 CPU cores) in "
                f"{total:.0f} s. The 41 labelled sample mails; the ml tier trained on the 525 "
                "example emails; the LLM tier is the real embedded SmolLM2-135M scoring the "
                "labels by log-probabilities; the cascade uses the thresholds a run on `local` "
                "uses. Baseline: the embedded LLM alone, in the same process.",
                "",
                *lines,
            ]
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    asyncio.run(main())
