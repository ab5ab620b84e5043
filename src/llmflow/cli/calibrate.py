"""`llmflow calibrate`: a cascade's thresholds per tier from labelled data (or from audits of
its recorded decisions), to reach a target accuracy at least cost."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import ConfigError, LLMFlowError
from ..models.pricing import format_cost
from .app import EXIT_OK, err, fail, out, usd
from .cascade_inputs import (
    BaseUrl,
    Json,
    Model,
    find_workflow_cascade,
    labelled_answers,
    other_models,
    refuse_file_history,
    settings_for,
)

if TYPE_CHECKING:
    from ..patterns.cascade import Cascade
    from ..settings import Settings
    from ..steps.ml import MLStep


def _interval(low_high: tuple[float, float]) -> str:
    return f"{low_high[0]:.3f}–{low_high[1]:.3f}"


def calibrate(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    step: Annotated[str, typer.Argument(help="The cascade step to calibrate.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help='Labelled JSONL: {"text": ..., "label": ...} per line.'),
    ] = None,
    target_accuracy: Annotated[
        float | None,
        typer.Option("--target-accuracy", min=0, max=1, help="Accuracy to reach (default 0.95)."),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop",
            min=0,
            max=1,
            help="Instead: at most this far below the last tier's measured accuracy (with "
            "--from-audits: each cheap tier's agreement with the last tier at most this far "
            "below the calibrated one; default 0.02).",
        ),
    ] = None,
    validation_share: Annotated[
        float,
        typer.Option(min=0.1, max=0.9, help="Rows that choose thresholds; the rest check them."),
    ] = 0.5,
    from_audits: Annotated[
        bool,
        typer.Option(
            "--from-audits",
            help="Calibrate from the run store's live decisions and audits (no --data).",
        ),
    ] = False,
    days: Annotated[
        float, typer.Option(min=0, help="With --from-audits: decisions of the last N days.")
    ] = 7.0,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="With --from-audits: first retrain the ml tier on its training rows and the "
            "inputs the last tier (or a person) labelled, then choose thresholds on its "
            "out-of-fold answers; the new model is stored with them.",
        ),
    ] = False,
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Choose per-tier thresholds that reach a target accuracy at the lowest cost.

    An ml tier trained on some of the rows is calibrated on its out-of-fold answers (copies
    trained without each fifth of the rows): its answers on rows it learned would make it
    look better than it is."""
    from ..analysis.tuning import calibrate_on, honest

    if target_accuracy is not None and max_drop is not None:
        raise fail("give --target-accuracy or --max-drop, not both")
    if retrain and not from_audits:
        raise fail("--retrain goes with --from-audits")
    if from_audits and target_accuracy is not None:
        raise fail(
            "--from-audits aims at each cheap tier's agreement with the last tier, not an "
            "accuracy: give --max-drop (default 0.02) instead of --target-accuracy"
        )
    if from_audits:
        return _calibrate_from_audits(
            workflow, step, max_drop, days, model, base_url, as_json, data, retrain
        )
    if data is None:
        raise fail("--data is needed (labelled JSONL), or --from-audits")
    if target_accuracy is None and max_drop is None:
        target_accuracy = 0.95
    try:
        settings = settings_for(model, base_url)
        name, cascade = find_workflow_cascade(workflow, step)
        tier_answers, texts, truth = labelled_answers(cascade, data, settings)
        notes = honest(cascade, texts, tier_answers)
        for note in notes:
            err.print(note, style="bold yellow" if note.startswith("WARNING") else None)
        model_name = settings.model
        report = calibrate_on(
            tier_answers,
            truth,
            target_accuracy,
            validation_share,
            current=cascade.by_model.get(model_name, [t for _, t in cascade.tiers]),
            max_drop=max_drop,
        )
        thresholds = report.calibration.thresholds
        report.version = _save(
            cascade, settings, name, model_name, thresholds, report.baseline,
            {
                "source": f"calibrated on {data}",
                "target_accuracy": report.target,
                "max_drop": max_drop,
                "validation_accuracy": report.calibration.accuracy,
                "held_out_accuracy": report.test_accuracy,
                "rows": len(truth),
                "honest": notes,
            },
        )  # fmt: skip
    except LLMFlowError as e:
        raise fail(str(e)) from None
    tiers = tier_answers.tiers
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workflow": name,
                    "step": cascade.name,
                    "tiers": [
                        {
                            "tier": tier,
                            "threshold": thresholds[i],
                            "accuracy_alone": report.tier_accuracy[i],
                            "accuracy_alone_interval": report.tier_intervals[i],
                            "share_validation": report.calibration.shares[i],
                            "share_held_out": report.test_shares[i],
                            "agreement_with_last": report.baseline[i].agreement,
                            "cost_usd_per_item": usd(report.cost_per_item[i]),
                        }
                        for i, tier in enumerate(tiers)
                    ],
                    "target_accuracy": report.target,
                    "validation_accuracy": report.calibration.accuracy,
                    "validation_interval": report.validation_interval,
                    "held_out_accuracy": report.test_accuracy,
                    "held_out_interval": report.test_interval,
                    "honest": notes,
                    "version": str(report.version),
                }
            )
        )
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, title=f"{name} / {cascade.name}")
    for column in ("tier", "alone (95 %)", "threshold", "share (val)", "share (held-out)",
                   "cost/item"):  # fmt: skip
        table.add_column(column, justify="left" if column == "tier" else "right")
    for i, tier in enumerate(tiers):
        table.add_row(
            tier,
            f"{report.tier_accuracy[i]:.3f} ({_interval(report.tier_intervals[i])})",
            "never" if thresholds[i] == float("inf") else f"{thresholds[i]:.3f}",
            f"{report.calibration.shares[i]:.0%}",
            f"{report.test_shares[i]:.0%}",
            format_cost(report.cost_per_item[i]),
        )
    out.print(table)
    reached = "reached" if report.calibration.accuracy >= report.target else "NOT reached"
    out.print(
        f"target {report.target:.3f} {reached} on {report.validation} validation rows "
        f"({report.calibration.accuracy:.3f}, 95 % {_interval(report.validation_interval)}); "
        f"{report.test_accuracy:.3f} (95 % {_interval(report.test_interval)}) on "
        f"{report.test} held-out rows. Saved as {report.version}, used when the LLM "
        f"tier runs on {model_name}"
    )
    return EXIT_OK


def _calibrate_from_audits(
    workflow: str,
    step: str,
    max_drop: float | None,
    days: float,
    model: str | None,
    base_url: str | None,
    as_json: bool,
    data: Path | None,
    retrain: bool = False,
) -> int:
    import time

    from ..analysis.tuning import calibrate_from_audits, decision_inputs, stored_baselines
    from ..store.sqlite import RunStore

    if data is not None:
        raise fail("--from-audits reads the run store: leave out --data")
    try:
        settings = settings_for(model, base_url)
        name, cascade = find_workflow_cascade(workflow, step)
        if retrain:
            refuse_file_history(cascade, "--retrain")
        model_name = settings.model
        store = RunStore(settings.db_path)
        try:
            rows = store.cascade_decisions(
                cascade.name, name, since=time.time() - days * 86400, model=model_name
            )
            if not rows and (found := other_models(store, cascade.name, name, days, model_name)):
                raise ConfigError(found)
            inputs = decision_inputs(store, rows, cascade) if retrain else None
        finally:
            store.close()
        result = calibrate_from_audits(
            cascade,
            rows,
            max_drop=0.02 if max_drop is None else max_drop,
            current=cascade.by_model.get(model_name, [t for _, t in cascade.tiers]),
            expected=stored_baselines(settings.home, name, cascade.name).get(model_name),
            inputs=inputs,
        )
        for note in result.notes:
            err.print(note)
        names = [s.name for s, _ in cascade.tiers]
        thresholds = result.calibration.thresholds
        result.version = _save(
            cascade, settings, name, model_name, thresholds, result.baseline,
            {
                "source": f"calibrated from {len(rows)} live decisions ({result.audited} audited)"
                + (", the ml tier retrained on them" if result.retrained else ""),
                "target_agreement": result.target,
                "agreement": result.calibration.accuracy,
                "retrained": result.notes,
            },
            ml=next(iter(result.retrained.values()), None),
        )  # fmt: skip
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workflow": name,
                    "step": cascade.name,
                    "decisions": len(rows),
                    "escalated": result.escalated,
                    "audited": result.audited,
                    "target_agreement": result.target,
                    "agreement": result.calibration.accuracy,
                    "agreement_interval": result.interval,
                    "tiers": [
                        {
                            "tier": t,
                            "threshold": thresholds[i],
                            "share": result.calibration.shares[i],
                        }
                        for i, t in enumerate(names)
                    ],
                    "retrained": result.notes,
                    "version": str(result.version),
                }
            )
        )
        return EXIT_OK
    shown = ", ".join(
        f"{t} {'never' if x == float('inf') else f'{x:.3f}'} ({result.calibration.shares[i]:.0%})"
        for i, (t, x) in enumerate(zip(names, thresholds, strict=True))
    )
    out.print(
        f"from {len(rows)} decisions ({result.escalated} escalated, {result.audited} audited): "
        f"thresholds {shown}; agreement with {names[-1]} {result.calibration.accuracy:.3f} "
        f"(target {result.target:.3f}). Saved as {result.version}, used when the LLM tier "
        f"runs on {model_name}"
    )
    return EXIT_OK


def _save(
    cascade: Cascade,
    settings: Settings,
    workflow: str,
    model_name: str,
    thresholds: Sequence[float],
    baseline: Any,
    meta: dict[str, Any],
    ml: MLStep | None = None,
) -> Path:
    """Store a classifier version with `thresholds` for `model_name` next to the thresholds
    and baselines stored for other models, and how they were chosen (`meta`), with `ml` as
    its ml tier when given (else the cascade's)."""
    from ..analysis.tuning import baseline_meta, save_version, stored_baselines, stored_by_model

    names = [s.name for s, _ in cascade.tiers]
    home, step = settings.home, cascade.name
    return save_version(
        cascade,
        home,
        workflow,
        ml=ml,
        by_model={
            **stored_by_model(home, workflow, step),
            model_name: dict(zip(names, thresholds, strict=True)),
        },
        meta={
            "model": model_name,
            **meta,
            "baseline_by_model": {
                **stored_baselines(home, workflow, step),
                model_name: baseline_meta(baseline, names),
            },
        },
    )
