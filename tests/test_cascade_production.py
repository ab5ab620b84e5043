"""Cascades in production: versions that follow their data, honest calibration, "none of
these" abstentions, live audits and drift, from Python, workflow files and the CLI."""

from __future__ import annotations

import functools
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from llmflow import ModelRequest, ModelResponse, RunStore, Settings, Workflow, run_batch
from llmflow.analysis.calibration import NEVER, calibrate_agreement, wilson
from llmflow.analysis.evaluation import needed_rows
from llmflow.analysis.monitoring import audit_answers, live
from llmflow.analysis.tuning import (
    StaleVersionWarning,
    TierAnswers,
    answers,
    baseline_meta,
    calibrate_from_audits,
    calibrate_on,
    honest,
    overlap,
    retrain,
    save_version,
    tuned,
)
from llmflow.cli import main
from llmflow.errors import ConfigError
from llmflow.patterns.cascade import Cascade, cascade
from llmflow.runtime.runner import Item
from llmflow.steps.classify import classify
from llmflow.steps.label import Label
from llmflow.steps.ml import TRAIN_OPTIONS, MLStep, read_labelled
from llmflow.testing import ScriptedModel, scripted_gateway
from llmflow.workflow_files.schema import MLSpec
from llmflow.workflows import load_workflow

SMS = Path(__file__).parent.parent / "data" / "sms_spam" / "dev.jsonl"
CLINC = Path(__file__).parent.parent / "data" / "clinc150" / "dev.jsonl"


@functools.cache
def sms() -> list[tuple[str, str]]:
    texts, labels = read_labelled(SMS)
    rows = list(dict(zip(texts, labels, strict=True)).items())  # one label per text
    random.Random(5).shuffle(rows)
    return rows


@functools.cache
def sms_ml() -> MLStep:
    rows = sms()[:300]
    return MLStep.train("ml", [t for t, _ in rows], [y for _, y in rows])


def oracle(truth: dict[str, str], *, wrong: set[str] = frozenset()) -> ScriptedModel:  # type: ignore[assignment]
    """An LLM that answers the gold label (sure of it), except on `wrong` texts."""

    def reply(request: ModelRequest) -> ModelResponse:
        text = request.messages[-1].content or ""
        label = truth.get(text, "ham")
        if text in wrong:
            label = "spam" if label == "ham" else "ham"
        return ModelResponse(text=label, choice_probs={label: 0.95})

    return ScriptedModel(reply)


# -- versions that follow their data ----------------------------------------------------------


def _workflow_folder(folder: Path, rows: list[tuple[str, str]], **ml: Any) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "examples.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8"
    )
    options = "".join(f", {k}: {json.dumps(v)}" for k, v in ml.items())
    (folder / "workflow.yaml").write_text(
        "name: spamcheck\n"
        "steps:\n"
        "  - id: spam\n"
        "    kind: cascade\n"
        "    audit: 0.1\n"
        "    tiers:\n"
        f"      - step: {{id: ml, kind: ml, train: examples.jsonl{options}}}\n"
        "        threshold: 0.9\n"
        "      - step: {id: llm, kind: classify, labels: [ham, spam]}\n",
        encoding="utf-8",
    )
    return folder


def _cascade_of(folder: Path) -> Cascade:
    step = load_workflow(str(folder)).step
    found = [s for s in _walk(step) if isinstance(s, Cascade)]
    return found[0]


def _walk(step: Any) -> list[Any]:
    return [step, *(s for _, child in step.children() for s in _walk(child))]


def test_a_stored_version_is_not_applied_once_the_training_data_changed(tmp_path: Path) -> None:
    rows = sms()[:120]
    folder = _workflow_folder(tmp_path / "wf", rows)
    first = _cascade_of(folder)
    assert first.audit == 0.1
    ml = first.tiers[0][0]
    assert isinstance(ml, MLStep) and ml.data_sha256 is not None
    version = save_version(first, Settings().home, "spamcheck", thresholds=[0.55, 0.0], meta={})
    meta = json.loads((version / "meta.json").read_text())
    assert meta["data_sha256"] == meta["workflow_data_sha256"] == ml.data_sha256

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same data: applied, no warning
        again = _cascade_of(folder)
    assert again.tiers[0][1] == 0.55

    flipped = [(t, "ham" if y == "spam" else "spam") for t, y in rows]
    _workflow_folder(folder, flipped)
    with pytest.warns(StaleVersionWarning, match="llmflow calibrate <workflow> spam"):
        changed = _cascade_of(folder)
    new_ml = changed.tiers[0][0]
    assert isinstance(new_ml, MLStep) and changed.tiers[0][1] == 0.9  # the file's threshold
    said = new_ml.predict([t for t, _ in flipped[:40]])
    assert sum(s.label == y for s, (_, y) in zip(said, flipped, strict=False)) >= 36

    # Options are part of what a version was made for.
    _workflow_folder(folder, rows, char_ngrams=True)
    with pytest.warns(StaleVersionWarning):
        _cascade_of(folder)


def test_a_retrained_tier_stays_applied_through_later_versions(tmp_path: Path) -> None:
    folder = _workflow_folder(tmp_path / "wf", sms()[:120])
    first = _cascade_of(folder)
    ml = first.tiers[0][0]
    assert isinstance(ml, MLStep)
    extra = sms()[120:160]
    retrained = retrain(ml, [t for t, _ in extra], [y for _, y in extra])
    save_version(first, Settings().home, "spamcheck", ml=retrained, meta={})
    # The workflow loads the retrained tier; a version saved from that cascade (as calibrate
    # does) is still made for the workflow's own tier, so the next load applies it too.
    for thresholds in ([0.6, 0.0], [0.7, 0.0]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = _cascade_of(folder)
        tier = loaded.tiers[0][0]
        assert isinstance(tier, MLStep) and tier.data_sha256 == retrained.data_sha256
        save_version(loaded, Settings().home, "spamcheck", thresholds=thresholds, meta={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        last = _cascade_of(folder)
    kept = last.tiers[0][0]
    assert isinstance(kept, MLStep) and kept.data_sha256 == retrained.data_sha256
    assert last.tiers[0][1] == 0.7


def test_every_ml_training_option_is_available_in_workflow_files(tmp_path: Path) -> None:
    assert set(TRAIN_OPTIONS) <= set(MLSpec.model_fields)
    rows = [(t, y) for t, y in sms()[:150]] + [
        ("what is the capital of peru", "oos"),
        ("how tall is mount everest", "oos"),
        ("tell me a joke about cats", "oos"),
    ]
    folder = _workflow_folder(
        tmp_path / "wf", rows, char_ngrams=True, out_of_scope="oos", novelty=0.95
    )
    ml = _cascade_of(folder).tiers[0][0]
    assert isinstance(ml, MLStep)
    assert ml.options == {"char_ngrams": True, "out_of_scope": "oos", "novelty": 0.95}
    assert ml.out_of_scope == "oos" and ml.max_novelty is not None
    assert len(ml.model.steps[0][1].transformer_list) == 2  # words and characters


# -- "none of these" ----------------------------------------------------------------------------


def test_the_ml_tier_abstains_out_of_scope_and_on_novel_inputs(tmp_path: Path) -> None:
    texts, labels = read_labelled(CLINC)
    keep = [i for i, y in enumerate(labels) if y in {"oos", "balance", "transfer", "weather"}]
    train = [texts[i] for i in keep]
    truth = [labels[i] for i in keep]
    ml = MLStep.train("ml", train, truth, out_of_scope="oos", novelty=0.9)
    said = ml.predict(train)
    assert all(s.label is None for s, y in zip(said, truth, strict=True) if y == "oos")
    assert "oos" not in {s.label for s in said}
    novel = ml.predict(["zebra quantum ukulele", "what's the weather like in paris today"])
    assert novel[0] == Label(label=None, confidence=0.0)  # unlike anything it learned
    assert novel[1].label == "weather"
    assert ml.novelty(["zebra quantum ukulele"])[0] > ml.max_novelty  # type: ignore[operator]

    ml.save(tmp_path / "model.skops")  # the abstention survives saving (skops, no pickle)
    loaded = MLStep.load("ml", tmp_path / "model.skops")
    assert (loaded.out_of_scope, loaded.max_novelty) == ("oos", ml.max_novelty)
    assert loaded.data_sha256 == ml.data_sha256
    assert loaded.predict(["zebra quantum ukulele"])[0].label is None


# -- honest calibration ------------------------------------------------------------------------


async def test_calibrating_on_training_rows_uses_out_of_fold_answers() -> None:
    rows = sms()[:300]
    texts, truth = [t for t, _ in rows], [y for _, y in rows]
    ml = sms_ml()
    flow = cascade("spam", (ml, 0.9), (classify("llm", ["ham", "spam"]), 0.0))
    model = oracle(dict(rows), wrong=set(texts[::10]))  # 90 % right
    tier_answers = await answers(flow, texts, scripted_gateway(model))
    in_sample = sum(a.label == y for a, y in zip(tier_answers.answers[0], truth, strict=True))

    assert overlap(ml, texts) == len(texts)
    notes = honest(flow, texts, tier_answers)
    assert "trained on 300 of these 300 rows" in notes[0]
    out_of_fold = sum(a.label == y for a, y in zip(tier_answers.answers[0], truth, strict=True))
    assert out_of_fold < in_sample  # it looked better on rows it learned

    report = calibrate_on(tier_answers, truth, max_drop=0.01)
    llm_accuracy = sum(a.label == y for a, y in zip(tier_answers.answers[1], truth, strict=True))
    assert report.target == pytest.approx(
        sum(
            tier_answers.answers[1][i].label == truth[i]
            for i in range(len(truth))
            if i in set(_validation_rows(len(truth)))
        )
        / len(_validation_rows(len(truth)))
        - 0.01
    )
    assert 0.85 < llm_accuracy / len(truth) < 0.95
    low, high = report.test_interval
    assert low <= report.test_accuracy <= high and high - low < 0.2
    assert report.baseline[0].agreement is not None

    unknown = MLStep(ml.name, ml.model)  # a model file from elsewhere: training rows unknown
    flow2 = cascade("spam", (unknown, 0.9), (classify("llm", ["ham", "spam"]), 0.0))
    assert honest(flow2, texts, tier_answers)[0].startswith("WARNING")


def _validation_rows(n: int) -> list[int]:
    from llmflow.analysis.tuning import split

    return split(n, 0.5)[0]


def test_wilson_intervals() -> None:
    low, high = wilson(90, 100)
    assert (round(low, 3), round(high, 3)) == (0.826, 0.945)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == pytest.approx(1.0)


def test_calibrating_for_agreement_raises_a_threshold_where_answers_went_wrong() -> None:
    right = [Label(label="a", confidence=0.95)] * 50
    wrong = [Label(label="b", confidence=0.7)] * 10
    ok = [Label(label="a", confidence=0.6)] * 10
    ml = right + wrong + ok
    llm = [Label(label="a", confidence=1.0)] * 70
    truth = ["a"] * 70
    calibration = calibrate_agreement([ml, llm], truth, [0.95, None])
    assert calibration.thresholds[0] == 0.95  # answers at 0.7 are too often wrong
    assert calibrate_agreement([ml, llm], truth, [0.8, None]).thresholds[0] == 0.6
    assert calibrate_agreement([ml, llm], ["b"] * 70, [0.9, None]).thresholds[0] == NEVER


# -- speed: eval sends the LLM only what each variant needs -------------------------------------


async def test_answers_only_for_the_rows_a_variant_needs() -> None:
    rows = sms()[300:400]
    texts = [t for t, _ in rows]
    model = oracle(dict(rows))
    flow = cascade("spam", (sms_ml(), 0.9), (classify("llm", ["ham", "spam"]), 0.0))
    needed = needed_rows(["cascade"], ["ml", "llm"], [0.9, 0.0], len(texts))
    said = await answers(flow, texts, scripted_gateway(model), needed=needed)
    unsure = [i for i, a in enumerate(said.answers[0]) if a.confidence < 0.9]
    assert len(model.requests) == len(unsure) < len(texts)
    assert all(said.answers[1][i].label is not None for i in unsure)
    everything = needed_rows(["cascade", "llm-only"], ["ml", "llm"], [0.9, 0.0], len(texts))
    model = oracle(dict(rows))
    await answers(flow, texts, scripted_gateway(model), needed=everything)
    assert len(model.requests) == len(texts)


# -- audits and drift --------------------------------------------------------------------------


def spam_workflow() -> Workflow:
    """For the CLI: a cascade that audits 20 % of the ml tier's answers."""
    flow = cascade("spam", (sms_ml(), 0.8), (classify("llm", ["ham", "spam"]), 0.0), audit=0.2)
    return Workflow(name="spamwatch", step=tuned(flow, Settings().home, "spamwatch"))


async def _traffic(rows: list[tuple[str, str]], store: RunStore, model: ScriptedModel) -> Any:
    settings = Settings().model_copy(update={"model": "scripted"})
    gateway = scripted_gateway(model, settings=settings)
    items = [Item(key=f"{time.time_ns()}-{i}", value=t) for i, (t, _) in enumerate(rows)]
    return await run_batch(spam_workflow(), items, gateway=gateway, store=store)


async def test_a_workflow_files_cascade_records_its_decisions_and_audits(
    tmp_path: Path,
) -> None:
    """A workflow file's cascade is a chain's step: its decisions (audits included) reach the
    store, or `eval --live` and `calibrate --from-audits` see none of what the run paid for."""
    folder = _workflow_folder(tmp_path / "wf", sms()[:120])
    rows = sms()[300:400]
    store = RunStore(Settings().db_path)
    items = [Item(key=f"sms-{i}", value=t) for i, (t, _) in enumerate(rows)]
    batch = await run_batch(load_workflow(str(folder)), items,
                            gateway=scripted_gateway(oracle(dict(rows))), store=store)  # fmt: skip
    assert batch.status == "ok"
    decisions = store.cascade_decisions("spam", "spamcheck", model="scripted")
    assert len(decisions) == len(rows)
    assert any(r["audit_label"] is not None for r in decisions)  # audit: 0.1 in the file
    store.close()


def test_learning_from_a_workflow_files_history_is_refused_with_the_way_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workflow file's steps record the workflow's state, not the text a tier reads:
    `--retrain` would learn text the ml tier never reads and `distill` would find nothing it
    can use ("run more items" would be wrong advice). Both say so and what to do instead."""
    folder = str(_workflow_folder(tmp_path / "wf", sms()[:120]))
    for args in (["calibrate", folder, "spam", "--from-audits", "--retrain"],
                 ["distill", folder, "spam"]):  # fmt: skip
        assert main(args) == 2
        said = " ".join(capsys.readouterr().err.split())
        assert "not available for a workflow file's cascade ('spam')" in said
        assert "train: examples instead" in said


async def test_audits_are_recorded_drift_is_flagged_and_audits_recalibrate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = RunStore(Settings().db_path)
    calm = sms()[300:700]
    batch = await _traffic(calm, store, oracle(dict(calm)))
    assert batch.status == "ok"
    rows = store.cascade_decisions("spam", "spamwatch")
    assert len(rows) == len(calm)
    audited = [r for r in rows if r["audit_label"] is not None]
    ml_answered = [r for r in rows if r["tier"] == "ml"]
    assert 0.1 < len(audited) / len(ml_answered) < 0.3 and all(r["tier"] == "ml" for r in audited)
    assert json.loads(rows[0]["attempts"])[0]["tier"] == "ml"
    assert {r["model"] for r in rows} == {"scripted"}

    # The calibrated baseline, as `llmflow calibrate` stores it: the calm traffic matches it.
    flow = spam_workflow().step
    assert isinstance(flow, Cascade)
    tiers = ["ml", "llm"]
    _, _, weights, used = audit_answers(rows, tiers, 0.2)
    assert used == len(audited) and set(weights) <= {1.0, 5.0}
    expected = {
        "ml": {"share": len(ml_answered) / len(rows), "agreement": 0.97, "mean_confidence":
               sum(json.loads(r["attempts"])[0]["confidence"] for r in rows) / len(rows)},
        "llm": {"share": 1 - len(ml_answered) / len(rows), "agreement": 1.0},
    }  # fmt: skip
    calm_report = live(rows, tiers, "spam", expected)
    assert not calm_report.drifted, [t.drift for t in calm_report.tiers]
    assert calm_report.days and calm_report.days[0].items == len(rows)
    save_version(flow, Settings().home, "spamwatch",
                 meta={"baseline_by_model": {"scripted": expected}})  # fmt: skip
    assert main(["eval", "tests.test_cascade_production:spam_workflow", "--live",
                 "--model", "scripted"]) == 0  # fmt: skip
    capsys.readouterr()

    # Drift: the LLM now disagrees with half of what the ml tier says (new kinds of spam).
    drifted = sms()[700:1100]
    since = time.time()
    wrong = {t for i, (t, _) in enumerate(drifted) if i % 2 == 0}
    await _traffic(drifted, store, oracle(dict(drifted), wrong=wrong))
    recent = store.cascade_decisions("spam", "spamwatch", since=since)
    report = live(recent, tiers, "spam", expected)
    assert report.drifted
    assert any("audited agreement" in why for why in report.tiers[0].drift)

    code = main(["eval", "tests.test_cascade_production:spam_workflow", "--live", "--days",
                 "0.001", "--model", "scripted", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert json.loads(captured.out)["drifted"] is True
    code = main(["eval", "tests.test_cascade_production:spam_workflow", "--live", "--days",
                 "0.001", "--model", "scripted"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "DRIFT ml: audited agreement" in err and "--from-audits" in err

    # Recalibration from the audits: the ml tier must agree as it did, so it answers less.
    result = calibrate_from_audits(flow, recent, max_drop=0.02, expected=expected)
    assert result.audited >= 10
    assert result.calibration.thresholds[0] > 0.8 or result.calibration.thresholds[0] == NEVER
    code = main(["calibrate", "tests.test_cascade_production:spam_workflow", "spam",
                 "--from-audits", "--days", "0.001", "--model", "scripted", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["audited"] >= 10 and Path(out["version"]).is_dir()
    meta = json.loads((Path(out["version"]) / "meta.json").read_text())
    assert meta["thresholds_by_model"]["scripted"]["ml"] == out["tiers"][0]["threshold"]

    # --retrain: the ml tier learns the inputs the LLM labelled (read back from the run
    # store), and the version keeps the retrained model with the thresholds chosen for it.
    code = main(["calibrate", "tests.test_cascade_production:spam_workflow", "spam",
                 "--from-audits", "--retrain", "--days", "0.001", "--model", "scripted",
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert len(out["retrained"]) == 1 and "out-of-fold" in out["retrained"][0]
    stored = MLStep.load("ml", Path(out["version"]) / "model.skops")
    assert stored.training is not None
    learned = dict(zip(*stored.training, strict=True))
    escalated = [t for t, _ in drifted if t in learned and t not in dict(sms()[:300])]
    assert len(escalated) >= 20  # the traffic's inputs, with the LLM's labels
    assert all(learned[t] == ("spam" if dict(drifted)[t] == "ham" else "ham")
               for t in escalated if t in wrong)  # fmt: skip
    store.close()


async def test_live_checks_name_the_model_the_decisions_were_made_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Decisions made on another model than --model's (default local): said, with the --model
    to pass, not a silent "0 decisions"."""
    store = RunStore(Settings().db_path)
    rows = sms()[300:340]
    await _traffic(rows, store, oracle(dict(rows)))
    store.close()
    workflow = "tests.test_cascade_production:spam_workflow"
    hint = "but 40 on scripted: pass --model scripted"
    assert main(["eval", workflow, "--live"]) == 0
    said = " ".join(capsys.readouterr().err.split())  # as wrapped to the terminal
    assert f"no decisions of 'spam' recorded on local in the last 7 days, {hint}" in said
    assert main(["calibrate", workflow, "spam", "--from-audits"]) == 2
    assert hint in " ".join(capsys.readouterr().err.split())


def test_a_label_seen_once_is_refused_by_retraining_and_left_out_of_out_of_fold_copies() -> None:
    from llmflow.analysis.tier_answers import out_of_fold

    texts = [t for t, _ in sms()[300:305]]
    with pytest.raises(ConfigError, match=r"one example of 'eggs'.*needs a second item corrected"):
        retrain(sms_ml(), texts, ["eggs", "ham", "ham", "ham", "ham"])  # a correction's new label
    # Two examples of a label: each out-of-fold copy holds one out and is trained without it.
    rows = sms()[:60]
    rare = MLStep.train("ml", [*(t for t, _ in rows), "zzz one", "zzz two"],
                        [*(y for _, y in rows), "rare", "rare"])  # fmt: skip
    said = out_of_fold(rare, ["zzz one", "zzz two"])
    assert said is not None and all(s.label != "rare" for s in said)


def test_calibrate_refuses_unclear_targets(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["calibrate", "tests.test_cascade_production:spam_workflow", "spam"]
    assert main([*args, "--data", str(SMS), "--max-drop", "0.01", "--target-accuracy", "0.9"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(args) == 2
    assert "--data is needed" in capsys.readouterr().err
    assert main([*args, "--from-audits", "--model", "scripted"]) == 2
    assert "needs at least 10 audited answers" in capsys.readouterr().err
    assert main([*args, "--data", str(SMS), "--retrain"]) == 2
    assert "--retrain goes with --from-audits" in capsys.readouterr().err
    # An accuracy target is not what audits calibrate for: refused, not silently dropped.
    assert main([*args, "--from-audits", "--target-accuracy", "0.9"]) == 2
    assert "give --max-drop (default 0.02) instead of --target-accuracy" in capsys.readouterr().err


def _escalated(inputs: list[tuple[str, str]], ml: MLStep) -> list[dict[str, Any]]:
    """Recorded decisions of an ml → llm cascade on `inputs`, the LLM saying the label given
    with each: every fifth answered by the ml tier and audited, the rest sent on to the LLM."""
    said = ml.predict([t for t, _ in inputs])
    rows = []
    for i, ((_, label), s) in enumerate(zip(inputs, said, strict=True)):
        attempts = [{"tier": "ml", "label": s.label, "confidence": s.confidence}]
        audited = i % 5 == 0 and s.label is not None
        if not audited:
            attempts.append({"tier": "llm", "label": label, "confidence": 1.0})
        rows.append({"created_at": 1.7e9 + i, "tier": "ml" if audited else "llm",
                     "label": s.label if audited else label, "correction": None,
                     "audit_label": label if audited else None,
                     "attempts": json.dumps(attempts)})  # fmt: skip
    return rows


def test_recalibrating_with_retraining_learns_the_new_traffic_out_of_fold() -> None:
    ml = sms_ml()
    flow = cascade("spam", (ml, 0.8), (classify("llm", ["ham", "spam"]), 0.0), audit=0.2)
    expected = {"ml": {"agreement": 0.9}, "llm": {"agreement": 1.0}}
    # The traffic shifted: half of it carries a cue the ml tier never saw, and the LLM calls
    # those spam. As they are, the ml tier's answers agree too rarely: it answers nothing.
    ham = [t for t, y in sms()[300:] if y == "ham"][:160]
    shifted = [(f"zorblax {t}" if i % 2 else t, "spam" if i % 2 else "ham")
               for i, t in enumerate(ham)]  # fmt: skip
    rows = _escalated(shifted, ml)
    before = calibrate_from_audits(flow, rows, max_drop=0.0, expected=expected)
    assert before.calibration.thresholds[0] == NEVER and not before.retrained
    # Retrained on what the LLM said, the tier learns the cue: on its out-of-fold answers it
    # agrees again, and answers most items.
    inputs = [t for t, _ in shifted]
    after = calibrate_from_audits(flow, rows, max_drop=0.0, expected=expected, inputs=inputs)
    assert after.calibration.thresholds[0] != NEVER and after.calibration.shares[0] > 0.5
    new = after.retrained["ml"]
    assert new.training is not None and set(inputs) <= set(new.training[0])
    assert len(new.training[0]) == 300 + len(inputs)  # the old training rows are kept
    assert new.predict(["zorblax see you at lunch"])[0].label == "spam"
    # An input without one (None) is left out.
    partial = calibrate_from_audits(flow, rows, max_drop=0.0, expected=expected,
                                    inputs=[None, *inputs[1:]])  # fmt: skip
    assert partial.escalated + partial.audited == len(rows) - 1


def test_retraining_never_scores_the_tier_on_rows_it_learned() -> None:
    # Labels that cannot be learned: each input is unlike every other, its label a coin toss.
    # A tier scored on rows it learned would agree with them; out of fold it cannot. (Under
    # 200 training rows, so that words seen once are kept: they can be memorised.)
    rng = random.Random(4)
    noise = [(f"ticket {rng.getrandbits(64):x} {rng.getrandbits(64):x}",
              rng.choice(["ham", "spam"])) for _ in range(120)]  # fmt: skip
    ml = MLStep.train("ml", [t for t, _ in sms()[:60]], [y for _, y in sms()[:60]])
    flow = cascade("spam", (ml, 0.8), (classify("llm", ["ham", "spam"]), 0.0), audit=0.2)
    expected = {"ml": {"agreement": 0.9}, "llm": {"agreement": 1.0}}
    result = calibrate_from_audits(flow, _escalated(noise, ml), max_drop=0.0, expected=expected,
                                   inputs=[t for t, _ in noise])  # fmt: skip
    assert result.calibration.shares[0] < 0.1, result.calibration
    # In sample, the retrained tier would have looked right on most of them.
    new = result.retrained["ml"]
    in_sample = new.predict([t for t, _ in noise])
    assert sum(s.label == y for s, (_, y) in zip(in_sample, noise, strict=True)) > 0.9 * 120


def test_retraining_needs_the_training_rows() -> None:
    ml = sms_ml()
    unknown = MLStep("ml", ml.model)  # a model file from elsewhere: no training rows
    flow = cascade("spam", (unknown, 0.8), (classify("llm", ["ham", "spam"]), 0.0), audit=0.2)
    shifted = sms()[300:400]
    with pytest.raises(ConfigError, match="training rows are unknown"):
        calibrate_from_audits(flow, _escalated(shifted, ml), inputs=[t for t, _ in shifted])


def test_baseline_meta_and_tier_answers_shapes() -> None:
    said = TierAnswers(["ml", "llm"])
    assert said.cost == []
    from llmflow.analysis.calibration import baseline

    ml = [Label(label="a", confidence=0.9), Label(label=None, confidence=0.0)]
    llm = [Label(label="a", confidence=1.0), Label(label="b", confidence=1.0)]
    base = baseline([ml, llm], [0.5, 0.0])
    meta = baseline_meta(base, ["ml", "llm"])
    assert meta["ml"]["share"] == 0.5 and meta["ml"]["agreement"] == 1.0
    assert meta["ml"]["mean_confidence"] == pytest.approx(0.45)


def _decisions(
    n: int, ml_share: float, confidence: float, labels: list[str], seed: int, spread: float = 0.1
) -> list[dict[str, Any]]:
    """Recorded decisions of an ml → llm cascade, as `Store.cascade_decisions` gives them: the
    ml tier answers `ml_share` of the items (confidence about `confidence`), labels drawn from
    `labels` (repeat one to make it common)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(labels)
        mine = i < round(ml_share * n)
        said = confidence + (spread if i % 2 else -spread)  # mean `confidence`, sd `spread`
        attempts = [{"tier": "ml", "label": label, "confidence": said}]
        if not mine:
            attempts.append({"tier": "llm", "label": label, "confidence": 1.0})
        rows.append({"created_at": 1.7e9 + i, "attempts": json.dumps(attempts),
                     "tier": "ml" if mine else "llm", "label": label, "audit_label": None,
                     "correction": None})  # fmt: skip
    rng.shuffle(rows)
    return rows


def test_mean_confidence_is_compared_with_its_sample_noise() -> None:
    tiers = ["ml", "llm"]
    expected = {"ml": {"share": 0.5, "mean_confidence": 0.5}, "llm": {"share": 0.5}}
    # 100 items whose confidences scatter widely: a mean 0.06 off is within the noise.
    noisy = _decisions(100, 0.5, 0.56, ["a", "b"], seed=1, spread=0.35)
    report = live(noisy, tiers, "spam", expected)
    assert abs(report.tiers[0].mean_confidence - 0.5) > 0.05  # type: ignore[operator]
    assert not report.drifted, report.tiers[0].drift
    # 2,000 items, tightly 0.62: the interval is wholly outside 0.5 ± 0.05.
    moved = _decisions(2000, 0.5, 0.62, ["a", "b"], seed=2, spread=0.05)
    drift = live(moved, tiers, "spam", expected).tiers[0].drift
    assert any("mean confidence" in why for why in drift), drift


def test_a_reference_window_replaces_the_calibrated_share_and_confidence() -> None:
    tiers = ["ml", "llm"]
    labels = [f"intent{i}" for i in range(100)]
    # Calibrated on out-of-fold copies: 65 % answered at confidence 0.28. The deployed tier,
    # trained on every row, answers 75 % at 0.35 on traffic like the calibration rows.
    calibrated = {"ml": {"share": 0.65, "mean_confidence": 0.28, "agreement": 0.8},
                  "llm": {"share": 0.35, "agreement": 1.0}}  # fmt: skip
    reference = _decisions(150, 0.75, 0.35, labels, seed=3)
    calm = _decisions(200, 0.75, 0.35, labels, seed=4)
    against_calibration = live(calm, tiers, "intent", calibrated)
    assert against_calibration.drifted  # the false alarm the reference window avoids
    report = live(calm, tiers, "intent", calibrated, reference=reference)
    assert not report.drifted, ([t.drift for t in report.tiers], report.label_drift)
    assert report.tiers[0].expected_share == pytest.approx(112 / 150)  # round(0.75 * 150)
    assert report.tiers[0].reference_items == 150 and report.reference_items == 150
    # The ml tier answering far less than in the reference window is drift.
    fewer = _decisions(200, 0.45, 0.35, labels, seed=5)
    drift = live(fewer, tiers, "intent", calibrated, reference=reference).tiers[0].drift
    assert any("reference window" in why for why in drift), drift


def test_a_label_given_far_more_often_than_in_the_reference_window_is_drift() -> None:
    tiers = ["ml", "llm"]
    labels = [f"intent{i}" for i in range(120)]
    reference = _decisions(150, 0.7, 0.4, labels + ["oos"] * 3, seed=6)  # oos ~2.4 %
    calm = _decisions(200, 0.7, 0.4, labels + ["oos"] * 3, seed=7)
    assert not live(calm, tiers, "intent", reference=reference).label_drift
    shifted = _decisions(200, 0.7, 0.4, labels + ["oos"] * 30, seed=8)  # oos ~20 %
    report = live(shifted, tiers, "intent", reference=reference)
    assert report.drifted and report.baseline
    assert len(report.label_drift) == 1 and "'oos'" in report.label_drift[0]
    assert [t.drift for t in report.tiers] == [[], []]
    tested = {label.label: label for label in report.labels}
    assert tested["oos"].difference_interval[0] > 0.02


async def test_eval_live_compares_with_a_reference_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow = spam_workflow().step
    assert isinstance(flow, Cascade)
    # Calibrated on weaker out-of-fold copies: the deployed ml tier answers far more.
    expected = {"ml": {"share": 0.05, "agreement": 0.5, "mean_confidence": 0.3},
                "llm": {"share": 0.95, "agreement": 1.0}}  # fmt: skip
    save_version(flow, Settings().home, "spamwatch",
                 meta={"baseline_by_model": {"scripted": expected}})  # fmt: skip
    store = RunStore(Settings().db_path)
    calm = sms()[300:700]
    await _traffic(calm, store, oracle(dict(calm)))
    store.close()
    workflow = "tests.test_cascade_production:spam_workflow"
    assert main(["eval", workflow, "--live", "--model", "scripted"]) == 1
    assert "calibrated 5.0% ± 5%" in capsys.readouterr().err
    code = main(["eval", workflow, "--live", "--model", "scripted", "--reference", "150",
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["reference_items"] == 150 and out["items"] == len(calm) - 150
    assert out["drifted"] is False and out["label_drift"] == []
    assert {label["label"] for label in out["labels"]} == {"spam", "ham"}
    code = main(["eval", workflow, "--live", "--model", "scripted", "--reference", "150"])
    assert code == 0 and "the first 150 decisions" in capsys.readouterr().err


def test_a_few_unlucky_audits_are_not_drift_a_real_fall_is() -> None:
    tiers = ["ml", "llm"]
    expected = {"ml": {"agreement": 0.807}, "llm": {"agreement": 1.0}}

    def audited(agreeing: int, of: int) -> list[dict[str, Any]]:
        rows = _decisions(200, 1.0, 0.5, ["a", "b"], seed=9)
        for i, row in enumerate(rows[:of]):
            row["audit_label"] = row["label"] if i < agreeing else "other"
        return rows

    # 6 of 12 audits agreeing, on traffic whose ml tier agrees 78 % of the time, happens: at
    # 95 % and no tolerance it was drift, checked again and again it would be flagged often.
    calm = live(audited(6, 12), tiers, "intent", expected)
    assert calm.tiers[0].agreement == 0.5 and not calm.drifted, calm.tiers[0].drift
    assert live(audited(6, 12), tiers, "intent", expected, level=0.95,
                agreement_tolerance=0.0).drifted  # fmt: skip
    fallen = live(audited(4, 20), tiers, "intent", expected).tiers[0].drift
    assert len(fallen) == 1 and "audited agreement 4/20" in fallen[0], fallen
