"""Distillation on sms_spam: the ml tier learns the LLM's recorded decisions and takes over.

An SMS spam filter is a cascade whose ml tier starts untrusted (threshold never, trained on 40
gold rows), so the LLM decides everything. It runs through `run_batch` with a `RunStore` (in
a temporary LLMFLOW_HOME) over 1,200 rows of `data/sms_spam/dev.jsonl`; `distill` then trains
the ml tier on the LLM's recorded decisions and calibrates its threshold against them; the
workflow, rebuilt with `tuned` as a workflow file would be, runs on the 760 held-out rows.
The baseline is the same workflow before distillation (LLM-only) on the same held-out rows,
run in the same process.

The LLM is the simulated one (bench/simulated_llm.py: gold w.p. 0.9, else the wrong label;
priced as gpt-4.1-mini, 0.4 s a call). Its errors are independent of the text, so no
classifier can predict them: agreement with it is capped near 0.90 on any set of items, and
`distill`'s default 97 % agreement target is out of reach by construction. The script reports
that run, then one at a target the noise allows (`--reachable-target`), and agreement with the
gold labels and with the LLM's correct answers beside agreement with the LLM. With
`--embedded-rows`, it also distils from the real embedded model's decisions on a small sample.

Run: .venv/bin/python bench/distill_sms.py  (rewrites bench/RESULTS-distill.md)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulated_llm import LATENCY_S, PRICED_AS, SimulatedLLM, simulated_gateway

from llmflow import RunStore, Settings, Workflow, run_batch
from llmflow.analysis.calibration import NEVER
from llmflow.analysis.tuning import Distillation, distill, tuned
from llmflow.models.gateway import Gateway, ModelCall
from llmflow.patterns.cascade import Cascade, cascade
from llmflow.runtime.runner import Item
from llmflow.steps.classify import classify
from llmflow.steps.context import RunContext, RunHooks
from llmflow.steps.ml import MLStep

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS-distill.md")
LABELS = ["ham", "spam"]
SEED_ROWS = 40


def load() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (ROOT / "data" / "sms_spam" / "dev.jsonl").open()]
    pairs = [(r["text"], r["label"]) for r in rows]
    random.Random(11).shuffle(pairs)
    return pairs


def build(name: str, seed: Sequence[tuple[str, str]], home: Path) -> Workflow:
    """The filter as a workflow file builds it: the stored newest version applied."""
    ml = MLStep.train("ml", [t for t, _ in seed], [label for _, label in seed])
    flow = cascade("spam", (ml, NEVER), (classify("llm", LABELS, instructions=INSTRUCTIONS), 0))
    return Workflow(name=name, step=tuned(flow, home, name))


INSTRUCTIONS = "Is this SMS message spam or ham (a normal message)?"


class Meter(RunHooks):
    """Model calls and dollars of a run."""

    def __init__(self) -> None:
        self.calls = 0
        self.usd = Decimal(0)

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        self.calls += not call.cached
        self.usd += call.cost or 0


@dataclass
class Pass:
    """One run of the filter over the held-out rows."""

    name: str
    rows: int
    by_ml: int
    accuracy: float
    """Against the gold labels, all rows."""
    llm_calls: int
    usd: Decimal
    seconds: float
    agree_llm: float | None = None
    """On the rows the ml tier answered: agreement with what the LLM says about them."""
    agree_gold: float | None = None
    agree_llm_correct: float | None = None
    """On the ml tier's rows where the LLM is right: agreement with the LLM (= with gold)."""
    agree_llm_all: float | None = None
    """On all rows: agreement of the filter's answers with the LLM-only answers."""
    outputs: dict[str, str] = field(default_factory=dict)
    """The label answered per text."""


async def run_pass(
    name: str,
    workflow: Workflow,
    rows: Sequence[tuple[str, str]],
    gateway: Gateway,
    concurrency: int,
    *,
    store: RunStore | None = None,
    teacher: dict[str, str] | None = None,
) -> Pass:
    """Run `workflow` on `rows`; `teacher` (text -> what the LLM says) scores the ml rows."""
    meter = Meter()
    items = [Item(key=f"{name}-{i}", value=text) for i, (text, _) in enumerate(rows)]
    started = time.perf_counter()
    batch = await run_batch(
        workflow, items, gateway=gateway, store=store, hooks=[meter], concurrency=concurrency
    )
    seconds = time.perf_counter() - started
    if batch.status != "ok":
        raise RuntimeError(f"{name}: {len(batch.failed)} items failed: {batch.failed[0].error}")
    outputs = [r.output for r in batch.results]
    by_ml = [(o, text, gold) for o, (text, gold) in zip(outputs, rows, strict=True)
             if o.tier == "ml"]  # fmt: skip
    result = Pass(
        name=name,
        rows=len(rows),
        by_ml=len(by_ml),
        accuracy=sum(o.label == gold for o, (_, gold) in zip(outputs, rows, strict=True))
        / len(rows),
        llm_calls=meter.calls,
        usd=meter.usd,
        seconds=seconds,
    )
    result.outputs = {text: o.label for o, (text, _) in zip(outputs, rows, strict=True)}
    if teacher is not None:
        said_all = [o.label == teacher[text] for o, (text, _) in zip(outputs, rows, strict=True)]
        result.agree_llm_all = sum(said_all) / len(rows)
    if by_ml and teacher is not None:
        said = [(o.label, teacher[text], gold) for o, text, gold in by_ml]
        right = [(ml, llm) for ml, llm, gold in said if llm == gold]
        result.agree_llm = sum(ml == llm for ml, llm, _ in said) / len(said)
        result.agree_gold = sum(ml == gold for ml, _, gold in said) / len(said)
        result.agree_llm_correct = sum(s == g for s, g in right) / len(right) if right else None
    return result


@dataclass
class Study:
    """History run, distillations and held-out passes with one teacher LLM."""

    teacher: str
    history_rows: int
    history: Pass
    distilled: list[tuple[float, Distillation, Pass]]
    baseline: Pass
    teacher_accuracy_history: float


async def study(
    teacher: str,
    rows: Sequence[tuple[str, str]],
    history_rows: int,
    held_rows: int,
    gateway: Gateway,
    targets: Sequence[float],
    concurrency: int,
) -> Study:
    """Record `history_rows` LLM decisions, distil at each target, run the held-out rows.

    Only the history run is recorded in the store, so distillation never sees a held-out
    row; what the LLM says about each held-out row is read from the LLM-only baseline pass
    (both teachers answer the same text the same way every time)."""
    name = f"sms-{teacher}"
    settings = Settings()
    store = RunStore(settings.db_path)
    seed, rest = rows[:SEED_ROWS], rows[SEED_ROWS:]
    history, held = rest[:history_rows], rest[history_rows : history_rows + held_rows]
    try:
        first = await run_pass(
            "history", build(name, seed, settings.home), history, gateway, concurrency,
            store=store,
        )  # fmt: skip
        print(f"{teacher}: {first.rows} history rows, {first.llm_calls} LLM calls", flush=True)
        baseline = await run_pass(
            "llm-only", build(name, seed, settings.home), held, gateway, concurrency
        )
        said = baseline.outputs  # what the LLM says about each held-out row
        distilled = []
        for target in targets:
            workflow = build(name, seed, settings.home)
            step = workflow.step
            assert isinstance(step, Cascade)
            result = distill(step, store, workflow=name, home=settings.home,
                             target_agreement=target)  # fmt: skip
            after = await run_pass(
                f"distilled-{target}", build(name, seed, settings.home), held, gateway,
                concurrency, teacher=said,
            )  # fmt: skip
            print(f"{teacher}: target {target}: {after.by_ml}/{after.rows} by ml", flush=True)
            distilled.append((target, result, after))
    finally:
        store.close()
    right = sum(first.outputs[t] == g for t, g in history) / len(history)
    return Study(teacher, len(history), first, distilled, baseline, right)


async def simulated_study(
    rows: Sequence[tuple[str, str]], history_rows: int, targets: Sequence[float]
) -> Study:
    gateway = simulated_gateway(SimulatedLLM(dict(rows)))
    return await study("simulated", rows, history_rows, len(rows), gateway, targets, 200)


async def embedded_study(
    rows: Sequence[tuple[str, str]], history_rows: int, held_rows: int, targets: Sequence[float]
) -> Study:
    """The real embedded model as the teacher, on a small sample (about 0.5 s an item)."""
    gateway = Gateway(Settings(model="local"))
    try:
        return await study("embedded", rows, history_rows, held_rows, gateway, targets, 1)
    finally:
        await gateway.aclose()


# -- reporting --------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(s: Study) -> str:
    base = s.baseline
    lines = [
        "| run on the held-out rows | share answered by ml | agreement with the LLM (ml rows) "
        "| agreement with gold (ml rows) | agreement with the LLM where it is right "
        "| filter's agreement with LLM-only (all rows) | accuracy (all rows, gold) | LLM calls "
        "| calls ratio | $ | $ saved | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    passes = [("before distilling (LLM-only, baseline)", base)] + [
        (f"distilled, target agreement {t}", p) for t, _, p in s.distilled
    ]
    for label, p in passes:
        lines.append(
            f"| {label} | {p.by_ml / p.rows:.3f} | {pct(p.agree_llm)} | {pct(p.agree_gold)} "
            f"| {pct(p.agree_llm_correct)} | {pct(p.agree_llm_all)} | {p.accuracy:.3f} "
            f"| {p.llm_calls} "
            f"| {p.llm_calls / max(1, base.llm_calls):.3f} | {float(p.usd):.5f} "
            f"| {float(base.usd - p.usd):.5f} | {p.seconds:.1f} s |"
        )
    lines += [
        "",
        "| distillation | examples | threshold | ml agreement with the LLM on the items it "
        "answers (distill's own 25 % split) | ml share there | $ saved per 1,000 LLM items |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target, d, _ in s.distilled:
        threshold = "never" if d.threshold == NEVER else f"{d.threshold:.3f}"
        lines.append(
            f"| target {target} | {d.examples} | {threshold} | {d.agreement:.3f} "
            f"| {d.share:.3f} | {float(d.saving_per_1000):.4f} |"
        )
    return "\n".join(lines)


def section(s: Study, label: str) -> str:
    return (
        f"## Teacher: {label}\n\n"
        f"History: {s.history_rows} rows through `run_batch` into a `RunStore` "
        f"({s.history.llm_calls} LLM calls, ${float(s.history.usd):.5f}, "
        f"{s.history.seconds:.1f} s); the teacher was right on "
        f"{s.teacher_accuracy_history:.3f} of them. Held-out: {s.baseline.rows} rows.\n\n"
        f"{table(s)}\n"
    )


def findings(studies: Sequence[tuple[Study, str]]) -> str:
    """A short "what it shows", from the figures."""
    lines = ["\n## What it shows\n"]
    for s, _ in studies:
        base = s.baseline
        strict = next(p for t, _, p in s.distilled if t == 0.97)
        share = strict.by_ml / strict.rows
        met = share >= 0.5 and (strict.agree_llm or 0) >= 0.97
        if s.teacher == "simulated":
            loose_target, _, loose = s.distilled[-1]
            gold = loose.agree_gold or 0
            expected = base.accuracy * gold + (1 - base.accuracy) * (1 - gold)
            lines += [
                f"- **Simulated teacher, distill's default target (0.97)**: the ml tier answers "
                f"{100 * share:.1f} % of new items with {pct(strict.agree_llm)} agreement with "
                f"the LLM on them (the whole filter: {pct(strict.agree_llm_all)}); LLM calls "
                f"{strict.llm_calls} of {base.llm_calls}. The issue's target (≥ 50 % to ml at "
                f"≥ 97 % agreement) is {'**met**' if met else '**not met**'}.",
                "- **Why agreement with this LLM is capped near 0.90**: its errors are drawn "
                "independently of the text (10 % of items get a random wrong label), so nothing "
                "in a message predicts them. A classifier that always matched the gold label "
                "would agree with the LLM on only ~90 % of any set of items. On the items the "
                f"ml tier answers it agrees with gold {pct(strict.agree_gold)} and with the "
                f"answers the LLM got right {pct(strict.agree_llm_correct)}"
                + (
                    ": it is at the ceiling, each disagreement is an LLM error"
                    if strict.agree_llm_correct == 1.0
                    else ""
                )
                + ". A filter held to 97 % agreement can then "
                "give the ml tier at most about 0.03 / 0.10 = 30 % of the items (the calibration "
                "on distill's own split allowed a little more).",
                f"- **At a target the noise allows ({loose_target})**, the ml tier answers "
                f"{100 * loose.by_ml / loose.rows:.1f} % of items, LLM calls fall from "
                f"{base.llm_calls} to {loose.llm_calls} (${float(base.usd - loose.usd):.5f} "
                f"saved on {base.rows} items at gpt-4.1-mini prices), and accuracy against gold "
                f"goes from {base.accuracy:.3f} (the LLM alone) to {loose.accuracy:.3f}: the "
                "student beats its noisy teacher, since it learns what most similar messages "
                f"were labelled. Its agreement with the LLM, {pct(loose.agree_llm)}, is what "
                f"independent errors give: {base.accuracy:.3f} × {pct(loose.agree_gold)} + "
                f"{1 - base.accuracy:.3f} × {1 - (loose.agree_gold or 0):.3f} = "
                f"{expected:.3f} (with two labels, two wrong answers agree).",
            ]
        else:
            lines.append(
                f"- **Real embedded teacher** (SmolLM2-135M, right on "
                f"{s.teacher_accuracy_history:.3f} of {s.history_rows} history rows): after "
                f"distilling, the ml tier answers {100 * share:.0f} % of {base.rows} new items "
                f"with {pct(strict.agree_llm)} agreement with the model on them (the whole "
                f"filter: {pct(strict.agree_llm_all)}); accuracy against gold "
                f"{base.accuracy:.3f} → {strict.accuracy:.3f}, wall time {base.seconds:.1f} s → "
                f"{strict.seconds:.1f} s (the model is free here: the saving is time)"
                + (
                    ". The ml tier agrees with the model more often than the model is right: "
                    "its errors depend on the text, so the student learns some of them"
                    if (strict.agree_llm or 0) > s.teacher_accuracy_history
                    else ""
                )
                + ". The sample is small: read it as an indication."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history-rows", type=int, default=1200)
    parser.add_argument("--reachable-target", type=float, default=0.89)
    parser.add_argument("--embedded-rows", default="150,100", help="history,held-out (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = load()
    targets = [0.97, args.reachable_target]
    started = time.perf_counter()
    studies: list[tuple[Study, str]] = []
    with tempfile.TemporaryDirectory() as home:
        os.environ["LLMFLOW_HOME"] = home  # the store and classifier versions live here
        studies.append(
            (asyncio.run(simulated_study(rows, args.history_rows, targets)),
             f"simulated LLM (gold w.p. 0.9, priced as `{PRICED_AS}`, {LATENCY_S} s a call)")
        )  # fmt: skip
        history, held = (int(v) for v in args.embedded_rows.split(","))
        if history:
            studies.append(
                (asyncio.run(embedded_study(rows, history, held, targets)),
                 "embedded LLM (SmolLM2-135M, real, $0 on this machine)")
            )  # fmt: skip
    total = time.perf_counter() - started
    body = "\n".join(section(s, label) for s, label in studies) + findings(studies)
    print(body)
    if not args.no_write:
        RESULTS.write_text(header(total) + body + footer(args), encoding="utf-8")
        print(f"wrote {RESULTS} ({total:.0f} s)")


def header(total: float) -> str:
    return (
        "# Distillation on sms_spam: moving traffic from the LLM to the ml tier\n\n"
        f"Measured {datetime.date.today()} by `bench/distill_sms.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, 2 CPU cores shared with other "
        f"work) in {total / 60:.1f} min. The filter is `cascade(ml (threshold never), llm)`; "
        "its history is recorded with `run_batch` + `RunStore`, `distill` trains and "
        "calibrates the ml tier from it, and the rebuilt (`tuned`) workflow runs on held-out "
        "rows. The baseline is the same workflow before distilling, on the same rows, in the "
        "same process. **simulated** marks the scripted LLM (not a real model).\n\n"
    )


def footer(args: argparse.Namespace) -> str:
    return (
        "\n## Command\n\n```\n.venv/bin/python bench/distill_sms.py --history-rows "
        f"{args.history_rows} --reachable-target {args.reachable_target} "
        f"--embedded-rows {args.embedded_rows}\n```\n"
    )


if __name__ == "__main__":
    main()
