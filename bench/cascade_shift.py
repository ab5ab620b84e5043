"""A cascade in production when the traffic shifts: clinc150 with many more out-of-scope items.

The deployment: an assistant that serves 125 of clinc150's 150 intents. Its labelled dev data
(`data/clinc150/dev.jsonl`, seeded split) holds 7 rows of each served intent and 20 of the
set's `oos` rows (2.2 % out of scope). Its traffic then shifts: requests for the 25 intents it
does not serve (relabelled `oos`: outside its scope, as clinc150's own out-of-scope queries
are outside the 150) and more of clinc150's `oos` rows arrive, 20 % of the items.

- ml tier: `MLStep.train(..., char_ngrams=True)`, in two variants: *plain* (oos is a label
  like any other) and *none of these* (`out_of_scope="oos"`: predicting oos abstains;
  `novelty=NOVELTY`: inputs unlike the training rows abstain), both passing abstentions to
- the LLM tier: the simulated strong LLM (bench/simulated_llm.py: gold w.p. 0.9, else a random
  wrong label; priced as gpt-4.1-mini), over the 125 intents + oos, 0.05 s per call.
- Calibration (`analysis.tuning.calibrate_on`, `max_drop=0.01` below the LLM's measured
  accuracy) on the dev rows, with the ml tier's out-of-fold answers (5 folds, as `llmflow
  calibrate` does: the ml tier is trained on those same rows, `tuning.overlap` finds them).
- Traffic, run through `run_batch` with the run store recording every decision, 25 items at a
  time: phase A (205 items like dev: 2.4 % oos), then the shift, phase B (688 items, 20 %
  oos), in thirds B1, B2, B3 (the monitor watches A and all of B on the old thresholds). The
  cascade audits `AUDIT` of the cheap tier's
  answers (`cascade(..., audit=)`); after every 25 items `analysis.monitoring.live` compares
  the last 200 decisions with the calibrated baseline, two ways: (1) everything against
  calibration, (2) the audited agreement against calibration, each tier's share and mean
  confidence and the share of each label against a reference window, the first REFERENCE
  decisions after deployment (not in the compared window). A control stream, phase A then B's
  in-scope rows with out-of-scope items at A's rate (no shift), counts false alarms over
  more checks than phase A alone has; both streams' recorded decisions are checked again in
  RESHUFFLES other orders, so that neither figure hangs on one order.
- What production does after the alert: at the end of B1 the thresholds are recalibrated from
  B1's decisions and audits (`tuning.calibrate_from_audits`, as `llmflow calibrate
  --from-audits`), and B2 runs on them (the LLM labels what they send it: nearly all). At the
  end of B2 they are recalibrated again from B1's and B2's decisions, as they are and with the
  ml tier retrained first (`inputs=`, as `--from-audits --retrain`: dev + every input the LLM
  labelled, thresholds chosen on the retrained tier's out-of-fold answers), and B3 runs on
  each, against B3 on the old thresholds.
- Detection and recalibration with audit shares 2 %, 5 % and 10 %: the first check after
  the shift that flags drift (any signal), the first flagged by the audited agreement alone,
  by a label's share alone; the false alarms on phase A and on the control stream; B2 and B3
  on the recalibrated thresholds (and retrained tier).
- The bound for recalibration: on B3, with its gold labels, the best a cascade whose ml tier
  (trained on dev; and retrained) answers its most confident 30, 50 or 70 % can do (no
  threshold set from audits beats it).

The baseline is the simulated LLM alone on the same items, in the same process: ratios are
against it. Run: .venv/bin/python bench/cascade_shift.py (rewrites RESULTS-cascade-shift.md);
--quick runs the 5 % audit share only (the detection table's other rows are left out).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulated_llm import PRICED_AS, SimulatedLLM
from sklearn.model_selection import StratifiedKFold

from llmflow import RunStore, Settings, Workflow, run_batch
from llmflow.analysis.calibration import NEVER, wilson
from llmflow.analysis.monitoring import live
from llmflow.analysis.tuning import (
    TierAnswers,
    answers,
    baseline_meta,
    calibrate_from_audits,
    calibrate_on,
    decision_inputs,
    overlap,
)
from llmflow.errors import ConfigError
from llmflow.models.gateway import Gateway, ProviderLimits
from llmflow.patterns.cascade import Cascade, CascadeResult, cascade
from llmflow.runtime.runner import Item
from llmflow.steps.classify import classify
from llmflow.steps.label import Label
from llmflow.steps.ml import MLStep, read_labelled

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "clinc150" / "dev.jsonl"
RESULTS = Path(__file__).with_name("RESULTS-cascade-shift.md")
SEED = 11
UNSERVED = 25
DEV_PER_INTENT, DEV_OOS = 7, 20
PHASE_A = (200, 5)  # in-scope, out-of-scope items
PHASE_B = (550, 138)
AUDIT = 0.05
AUDITS: tuple[float, ...] = (0.02, 0.05, 0.10)
NOVELTY = 0.98
CHAR_NGRAMS = True
WINDOW, CHECK = 200, 25
REFERENCE = 200
AUDIT_WINDOW = 1000
RESHUFFLES = 20
SHARES = (0.3, 0.5, 0.7)
"""Shares of B2 the ml tier answers (its most confident) in the bound."""
FOLDS = 5
LATENCY_S = 0.05
INSTRUCTIONS = "Classify the voice-assistant request by its intent (oos: out of scope)."


def simulated_gateway(llm: SimulatedLLM) -> Gateway:
    """bench/simulated_llm.py's gateway with a long timeout: on a busy machine the ml tier's
    predictions can hold the event loop long enough for a 0.05 s call to look stuck."""
    gateway = Gateway(
        Settings().model_copy(update={"model": PRICED_AS}),
        limits={"openai": ProviderLimits(max_concurrency=500, max_retries=0, timeout_s=3600)},
        backoff=lambda _retry: 0.0,
    )
    gateway.register("openai", llm)
    return gateway


@dataclass
class Split:
    dev: list[tuple[str, str]]
    phase_a: list[tuple[str, str]]
    phase_b: list[tuple[str, str]]
    control: list[tuple[str, str]]
    """B's in-scope rows with out-of-scope rows at phase A's rate: traffic without the shift."""
    labels: list[str]
    gold: dict[str, str]


def split() -> Split:
    texts, truth = read_labelled(DATA)
    rng = random.Random(SEED)
    intents = sorted(set(truth) - {"oos"})
    unserved = set(rng.sample(intents, UNSERVED))
    rows = list(zip(texts, truth, strict=True))
    rng.shuffle(rows)
    by_intent: dict[str, list[str]] = {}
    real_oos, unserved_rows = [], []
    for text, original in rows:
        label = "oos" if original in unserved else original
        if original == "oos":
            real_oos.append(text)
        elif label == "oos":
            unserved_rows.append(text)
        else:
            by_intent.setdefault(label, []).append(text)
    dev = [(t, y) for y, ts in by_intent.items() for t in ts[:DEV_PER_INTENT]]
    dev += [(t, "oos") for t in real_oos[:DEV_OOS]]
    rest = [(t, y) for y, ts in by_intent.items() for t in ts[DEV_PER_INTENT:]]
    rng.shuffle(rest)
    oos_pool = real_oos[DEV_OOS:] + unserved_rows
    rng.shuffle(oos_pool)
    a_in, a_oos = PHASE_A
    b_in, b_oos = PHASE_B
    phase_a = rest[:a_in] + [(t, "oos") for t in oos_pool[:a_oos]]
    phase_b = rest[a_in : a_in + b_in] + [(t, "oos") for t in oos_pool[a_oos : a_oos + b_oos]]
    used = a_oos + b_oos
    control_oos = round(b_in * a_oos / a_in)
    control = rest[a_in : a_in + b_in] + [(t, "oos") for t in oos_pool[used : used + control_oos]]
    rng.shuffle(phase_a)
    rng.shuffle(phase_b)
    rng.shuffle(control)
    labels = sorted({y for _, y in dev})
    gold = {t: "oos" if y in unserved else y for t, y in rows}
    return Split(dev, phase_a, phase_b, control, labels, gold)


def plain(ml: MLStep) -> MLStep:
    """The same model, answering oos like any other label and never abstaining (and so are
    its `retrained` copies)."""
    copy = MLStep(ml.name, ml.model, text=ml.text)
    copy.training = ml.training
    copy.options = {**ml.options, "out_of_scope": None, "novelty": None}
    return copy


def out_of_fold(ml: MLStep, texts: list[str], labels: list[str]) -> dict[str, list[Label]]:
    """Answers of both variants on the dev rows, each from a copy trained without its fold."""
    said = {"plain": [Label(label=None, confidence=0)] * len(texts)}
    said["none of these"] = list(said["plain"])
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for train, held in folds.split(texts, labels):
        copy = ml.retrained([texts[i] for i in train], [labels[i] for i in train])
        part = [texts[i] for i in held]
        for name, step in (("none of these", copy), ("plain", plain(copy))):
            for i, label in zip(held, step.predict(part), strict=True):
                said[name][i] = label
    return said


@dataclass
class Phase:
    name: str
    items: int
    accuracy: float
    llm_share: float
    llm_accuracy: float
    usd: Decimal
    llm_usd: Decimal
    oos_items: int
    oos_confident_wrong: int
    """Out-of-scope items a cheap tier answered with a wrong label."""
    audited: int = 0
    audited_disagree: int = 0


@dataclass
class Stream:
    checks: int
    false_alarms: int
    """Checks that flagged drift before the shift (all of them on a control stream)."""
    first: int | None
    """Items from the shift to the first alarm (None: none, or no shift)."""
    false_reasons: list[str]
    """The first false alarm's reasons."""


@dataclass
class Run:
    variant: str
    thresholds: tuple[float, ...]
    calibrated: dict[str, Any]
    phases: list[Phase] = field(default_factory=list)
    checks: list[tuple[int, list[str]]] = field(default_factory=list)
    """(items since the shift (negative: before it), drift reasons) per check, the share,
    confidence and labels against the reference window."""
    checks_calibrated: list[tuple[int, list[str]]] = field(default_factory=list)
    """The same, everything against the calibrated baseline."""
    control: list[list[str]] = field(default_factory=list)
    control_calibrated: list[list[str]] = field(default_factory=list)
    """Drift reasons per check on the control stream (no shift), both ways."""
    reshuffled_control: dict[str, list[Stream]] = field(default_factory=dict)
    reshuffled_shift: dict[str, list[Stream]] = field(default_factory=dict)
    """Per way (calibrated, reference), the same decisions in RESHUFFLES other orders."""
    recalibrated: tuple[float, ...] = ()
    recalibration: str = ""
    later: tuple[float, ...] = ()
    """Thresholds recalibrated from B1's and B2's decisions (B2 on the recalibrated ones)."""
    later_note: str = ""
    retrained: tuple[float, ...] = ()
    """The same, the ml tier retrained on those decisions' labels first."""
    retrained_note: str = ""
    retrained_bound: list[tuple[float, float, float]] = field(default_factory=list)
    """The bound (as `best_at`) of the retrained ml tier on B3."""

    def phase(self, prefix: str) -> Phase | None:
        return next((p for p in self.phases if p.name.startswith(prefix)), None)


async def llm_only(llm: Any, texts: list[str], gateway: Gateway) -> TierAnswers:
    return await answers(Cascade("llm-only", [(llm, 0.0)]), texts, gateway)


def decided(results: Sequence[Any]) -> list[CascadeResult]:
    out = []
    for r in results:
        if r.error is not None:
            raise r.error
        out.append(r.output)
    return out


async def deploy(
    flow: Cascade,
    rows: list[tuple[str, str]],
    store: RunStore,
    gateway: Gateway,
    workflow: str,
    on_chunk: Any = None,
) -> list[CascadeResult]:
    """Run `rows` through `flow`, CHECK items at a time, recording every decision."""
    out: list[CascadeResult] = []
    for start in range(0, len(rows), CHECK):
        chunk = rows[start : start + CHECK]
        items = [Item(key=f"{start + i}", value=t) for i, (t, _) in enumerate(chunk)]
        batch = await run_batch(Workflow(name=workflow, step=flow), items, gateway=gateway,
                                store=store, concurrency=CHECK)  # fmt: skip
        out += decided(batch.results)
        if on_chunk is not None:
            on_chunk(start + len(chunk))
    return out


def phase(
    name: str,
    rows: list[tuple[str, str]],
    said: list[CascadeResult],
    llm: TierAnswers,
    index: dict[str, int],
    cost_per_call: Decimal,
) -> Phase:
    truth = [y for _, y in rows]
    to_llm = [r.tier == "llm" for r in said]
    llm_right = [llm.answers[0][index[t]].label == y for t, y in rows]
    audits = [r for r in said if r.audit is not None]
    return Phase(
        name=name,
        items=len(rows),
        accuracy=sum(r.label == y for r, y in zip(said, truth, strict=True)) / len(rows),
        llm_share=sum(to_llm) / len(rows),
        llm_accuracy=sum(llm_right) / len(rows),
        usd=cost_per_call * (sum(to_llm) + len(audits)),
        llm_usd=cost_per_call * len(rows),
        oos_items=truth.count("oos"),
        oos_confident_wrong=sum(
            r.tier != "llm" and r.label != y for r, y in zip(said, truth, strict=True) if y == "oos"
        ),
        audited=len(audits),
        audited_disagree=sum(r.audit is not None and r.audit.label != r.label for r in audits),
    )


async def scenario(
    variant: str,
    ml: MLStep,
    thresholds: tuple[float, ...],
    calibrated: dict[str, Any],
    split_: Split,
    sim: SimulatedLLM,
    llm_all: TierAnswers,
    index: dict[str, int],
    cost_per_call: Decimal,
    audit: float,
    recalibrate: bool,
) -> Run:
    llm = classify("llm", split_.labels, instructions=INSTRUCTIONS)
    flow = cascade("intent", (ml, thresholds[0]), (llm, 0.0), audit=audit)
    run = Run(variant, thresholds, calibrated)
    gateway = simulated_gateway(sim)
    b1, b2, b3 = thirds(split_.phase_b)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        workflow = "assistant"
        offset = {"shift": len(split_.phase_a)}

        def check(done: int, base: int) -> None:
            calibrated_way, reference_way = monitor(
                store.cascade_decisions("intent", workflow), calibrated
            )
            since = base + done - offset["shift"]
            run.checks_calibrated.append((since, calibrated_way))
            if reference_way is not None:
                run.checks.append((since, reference_way))

        with tempfile.TemporaryDirectory() as control_tmp:
            control_store = RunStore(Path(control_tmp) / "runs.sqlite")

            def control_check(_done: int) -> None:
                calibrated_way, reference_way = monitor(
                    control_store.cascade_decisions("intent", workflow), calibrated
                )
                run.control_calibrated.append(calibrated_way)
                if reference_way is not None:
                    run.control.append(reference_way)

            await deploy(flow, split_.phase_a + split_.control, control_store, gateway, workflow,
                         control_check)  # fmt: skip
            control_rows = [dict(r) for r in control_store.cascade_decisions("intent", workflow)]
            control_store.close()
        first = len(split_.phase_a)
        run.reshuffled_control = reshuffled(control_rows[:first], control_rows[first:],
                                            calibrated, shifted=False)  # fmt: skip
        said_a = await deploy(flow, split_.phase_a, store, gateway, workflow,
                              lambda n: check(n, 0))  # fmt: skip
        run.phases.append(phase("A: before the shift", split_.phase_a, said_a, llm_all, index,
                                cost_per_call))  # fmt: skip
        since = time.time()
        said_b1 = await deploy(flow, b1, store, gateway, workflow,
                               lambda n: check(n, len(split_.phase_a)))  # fmt: skip
        run.phases.append(phase("B1: shifted, old thresholds", b1, said_b1, llm_all, index,
                                cost_per_call))  # fmt: skip
        rows = store.cascade_decisions("intent", workflow, since=since)  # B1's
        rows_inputs = decision_inputs(store, rows, flow)
        old = await deploy(flow, b2, store, gateway, workflow,
                           lambda n: check(n, len(split_.phase_a) + len(b1)))  # fmt: skip
        run.phases.append(phase("B2: shifted, old thresholds", b2, old, llm_all, index,
                                cost_per_call))  # fmt: skip
        old = await deploy(flow, b3, store, gateway, workflow,
                           lambda n: check(n, len(split_.phase_a) + len(b1) + len(b2)))  # fmt: skip
        run.phases.append(phase("B3: shifted, old thresholds", b3, old, llm_all, index,
                                cost_per_call))  # fmt: skip
        shifted_rows = [dict(r) for r in store.cascade_decisions("intent", workflow)]
        run.reshuffled_shift = reshuffled(shifted_rows[:first], shifted_rows[first:], calibrated,
                                          shifted=True)  # fmt: skip
        if recalibrate:
            try:
                result = calibrate_from_audits(flow, rows, max_drop=0.0,
                                               current=list(thresholds),
                                               expected=calibrated)  # fmt: skip
            except ConfigError as e:
                run.recalibration = f"refused: {e}"
                store.close()
                await gateway.aclose()
                return run
            run.recalibrated = result.calibration.thresholds
            run.recalibration = (
                f"{len(rows)} decisions of B1: {result.escalated} escalated, {result.audited} "
                f"audited (weight {1 / audit:.0f} each); ml agreement target "
                f"{result.target:.3f}"
            )
            new_flow = flow.with_thresholds(run.recalibrated)
            recal_store = RunStore(Path(tmp) / "recalibrated.sqlite")
            new = await deploy(new_flow, b2, recal_store, gateway, workflow)
            run.phases.append(phase("B2: shifted, recalibrated from B1's audits", b2, new,
                                    llm_all, index, cost_per_call))  # fmt: skip
            # B3: recalibrated again from B1's and B2's decisions (B2 on the recalibrated
            # thresholds: the LLM labelled most of it), with and without retraining.
            rows2 = recal_store.cascade_decisions("intent", workflow)
            both = [*rows, *rows2]
            inputs = [*rows_inputs, *decision_inputs(recal_store, rows2, new_flow)]
            recal_store.close()
            for retrain in (False, True):
                t0 = time.perf_counter()
                try:
                    again = calibrate_from_audits(new_flow, both, max_drop=0.0,
                                                  current=list(run.recalibrated),
                                                  expected=calibrated,
                                                  inputs=inputs if retrain else None)  # fmt: skip
                except ConfigError as e:
                    note = f"refused: {e}"
                    if retrain:
                        run.retrained_note = note
                    else:
                        run.later_note = note
                    continue
                took = time.perf_counter() - t0
                note = (f"{len(both)} decisions of B1 and B2: {again.escalated} escalated, "
                        f"{again.audited} audited; {'; '.join(again.notes)}"
                        + (f" ({took:.0f} s)" if retrain else ""))  # fmt: skip
                tiers = [
                    (again.retrained.get(step.name, step), t)
                    for (step, _), t in zip(
                        new_flow.tiers, again.calibration.thresholds, strict=True
                    )
                ]
                b3_flow = Cascade(new_flow.name, tiers, audit=new_flow.audit)
                said = await deploy(b3_flow, b3, RunStore(":memory:"), gateway, workflow)
                if retrain:
                    run.retrained, run.retrained_note = again.calibration.thresholds, note
                    name = "B3: ml tier retrained on B1's and B2's labels, recalibrated"
                    ml_new = again.retrained[ml.name]
                    run.retrained_bound = [(share, *best_at(ml_new, b3, llm_all, index, share))
                                           for share in SHARES]  # fmt: skip
                else:
                    run.later, run.later_note = again.calibration.thresholds, note
                    name = "B3: recalibrated from B1's and B2's decisions"
                run.phases.append(phase(name, b3, said, llm_all, index, cost_per_call))
        store.close()
    await gateway.aclose()
    return run


def thirds(rows: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    third = len(rows) // 3
    return rows[:third], rows[third : 2 * third], rows[2 * third :]


def monitor(every: Sequence[Any], calibrated: dict[str, Any]) -> tuple[list[str], list[str] | None]:
    """Drift reasons for the last WINDOW of decisions `every`: everything against the
    calibrated baseline; and (None until there are REFERENCE + WINDOW // 2 decisions) share,
    confidence and labels against the reference window, the first REFERENCE decisions, with
    the agreement against calibration on the last AUDIT_WINDOW decisions (WINDOW holds a
    handful of audits: ~7 at 5 %)."""
    tiers = ["ml", "llm"]
    report = live(every[-WINDOW:], tiers, "intent", calibrated)
    calibrated_way = [f"{t.tier}: {why}" for t in report.tiers for why in t.drift]
    if len(every) < REFERENCE + WINDOW // 2:
        return calibrated_way, None
    agreement = {t: {"agreement": b["agreement"]} for t, b in calibrated.items()}
    report = live(every[REFERENCE:][-WINDOW:], tiers, "intent", reference=every[:REFERENCE])
    audits = live(every[-AUDIT_WINDOW:], tiers, "intent", agreement)
    reference_way = [f"{t.tier}: {why}" for r in (report, audits) for t in r.tiers
                     for why in t.drift]  # fmt: skip
    return calibrated_way, reference_way + report.label_drift


def reshuffled(
    before: list[Any], after: list[Any], calibrated: dict[str, Any], *, shifted: bool
) -> dict[str, list[Stream]]:
    """The monitor on the same recorded decisions in RESHUFFLES other orders (`before` and
    `after` each shuffled, `before` first), checked every CHECK items: the false alarms
    and the first alarm after the shift do not hang on one order of the items."""
    ends = sorted({*range(CHECK, len(before), CHECK), len(before)}
                  | {len(before) + k for k in range(CHECK, len(after), CHECK)}
                  | {len(before) + len(after)})  # fmt: skip
    out: dict[str, list[Stream]] = {"calibrated": [], "reference": []}
    for seed in range(RESHUFFLES):
        rng = random.Random(seed)
        order = rng.sample(before, len(before)) + rng.sample(after, len(after))
        found: dict[str, list[tuple[int, list[str]]]] = {"calibrated": [], "reference": []}
        for end in ends:
            calibrated_way, reference_way = monitor(order[:end], calibrated)
            since = end - len(before) if shifted else 0
            found["calibrated"].append((since, calibrated_way))
            if reference_way is not None:
                found["reference"].append((since, reference_way))
        for way, checks in found.items():
            reasons = next((r for since, r in checks if since <= 0 and r), [])
            first = first_alarm(checks, None) if shifted else None
            out[way].append(Stream(len(checks), false_alarms(checks), first, reasons))
    return out


def first_alarm(checks: list[tuple[int, list[str]]], only: str | None) -> int | None:
    for since, reasons in checks:
        if since <= 0:
            continue
        hit = [r for r in reasons if only in r] if only else reasons
        if hit:
            return since
    return None


def false_alarms(checks: list[tuple[int, list[str]]]) -> int:
    return sum(1 for since, reasons in checks if since <= 0 and reasons)


def best_at(ml: MLStep, rows: list[tuple[str, str]], llm: TierAnswers, index: dict[str, int],
            ml_share: float) -> tuple[float, float]:  # fmt: skip
    """With gold labels: accuracy of the cascade whose ml tier answers its most confident
    `ml_share` of `rows` and the LLM the rest, and the ml tier's accuracy on those."""
    said = ml.predict([t for t, _ in rows])
    order = sorted(range(len(rows)), key=lambda i: -(said[i].confidence or 0.0)
                   if said[i].label is not None else 1.0)  # fmt: skip
    cut = round(ml_share * len(rows))
    mine = order[:cut]
    ml_right = sum(said[i].label == rows[i][1] for i in mine)
    llm_right = sum(llm.answers[0][index[rows[i][0]]].label == rows[i][1] for i in order[cut:])
    return (ml_right + llm_right) / len(rows), ml_right / max(1, cut)


def fmt_t(thresholds: Sequence[float]) -> str:
    return "/".join("never" if t == NEVER else f"{t:.3f}" for t in thresholds)


async def main() -> None:
    global AUDITS, CHAR_NGRAMS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", default=",".join(f"{a:g}" for a in AUDITS),
                        help="audit shares for the detection table (the run with AUDIT "
                        "recalibrates)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help=f"the {AUDIT:.0%} audit share only (a few minutes less)")  # fmt: skip
    parser.add_argument("--words-only", action="store_true",
                        help="no character n-grams (trains faster on a busy machine)")  # fmt: skip
    args = parser.parse_args()
    AUDITS = (AUDIT,) if args.quick else tuple(float(a) for a in args.audits.split(","))
    CHAR_NGRAMS = not args.words_only
    started = time.perf_counter()
    s = split()
    dev_texts, dev_labels = [t for t, _ in s.dev], [y for _, y in s.dev]
    sim = SimulatedLLM(s.gold, latency_s=LATENCY_S)
    llm = classify("llm", s.labels, instructions=INSTRUCTIONS)
    every = dev_texts + [t for t, _ in s.phase_a + s.phase_b]
    index = {t: i for i, t in enumerate(every)}
    gateway = simulated_gateway(sim)
    llm_all = await llm_only(llm, every, gateway)
    await gateway.aclose()
    cost_per_call = sum(llm_all.costs[0], Decimal(0)) / len(every)
    print(f"split: dev {len(s.dev)}, A {len(s.phase_a)}, B {len(s.phase_b)}", flush=True)

    t0 = time.perf_counter()
    ml = MLStep.train("ml", dev_texts, dev_labels, char_ngrams=CHAR_NGRAMS, out_of_scope="oos",
                      novelty=NOVELTY)  # fmt: skip
    train_s = time.perf_counter() - t0
    seen = overlap(ml, dev_texts)
    t0 = time.perf_counter()
    oof = out_of_fold(ml, dev_texts, dev_labels)
    oof_s = time.perf_counter() - t0
    in_sample = {"none of these": ml.predict(dev_texts), "plain": plain(ml).predict(dev_texts)}
    print(f"ml trained in {train_s:.0f} s, out-of-fold in {oof_s:.0f} s", flush=True)

    llm_dev = [llm_all.answers[0][index[t]] for t in dev_texts]
    b3 = thirds(s.phase_b)[2]
    bounds = {variant: [(share, *best_at(step, b3, llm_all, index, share)) for share in SHARES]
              for variant, step in (("plain", plain(ml)), ("none of these", ml))}  # fmt: skip
    b3_llm = sum(llm_all.answers[0][index[t]].label == y for t, y in b3) / len(b3)
    runs: list[Run] = []
    calibration_rows: list[dict[str, Any]] = []
    for variant, step in (("plain", plain(ml)), ("none of these", ml)):
        for source, said in (("in-sample", in_sample[variant]), ("out-of-fold", oof[variant])):
            tiers = TierAnswers(["ml", "llm"], [said, llm_dev],
                                [[Decimal(0)] * len(said), [cost_per_call] * len(said)],
                                [[0.0] * len(said)] * 2)  # fmt: skip
            report = calibrate_on(tiers, dev_labels, max_drop=0.01)
            calibration_rows.append({"variant": variant, "answers": source, "report": report})
            if source == "out-of-fold":
                expected = baseline_meta(report.baseline, ["ml", "llm"])
                for audit in AUDITS:
                    run = await scenario(variant, step, report.calibration.thresholds,
                                         expected, s, sim, llm_all, index, cost_per_call,
                                         audit, recalibrate=True)  # fmt: skip
                    run.variant = f"{variant}, audit {audit:.0%}"
                    runs.append(run)
                    print(f"{run.variant}: done", flush=True)
    write(s, runs, calibration_rows, seen, train_s, oof_s, time.perf_counter() - started,
          bounds, b3_llm)  # fmt: skip


NOTES = """### What the 2026-12-06 run shows (notes written by hand on that run's figures)

- **Target (within 1 point of LLM-only at ≤ 30 % LLM share, after recalibration from audits):
  not met**, with or without retraining, at any audit share tried.
- Retraining the ml tier on dev + the inputs the LLM labelled (220 at 5 % audits) is the lever
  that moves the bound: with the gold labels, the retrained plain tier's most confident 70 %
  of B3 keep the cascade 0.9 points below LLM-only (−4.8 before retraining); *none of these*
  −2.6 (−3.9). So a threshold that meets the target exists for the retrained plain tier, by a
  hair, but nothing the deployment has can find it.
- Why recalibration cannot find it: its only evidence on the items the ml tier answers is the
  audits, 13–14 of them at 5 %, each standing for 1/audit share of the items (weight 20), and
  judged by an LLM that is itself wrong 10 % of the time. Checked by hand on this split (a
  throwaway script, not committed): the two most confident audited answers of the retrained
  plain tier were right by the gold labels and the simulated LLM disagreed with both, so no
  threshold reached the calibrated agreement and recalibration chose `never`; had a person
  corrected the 3 audited disagreements (`llmflow correct`), it would have chosen 0.231 — 21 %
  to the LLM but 5.2 points below LLM-only. A dozen or two audits cannot place the threshold
  to within the few points the target allows; in this run they gave the safe outcome
  (`never` or nearly: 98–100 % to the LLM, LLM-only accuracy at LLM cost) at 5 % and 10 %.
- More dev data is not there: clinc150's file holds 13 rows per intent; dev takes 7 of a
  served intent's and the traffic the other 6.
- Sentence embeddings from the shipped SmolLM2-135M GGUF (llama-cpp-python, mean-pooled, no
  download), tried by hand on this split and not adopted: 58 ms per text on 2 busy cores;
  alone they are far weaker than the n-grams (most confident 70 % of B2: 0.69 right against
  0.82); appended to the n-gram features of a tier retrained on dev + A's and B1's LLM labels
  they raised the bound at 70 % ml to about −0.9 points (B in halves) and, with B2 wholly
  LLM-labelled, recalibration from the labels sent 45–46 % to the LLM at +1.3 to +1.7 points:
  better than the n-grams alone (55–59 % in the same check), still far from ≤ 30 %."""

BEFORE = """### Before retraining (the previous run of this bench, commit 43334e8, B in halves)

B2 (B's second half) on thresholds recalibrated from B1's (first half's) audits, 5 % audit
share: 0.895, +0.0 points vs LLM-only, 100.0 % LLM share (plain and none of these); 10 %:
+0.3 points, 93.6 % LLM share; 2 %: refused (6 audits). The bound on B2 with the ml tier
trained on dev only, 70 % of the items to the ml tier: −4.9 (plain), −4.4 (none of these)
points vs LLM-only, so no threshold could reach the target with that tier."""


def write(
    s: Split,
    runs: list[Run],
    calibration_rows: list[dict[str, Any]],
    seen: int | None,
    train_s: float,
    oof_s: float,
    wall_s: float,
    bounds: dict[str, list[tuple[float, float, float]]],
    b3_llm: float,
) -> None:
    lines = [
        "# A cascade through a traffic shift (clinc150, out of scope 2 % → 20 %)",
        "",
        f"Measured {datetime.date.today()} by `bench/cascade_shift.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, 2 CPU cores shared with other "
        f"work) in {wall_s / 60:.1f} min. **Simulated** LLM (bench/simulated_llm.py): gold "
        "w.p. 0.9, else a random wrong label, priced as gpt-4.1-mini, "
        f"{LATENCY_S} s per call: the figures show what the cascade machinery does with an LLM "
        "of that accuracy, not what a real model does. Ratios are against the simulated LLM "
        "alone on the same items, in the same process.",
        "",
        f"Deployment: {125} of clinc150's 150 intents served; dev = {len(s.dev)} rows "
        f"({DEV_PER_INTENT} per served intent + {DEV_OOS} `oos`). Traffic: phase A "
        f"{len(s.phase_a)} items ({PHASE_A[1]} oos), then phase B {len(s.phase_b)} items "
        f"({PHASE_B[1]} oos, {PHASE_B[1] / len(s.phase_b):.0%}: clinc150 `oos` rows and the "
        f"{UNSERVED} unserved intents' rows, relabelled oos); B1, B2, B3 = B's thirds. "
        "clinc150's dev.jsonl holds 13 rows of each intent: the 6 a served intent has beyond "
        "dev are traffic, so dev cannot grow without taking them from the traffic. The ml "
        "tier: TF-IDF word 1–2-grams"
        + (" + character 2–5-grams" if CHAR_NGRAMS else "")
        + " + calibrated "
        f"logistic regression, trained on dev in {train_s:.0f} s; *none of these* = "
        f'`out_of_scope="oos"` + `novelty={NOVELTY}`.',
        "",
        "## Honest calibration on dev",
        "",
        f"The ml tier was trained on all {len(s.dev)} dev rows; `tuning.overlap` finds "
        f"{seen} of them among the calibration rows, so calibration uses its out-of-fold "
        f"answers ({FOLDS} copies, each trained without a {FOLDS}th: {oof_s:.0f} s). Target: "
        "the LLM's "
        "measured accuracy − 0.01 (`--max-drop 0.01`). Intervals: 95 % Wilson.",
        "",
        "| ml variant | ml answers | ml alone (95 %) | ml threshold | held-out cascade (95 %) "
        "| LLM share (held-out) | ml agreement with LLM |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in calibration_rows:
        r = row["report"]
        lo, hi = r.tier_intervals[0]
        tlo, thi = r.test_interval
        agreement = r.baseline[0].agreement
        lines.append(
            f"| {row['variant']} | {row['answers']} | {r.tier_accuracy[0]:.3f} "
            f"({lo:.3f}–{hi:.3f}) | {fmt_t(r.calibration.thresholds[:1])} | "
            f"{r.test_accuracy:.3f} ({tlo:.3f}–{thi:.3f}) "
            f"| {r.test_shares[-1]:.1%} | "
            f"{'–' if agreement is None else f'{agreement:.3f}'} |"
        )
    lines += [
        "",
        "In-sample answers make the ml tier look far better than it is; thresholds chosen "
        "on them send too little to the LLM. Everything below uses the out-of-fold calibration.",
        "",
        f"## Through the shift (audit {AUDIT:.0%})",
        "",
        "| ml variant | phase | items | cascade accuracy (95 %) | LLM-only accuracy | Δ points "
        "| LLM share | $ ratio vs LLM-only | oos items answered wrong by ml | audited, disagreed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    main_runs = [r for r in runs if r.variant.endswith(f"audit {AUDIT:.0%}")]
    for run in main_runs:
        for p in run.phases:
            lo, hi = wilson(p.accuracy * p.items, p.items)
            lines.append(
                f"| {run.variant.split(',')[0]} | {p.name} | {p.items} | {p.accuracy:.3f} "
                f"({lo:.3f}–{hi:.3f}) | {p.llm_accuracy:.3f} | "
                f"{(p.accuracy - p.llm_accuracy) * 100:+.1f} | {p.llm_share:.1%} | "
                f"{float(p.usd / p.llm_usd):.3f} | {p.oos_confident_wrong} of {p.oos_items} "
                f"({p.oos_confident_wrong / max(1, p.oos_items):.1%}) | "
                f"{p.audited}, {p.audited_disagree} |"
            )
    lines.append("")
    for run in main_runs:
        lines.append(
            f"- {run.variant}: calibrated thresholds {fmt_t(run.thresholds)}; recalibrated "
            f"from B1's audits {fmt_t(run.recalibrated)} ({run.recalibration}); from B1's and "
            f"B2's decisions {fmt_t(run.later)} ({run.later_note}); retrained and recalibrated "
            f"{fmt_t(run.retrained)} ({run.retrained_note}). Calibrated baseline: "
            f"{json.dumps(run.calibrated['ml'])}"
        )
    lines += [
        "",
        "The production sequence, by audit share: B1 on the calibrated thresholds (the drift "
        "alert fires early in it, below); at its end `calibrate --from-audits` "
        "(`tuning.calibrate_from_audits`: the ml tier must agree with the LLM as often as it "
        "did in calibration, `max_drop` 0), B2 on those thresholds; at B2's end the same "
        "from B1's and B2's decisions, either as is or with `--retrain` (`inputs=`: the ml "
        "tier retrained on dev + every input the LLM labelled, escalated or audited, its "
        "thresholds chosen on its out-of-fold answers), B3 on the result. Nothing is chosen on "
        "the gold labels of the traffic. "
        "Target: within 1 point of LLM-only at ≤ 30 % LLM share.",
        "",
        "| ml variant | audit share | B1 audited | B2: threshold from B1's audits | B2 Δ points "
        "| B2 LLM share | B3: threshold from B1+B2 | B3 Δ points | B3 LLM share | B3 retrained: "
        "threshold | B3 retrained Δ points (95 % accuracy) | B3 retrained LLM share | target met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cells(p: Phase | None, thresholds: tuple[float, ...], note: str) -> list[str]:
        if p is None:
            return [note or "–", "–", "–"]
        return [fmt_t(thresholds[:1]), f"{(p.accuracy - p.llm_accuracy) * 100:+.1f}",
                f"{p.llm_share:.1%}"]  # fmt: skip

    for run in runs:
        variant, audit = run.variant.split(", audit ")
        b2p = run.phase("B2: shifted, recalibrated")
        later = run.phase("B3: recalibrated")
        retrained = run.phase("B3: ml tier retrained")
        cols = [variant, audit, str(run.phases[1].audited),
               *cells(b2p, run.recalibrated, run.recalibration),
               *cells(later, run.later, run.later_note),
               *cells(retrained, run.retrained, run.retrained_note)]  # fmt: skip
        met = "–"
        if retrained is not None:
            lo, hi = wilson(retrained.accuracy * retrained.items, retrained.items)
            cols[-2] += f" ({lo:.3f}–{hi:.3f})"
            ok = retrained.accuracy >= retrained.llm_accuracy - 0.01 and retrained.llm_share <= 0.3
            met = "yes" if ok else "no"
        lines.append("| " + " | ".join([*cols, met]) + " |")
    lines += [
        "",
        "The bound: on B3, with its gold labels, the ml tier answering its most confident "
        "share of the items and the LLM the rest (no threshold, however recalibrated, does "
        f"better at that share). The LLM alone: {b3_llm:.3f}. *retrained*: the ml tier "
        f"retrained at B2's end (audit {AUDIT:.0%}).",
        "",
        "| ml variant | ml answers | its accuracy on them | cascade accuracy | Δ points vs "
        "LLM-only | LLM share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    every_bound = dict(bounds)
    for run in main_runs:
        if run.retrained_bound:
            every_bound[f"{run.variant.split(',')[0]}, retrained"] = run.retrained_bound
    for variant, rows in every_bound.items():
        for share, accuracy, ml_accuracy in rows:
            lines.append(
                f"| {variant} | {share:.0%} | {ml_accuracy:.3f} | {accuracy:.3f} | "
                f"{(accuracy - b3_llm) * 100:+.1f} | {1 - share:.0%} |"
            )
    lines += ["", NOTES, "", BEFORE]
    lines += [
        "",
        "## Detection",
        "",
        f"`analysis.monitoring.live` on the last {WINDOW} decisions after every {CHECK} items. "
        "Tolerances: share ± 5 points, mean confidence ± 0.05, a label's share ± 2 points, "
        "agreement − 5 points, each moved when the 99 % interval (of the live figure against "
        "calibration; of the difference against the reference window; for labels "
        "Bonferroni-corrected over the labels with 5 items or more) lies wholly beyond; the "
        "agreement from 10 audits (`live`'s defaults). *Calibrated*: everything against the "
        "calibrated baseline. *Reference*: share, confidence and labels against the first "
        f"{REFERENCE} decisions after deployment (checked from {REFERENCE + WINDOW // 2} "
        f"decisions on, on the decisions after the reference window), the agreement against "
        f"calibration on the last {AUDIT_WINDOW} decisions ({WINDOW} hold ~7 audits at 5 %). "
        "Items counted from the "
        f"shift. The control stream: phase A, then {len(s.control)} items without the shift "
        "(B's in-scope rows, out of scope at A's rate).",
        "",
        "| ml variant | audit share | baseline | false alarms: phase A | false alarms: control "
        "stream | first alarm after the shift | from agreement | from labels | its reasons | "
        "the control stream's first false alarm |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]

    def when(found: int | None) -> str:
        return "none" if found is None else f"{found} items"

    for run in runs:
        variant, audit = run.variant.split(", audit ")
        for name, checks, control in (
            ("calibrated", run.checks_calibrated, run.control_calibrated),
            ("reference", run.checks, run.control),
        ):
            first = first_alarm(checks, None)
            reasons = next((r for since, r in checks if since == first), [])
            before = sum(1 for since, _ in checks if since <= 0)
            lines.append(
                f"| {variant} | {audit} | {name} | "
                f"{f'{false_alarms(checks)} of {before}' if before else '– (no check)'} | "
                f"{sum(1 for r in control if r)} of {len(control)} | {when(first)} | "
                f"{when(first_alarm(checks, 'agreement'))} | "
                f"{when(first_alarm(checks, 'label'))} | {'; '.join(reasons)[:300]} | "
                f"{'; '.join(next((r for r in control if r), []))[:300]} |"
            )
    lines += [
        "",
        f"The same recorded decisions in {RESHUFFLES} other orders (phase A's shuffled, then the "
        "control stream's or B's (on the old thresholds)), checked as above: whether the "
        "figures hang on one order.",
        "",
        "| ml variant | audit share | baseline | control streams with a false alarm | checks "
        "flagged on them | shifted streams with a false alarm before the shift | first alarm "
        "after the shift: median, worst | no alarm in B | the false alarms' reasons (first "
        "check of each stream) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        variant, audit = run.variant.split(", audit ")
        for name in ("calibrated", "reference"):
            control_streams = run.reshuffled_control.get(name, [])
            shifted = run.reshuffled_shift.get(name, [])
            firsts = sorted(st.first for st in shifted if st.first is not None)
            lines.append(
                f"| {variant} | {audit} | {name} | "
                f"{sum(1 for st in control_streams if st.false_alarms)} of {len(control_streams)} "
                f"| {sum(st.false_alarms for st in control_streams)} of "
                f"{sum(st.checks for st in control_streams)} | "
                f"{sum(1 for st in shifted if st.false_alarms)} of {len(shifted)} | "
                + (f"{statistics.median(firsts):.0f}, {firsts[-1]} items" if firsts else "–")
                + f" | {len(shifted) - len(firsts)} of {len(shifted)} | "
                + "; ".join(
                    sorted(
                        {
                            why.split(" (")[0]
                            for st in control_streams + shifted
                            for why in st.false_reasons
                        }
                    )
                )[:400]
                + " |"
            )
    lines.append("")
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
