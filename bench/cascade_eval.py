"""Cascades on the three dev sets, 5-fold: rules -> ml -> LLM against each tier alone.

For each of `data/{sms_spam,banking77,clinc150}/dev.jsonl` (2,000 rows each), in each of 5
stratified folds: the ml tier (llmflow's default TF-IDF + calibrated logistic regression) is
trained on the training part less a fifth held back as validation; the cascade's thresholds
are calibrated on that validation fifth (`runtime.calibration.calibrate`, target: the LLM
alone's validation accuracy minus 0.01); every variant is scored on the held-out fold
(`runtime.evaluation.score`). Figures are means over the 5 folds; $ and time per item are
over all 2,000 held-out answers.

The LLMs:
- simulated: a scripted model (bench/simulated_llm.py) answering the gold label w.p. 0.9, else
  a random wrong label, priced like gpt-4.1-mini through the gateway, 0.4 s per call (many
  calls in flight). It answers all 2,000 rows once; every variant reuses those answers.
- embedded: the real SmolLM2-135M (`--model local`), scoring every label by log-probs. It is
  slow (0.3-0.5 s per item for 2 labels, 25-35 s for 77 or 151 on this machine), so it
  runs on a fixed random subsample per data set; its cascade's thresholds are calibrated on
  the subsample's other folds (leave-one-fold-out), with its ml answers out-of-fold.

The baseline is the simulated LLM alone, run in the same process: ratios are against it.
Rules (hand-written spam regexes) exist for sms_spam only; an abstention counts as wrong for
rules-only and escalates in the cascade.

Run: .venv/bin/python bench/cascade_eval.py [--embedded-rows sms_spam=200,banking77=6,...]
(rewrites bench/RESULTS-cascade-eval.md)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import platform
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulated_llm import LATENCY_S, PRICED_AS, SimulatedLLM, simulated_gateway
from sklearn.model_selection import StratifiedKFold, train_test_split

from llmflow import Settings
from llmflow.analysis.calibration import NEVER, calibrate
from llmflow.analysis.evaluation import VariantScore, score
from llmflow.analysis.tuning import TierAnswers, answers
from llmflow.models.gateway import Gateway
from llmflow.patterns.cascade import Cascade
from llmflow.steps.base import Step
from llmflow.steps.classify import classify
from llmflow.steps.label import Label
from llmflow.steps.ml import MLStep, rules

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS-cascade-eval.md")
DATASETS = ("sms_spam", "banking77", "clinc150")
EMBEDDED_ROWS = {"sms_spam": 200, "banking77": 6, "clinc150": 6}
FOLDS = 5
CHAR_NGRAMS = {"banking77", "clinc150"}  # short texts, many labels: character n-grams help
LLM_SHARE = 0.25
CAPPED = "cascade, ml threshold at the 25 % quantile"
SIM = "simulated-llm"
EMB = "embedded-llm"
INSTRUCTIONS = {
    "sms_spam": "Is this SMS message spam or ham (a normal message)?",
    "banking77": "Classify the online-banking customer query by its intent.",
    "clinc150": "Classify the voice-assistant request by its intent (oos: out of scope).",
}
SPAM_RULES = [  # what a person would write first: premium numbers, short codes, prize claims
    (r"\b0[89]\d{8,9}\b", "spam"),
    (r"\b(?:text|txt|send|reply)\b[^.]{0,40}\b(?:to|on) \d{5}\b", "spam"),
    (r"\b(?:claim|collect)\b[^.]{0,60}\b(?:prize|award|reward|cash|£)", "spam"),
    (r"\b(?:won|win|winner)\b[^.]{0,60}(?:£|\bcash\b|\bprize\b|\bholiday\b)", "spam"),
    (r"\bstop\b[^.]{0,20}\b(?:opt ?out|unsubscribe|\d{5})\b|\bto opt ?out\b", "spam"),
    (r"\burgent!", "spam"),
    (r"\bwww\.[a-z0-9-]+\.(?:com|co\.uk|net|biz)\b", "spam"),
]


def load(name: str) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (ROOT / "data" / name / "dev.jsonl").open()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


# -- every tier's answers, once ---------------------------------------------------------------


async def tier_answers(
    step: Step[Any, Any], texts: Sequence[str], gateway: Gateway, in_flight: int = 1
) -> TierAnswers:
    """`tuning.answers` for one tier, over `in_flight` slices of the texts at once (a hosted
    LLM answers many calls concurrently; the embedded one queues them anyway)."""
    tier = Cascade("tier", [(step, 0.0)])
    size = -(-len(texts) // in_flight)
    slices = [texts[i : i + size] for i in range(0, len(texts), size)]
    parts = await asyncio.gather(*(answers(tier, part, gateway) for part in slices))
    return TierAnswers(
        tiers=[step.name],
        answers=[[a for p in parts for a in p.answers[0]]],
        costs=[[c for p in parts for c in p.costs[0]]],
        seconds=[[s for p in parts for s in p.seconds[0]]],
    )


def stack(tiers: Sequence[TierAnswers], rows: Sequence[int]) -> TierAnswers:
    """Several single-tier answer sets as one cascade's, on `rows` only."""
    return TierAnswers(
        tiers=[t.tiers[0] for t in tiers],
        answers=[[t.answers[0][i] for i in rows] for t in tiers],
        costs=[[t.costs[0][i] for i in rows] for t in tiers],
        seconds=[[t.seconds[0][i] for i in rows] for t in tiers],
    )


def ml_answers(model: MLStep, texts: Sequence[str]) -> TierAnswers:
    started = time.perf_counter()
    said = model.predict(texts)
    each = (time.perf_counter() - started) / max(1, len(texts))
    n = len(texts)
    return TierAnswers(["ml"], [said], [[Decimal(0)] * n], [[each] * n])


def quantile_threshold(said: Sequence[Label], share: float) -> float:
    """The ml threshold below which `share` of these answers fall (they would escalate)."""
    confidences = sorted(s.confidence for s in said)
    return confidences[min(len(confidences) - 1, int(share * len(confidences)))]


def accuracy(said: Sequence[Label], truth: Sequence[str]) -> float:
    return sum(s.label == t for s, t in zip(said, truth, strict=True)) / max(1, len(truth))


# -- 5-fold evaluation ------------------------------------------------------------------------


@dataclass
class Folded:
    """Scores of each variant in each fold, and what was tuned."""

    scores: dict[str, list[VariantScore]] = field(default_factory=dict)
    thresholds: list[tuple[float, ...]] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)

    def add(self, scores: Sequence[VariantScore]) -> None:
        for s in scores:
            self.scores.setdefault(s.name, []).append(s)


@dataclass
class DataSetResult:
    name: str
    rows: int
    labels: int
    simulated: Folded
    simulated_wall_s: float
    ml_train_s: float
    embedded: list[VariantScore] | None = None
    embedded_rows: int = 0
    embedded_wall_s: float = 0.0
    embedded_thresholds: list[tuple[float, ...]] = field(default_factory=list)


def variants(tiers: Sequence[str]) -> list[str]:
    return [*(f"{t}-only" for t in tiers), "cascade"]


async def evaluate(name: str, embedded_rows: int, seed: int = 7) -> DataSetResult:
    texts, truth = load(name)
    labels = sorted(set(truth))
    sim = SimulatedLLM(dict(zip(texts, truth, strict=True)))
    llm = classify(SIM, labels, instructions=INSTRUCTIONS[name])
    started = time.perf_counter()
    sim_all = await tier_answers(llm, texts, simulated_gateway(sim), in_flight=250)
    sim_wall = time.perf_counter() - started
    print(f"{name}: simulated LLM answered {len(texts)} rows in {sim_wall:.1f} s", flush=True)
    rules_all = None
    if name == "sms_spam":
        rules_all = await tier_answers(rules("rules", SPAM_RULES), texts, Gateway())

    sample = sorted(random.Random(seed).sample(range(len(texts)), embedded_rows))
    emb_sample: TierAnswers | None = None
    emb_wall = 0.0
    if sample:
        embedded = classify(EMB, labels, instructions=INSTRUCTIONS[name])
        started = time.perf_counter()
        local = Gateway(Settings(model="local"))
        emb_sample = await tier_answers(embedded, [texts[i] for i in sample], local)
        emb_wall = time.perf_counter() - started
        await local.aclose()
        print(f"{name}: embedded LLM answered {len(sample)} rows in {emb_wall:.1f} s", flush=True)

    folded = Folded()
    ml_train = 0.0
    ml_on_sample: dict[int, tuple[Label, float]] = {}  # out-of-fold ml answers, seconds
    fold_of: dict[int, int] = {}
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for fold, (train, held) in enumerate(splitter.split(texts, truth)):
        fit, valid = train_test_split(
            list(train), test_size=0.2, random_state=seed + fold, stratify=[truth[i] for i in train]
        )
        started = time.perf_counter()
        model = MLStep.train(
            "ml",
            [texts[i] for i in fit],
            [truth[i] for i in fit],
            char_ngrams=name in CHAR_NGRAMS,
        )
        ml_train += time.perf_counter() - started
        rows = [*valid, *held]
        ml_part = ml_answers(model, [texts[i] for i in rows])
        ml_all = TierAnswers(["ml"], [[]], [[]], [[]])
        for column in ("answers", "costs", "seconds"):  # indexable by row number
            full: list[Any] = [None] * len(texts)
            for i, value in zip(rows, getattr(ml_part, column)[0], strict=True):
                full[i] = value
            getattr(ml_all, column)[0] = full
        tiers = [t for t in (rules_all, ml_all, sim_all) if t is not None]
        on_valid, on_held = stack(tiers, list(valid)), stack(tiers, list(held))
        truth_valid, truth_held = [truth[i] for i in valid], [truth[i] for i in held]
        target = accuracy(on_valid.answers[-1], truth_valid) - 0.01
        current = [1.0] * len(tiers)  # a rules tier that matched nothing keeps 1.0
        thresholds = calibrate(on_valid.answers, truth_valid, target, current).thresholds
        folded.targets.append(target)
        folded.thresholds.append(thresholds)
        folded.add(score(on_held, truth_held, thresholds, variants(on_held.tiers)))
        capped = [*thresholds[:-2], quantile_threshold(on_valid.answers[-2], LLM_SHARE), 0.0]
        at_cap = score(on_held, truth_held, capped, ["cascade"])[0]
        folded.add([dataclasses.replace(at_cap, name=CAPPED)])
        for i in held:
            if i in sample:
                ml_on_sample[i] = (ml_all.answers[0][i], ml_all.seconds[0][i])
                fold_of[i] = fold
        print(f"{name}: fold {fold + 1}/{FOLDS} done", flush=True)

    result = DataSetResult(name, len(texts), len(labels), folded, sim_wall, ml_train)
    if emb_sample is not None:
        result.embedded, result.embedded_thresholds = embedded_cascade(
            sample, emb_sample, rules_all, ml_on_sample, fold_of, truth
        )
        result.embedded_rows, result.embedded_wall_s = len(sample), emb_wall
    return result


def embedded_cascade(
    sample: list[int],
    emb: TierAnswers,
    rules_all: TierAnswers | None,
    ml_on_sample: dict[int, tuple[Label, float]],
    fold_of: dict[int, int],
    truth: Sequence[str],
) -> tuple[list[VariantScore], list[tuple[float, ...]]]:
    """Variants with the embedded LLM last, on the subsample. Each fold's rows get thresholds
    calibrated on the subsample's rows of the other folds (the embedded model answered only
    the subsample); the cascade's answer per row is then scored over the whole subsample."""
    n = len(sample)
    ml = TierAnswers(
        ["ml"],
        [[ml_on_sample[i][0] for i in sample]],
        [[Decimal(0)] * n],
        [[ml_on_sample[i][1] for i in sample]],
    )
    parts = [ml, emb]
    if rules_all is not None:
        parts.insert(0, stack([rules_all], sample))
    local = list(range(n))
    tiers = stack(parts, local)
    sample_truth = [truth[i] for i in sample]
    alone = score(tiers, sample_truth, [0.0] * len(parts), variants(tiers.tiers)[:-1])
    chosen: list[tuple[float, ...]] = []
    per_fold: list[tuple[list[int], tuple[float, ...]]] = []
    for fold in sorted(set(fold_of.values())):
        held = [j for j in local if fold_of[sample[j]] == fold]
        other = [j for j in local if fold_of[sample[j]] != fold]
        if len(other) < 2:
            thresholds = tuple([NEVER] * (len(parts) - 1) + [0.0])
        else:
            on_other = stack(parts, other)
            other_truth = [sample_truth[j] for j in other]
            target = accuracy(on_other.answers[-1], other_truth) - 0.01
            found = calibrate(on_other.answers, other_truth, target, [1.0] * len(parts))
            thresholds = found.thresholds
        chosen.append(thresholds)
        per_fold.append((held, thresholds))
    # Score each fold's rows with its thresholds, then merge into one cascade score.
    merged = [score(stack(parts, held), [sample_truth[j] for j in held], th, ["cascade"])[0]
              for held, th in per_fold]  # fmt: skip
    rows = sum(s.rows for s in merged)
    cascade = VariantScore(
        name="cascade",
        accuracy=sum(s.accuracy * s.rows for s in merged) / rows,
        macro_f1=cascade_f1(parts, per_fold, sample_truth),
        usd=sum((s.usd for s in merged), Decimal(0)),
        seconds_per_item=sum(s.seconds_per_item * s.rows for s in merged) / rows,
        shares={t: sum(s.shares[t] * s.rows for s in merged) / rows for t in tiers.tiers},
        rows=rows,
    )
    return [*alone, cascade], chosen


def cascade_f1(
    parts: Sequence[TierAnswers],
    per_fold: Sequence[tuple[list[int], tuple[float, ...]]],
    truth: Sequence[str],
) -> float:
    """Macro-F1 of the cascade's answers over the whole subsample (per-fold thresholds)."""
    from sklearn.metrics import f1_score

    predicted = [""] * len(truth)
    last = len(parts) - 1
    for held, thresholds in per_fold:
        for j in held:
            for tier, part in enumerate(parts):
                said = part.answers[0][j]
                if said.label is not None and (tier == last or said.confidence >= thresholds[tier]):
                    predicted[j] = said.label
                    break
    f1 = f1_score(list(truth), predicted, labels=sorted(set(truth)), average="macro",
                  zero_division=0)  # fmt: skip
    return float(f1)


# -- reporting --------------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def spread(values: Sequence[float]) -> str:
    return (
        f"{mean(values):.3f} ± {statistics.stdev(values):.3f}"
        if len(values) > 1
        else (f"{values[0]:.3f}")
    )


def duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2g} ms"


def simulated_table(result: DataSetResult) -> str:
    scores = result.simulated.scores
    base = scores[f"{SIM}-only"]
    base_acc = mean([s.accuracy for s in base])
    base_usd = sum((s.usd for s in base), Decimal(0))
    base_s = mean([s.seconds_per_item for s in base])
    lines = [
        "| variant | accuracy | Δ vs simulated LLM-only (points) | macro-F1 | share to LLM "
        "| $ per 1,000 items | $ ratio | time per item | time ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, folds in scores.items():
        acc = [s.accuracy for s in folds]
        usd = sum((s.usd for s in folds), Decimal(0))
        rows = sum(s.rows for s in folds)
        seconds = mean([s.seconds_per_item for s in folds])
        share = mean([s.shares[SIM] for s in folds])
        label = f"{name} (simulated)" if SIM in name or name.startswith("cascade") else name
        lines.append(
            f"| {label} | {spread(acc)} | {100 * (mean(acc) - base_acc):+.1f} "
            f"| {spread([s.macro_f1 for s in folds])} | {share:.3f} "
            f"| {float(usd * 1000 / rows):.4g} | {float(usd / base_usd):.3f} "
            f"| {duration(seconds)} | {seconds / base_s:.4f} |"
        )
    return "\n".join(lines)


def embedded_table(result: DataSetResult) -> str:
    assert result.embedded is not None
    base = next(s for s in result.embedded if s.name == f"{EMB}-only")
    lines = [
        "| variant | accuracy | macro-F1 | share to embedded LLM | time per item | time ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in result.embedded:
        label = f"{s.name} (→ embedded)" if s.name == "cascade" else s.name
        lines.append(
            f"| {label} | {s.accuracy:.3f} | {s.macro_f1:.3f} | {s.shares[EMB]:.3f} "
            f"| {duration(s.seconds_per_item)} "
            f"| {s.seconds_per_item / base.seconds_per_item:.4f} |"
        )
    return "\n".join(lines)


def verdict(result: DataSetResult) -> str:
    scores = result.simulated.scores
    llm = mean([s.accuracy for s in scores[f"{SIM}-only"]])
    cascade = mean([s.accuracy for s in scores["cascade"]])
    share = mean([s.shares[SIM] for s in scores["cascade"]])
    met = cascade >= llm - 0.01 and share <= 0.25
    return (
        f"target (cascade within 1 point of simulated LLM-only, or above, with ≤ 25 % of items "
        f"to the LLM): {'**met**' if met else '**not met**'}: cascade {cascade:.3f} vs "
        f"{llm:.3f} ({100 * (cascade - llm):+.1f} points), {100 * share:.1f} % to the LLM"
    )


def section(result: DataSetResult) -> str:
    folded = result.simulated
    thresholds = "; ".join(
        "/".join("never" if t == NEVER else f"{t:.3f}" for t in th) for th in folded.thresholds
    )
    tiers = "/".join(folded.scores["cascade"][0].shares)
    text = (
        f"## {result.name} ({result.rows} rows, {result.labels} labels)\n\n"
        f"5-fold, held-out fold scored; the simulated LLM answered all {result.rows} rows in "
        f"{result.simulated_wall_s:.1f} s wall-clock ({LATENCY_S} s per call, up to 250 in "
        f"flight); ml training took {result.ml_train_s:.1f} s over the 5 folds. Calibration "
        f"target per fold: the simulated LLM's validation accuracy − 0.01 (mean "
        f"{mean(folded.targets):.3f}); thresholds per fold ({tiers}): {thresholds}.\n\n"
        f"{simulated_table(result)}\n\n{verdict(result)}.\n"
    )
    if result.embedded is not None:
        per_fold = "; ".join(
            "/".join("never" if t == NEVER else f"{t:.3f}" for t in th)
            for th in result.embedded_thresholds
        )
        text += (
            f"\n**Embedded LLM (SmolLM2-135M, real), on a random subsample of "
            f"{result.embedded_rows} rows** ({result.embedded_wall_s:.0f} s wall-clock; ml "
            f"answers out-of-fold; the cascade's thresholds calibrated leave-one-fold-out on "
            f"the subsample: {per_fold}). $0: it runs on this machine.\n\n"
            f"{embedded_table(result)}\n"
        )
    return text


def findings(results: Sequence[DataSetResult]) -> str:
    """A short "what it shows", from the figures."""

    def acc(r: DataSetResult, variant: str) -> float:
        return mean([s.accuracy for s in r.simulated.scores[variant]])

    def share(r: DataSetResult, variant: str) -> float:
        return mean([s.shares[SIM] for s in r.simulated.scores[variant]])

    lines = ["\n## What it shows\n"]
    for r in results:
        llm, ml, cas = acc(r, f"{SIM}-only"), acc(r, "ml-only"), acc(r, "cascade")
        line = (
            f"- **{r.name}**: ml alone {ml:.3f}, simulated LLM alone {llm:.3f}; the calibrated "
            f"cascade {cas:.3f} ({100 * (cas - llm):+.1f} points) sending "
            f"{100 * share(r, 'cascade'):.1f} % of items to the LLM"
        )
        if ml >= llm:
            line += (
                ": the ml tier is better than a 90 % LLM here, so calibration hands it nearly "
                "everything and the cascade beats the LLM alone at a small fraction of its cost"
            )
        else:
            capped = acc(r, CAPPED)
            line += (
                f". Capping the LLM's share at about {100 * share(r, CAPPED):.0f} % (the ml "
                f"threshold at the validation quantile) gives {capped:.3f} "
                f"({100 * (capped - llm):+.1f} points)"
            )
            per_label = r.rows * 0.64 / r.labels
            line += (
                f": with {per_label:.0f} training examples per label in each fold, the ml tier "
                "is not sure and right often enough to keep LLM accuracy on 75 % of the traffic"
                if capped < llm - 0.01
                else ", within the target: calibration chose more caution than it needed"
            )
            if cas < mean(r.simulated.targets):
                line += (
                    f"; and the thresholds calibrated on the validation fifth "
                    f"({r.rows * 0.16 / r.labels:.1f} rows per label) land below their target "
                    f"(mean {mean(r.simulated.targets):.3f}) on the held-out folds"
                )
        lines.append(line + ".")
    embedded = [r for r in results if r.embedded is not None]
    if embedded:
        parts = []
        for r in embedded:
            assert r.embedded is not None
            alone = next(s for s in r.embedded if s.name == f"{EMB}-only")
            cas = next(s for s in r.embedded if s.name == "cascade")
            parts.append(
                f"{r.name} {alone.accuracy:.3f} on {r.embedded_rows} rows "
                f"({duration(alone.seconds_per_item)} per item; its cascade {cas.accuracy:.3f}, "
                f"{100 * cas.shares[EMB]:.1f} % to it)"
            )
        weaker = [
            r.name
            for r in embedded
            if r.embedded is not None
            and next(s for s in r.embedded if s.name == f"{EMB}-only").accuracy
            < next(s for s in r.embedded if s.name == "ml-only").accuracy
        ]
        lines.append(
            "- **The embedded LLM** (SmolLM2-135M, real): "
            + "; ".join(parts)
            + (
                f". It is weaker than the ml tier on the same rows of {', '.join(weaker)}, "
                "so there its cascade mostly keeps the ml tier's answers"
                if weaker
                else ""
            )
            + ". The samples for many labels are tiny: scoring every label by log-probs "
            "costs tens of seconds per item on this machine; read them as indications only."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--embedded-rows",
        default=",".join(f"{k}={v}" for k, v in EMBEDDED_ROWS.items()),
        help="rows per data set the embedded model answers (0 skips it)",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    sizes = {k: int(v) for k, v in (p.split("=") for p in args.embedded_rows.split(","))}
    started = time.perf_counter()
    results = [asyncio.run(evaluate(name, sizes.get(name, 0))) for name in args.datasets.split(",")]
    total = time.perf_counter() - started
    body = "\n".join(section(r) for r in results) + findings(results)
    print(body)
    if args.no_write:
        return
    RESULTS.write_text(header(total) + body + footer(), encoding="utf-8")
    print(f"wrote {RESULTS} ({total:.0f} s)")


def header(total: float) -> str:
    return (
        "# Cascades on the three dev sets (5-fold)\n\n"
        f"Measured {datetime.date.today()} by `bench/cascade_eval.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, 2 CPU cores shared with other "
        f"work) in {total / 60:.1f} min. **simulated** marks the scripted strong LLM: gold "
        f"label w.p. 0.9, else a random wrong one; priced as `{PRICED_AS}` through the "
        f"gateway (genai-prices; tokens = characters / 4), {LATENCY_S} s per call. It is not a "
        "real model: its figures show what the cascade machinery does with an LLM of that "
        "accuracy and price. The embedded LLM's figures are real.\n\n"
        "Per variant: accuracy and macro-F1 (mean ± standard deviation over the 5 held-out "
        "folds), share of items that reached the LLM, dollars per 1,000 items, and time per "
        "item (the simulated LLM's is its 0.4 s delay plus overhead; the ml tier's is its "
        "batch prediction time per item), each also as a ratio to the simulated LLM alone "
        "(the baseline, run in the same process). The cascade pays every tier it tried. "
        "The row *cascade, ml threshold at the 25 % quantile* sets the ml threshold at the "
        "25 % quantile of the ml tier's validation confidences instead of calibrating it, so "
        "about a quarter of the items escalate: the accuracy the target's LLM share buys. "
        "The ml tier is TF-IDF + logistic regression (word 1–2-grams; plus character 2–5-grams "
        "on banking77 and clinc150, `MLStep.train(..., char_ngrams=True)`).\n\n"
    )


def footer() -> str:
    return (
        "\n## Command\n\n"
        "```\n.venv/bin/python bench/cascade_eval.py "
        "--embedded-rows sms_spam=200,banking77=6,clinc150=6\n```\n"
    )


if __name__ == "__main__":
    main()
