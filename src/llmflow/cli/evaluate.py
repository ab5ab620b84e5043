"""`llmflow eval`: accuracy, macro-F1, cost, latency and share per tier of each variant of a
cascade on labelled data, and a plot; `--live` compares recorded runs with the calibration;
`--step <llm step>` scores a language step on gold data (`evaluate_language`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import LLMFlowError
from ..models.pricing import format_cost
from .app import EXIT_FAILED, EXIT_OK, err, fail, out, usd, writable_folder
from .cascade_inputs import (
    BaseUrl,
    Json,
    Model,
    find_workflow_cascade,
    labelled_answers,
    other_models,
    settings_for,
)
from .evaluate_language import evaluate_language, language_step


def evaluate(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help='Labelled JSONL: {"text": ..., "label": ...} per line; for a language step, '
            '{"input": ..., "gold": {field: value}}.',
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="The cascade (needed if there are several), or a language step to score on "
            "gold data: per-field accuracy, grounded rate, output checks.",
        ),
    ] = None,
    variants: Annotated[
        str, typer.Option(help="Comma-separated: <tier>-only for each tier, and cascade.")
    ] = "",
    plot_to: Annotated[
        Path | None, typer.Option("--plot", help="Write a cost-versus-accuracy PNG here.")
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Watch production instead: the run store's decisions against calibration; "
            "exits 1 on drift.",
        ),
    ] = False,
    days: Annotated[float, typer.Option(min=0, help="With --live: the last N days.")] = 7.0,
    share_tolerance: Annotated[
        float, typer.Option(min=0, max=1, help="With --live: how far a tier's share may move.")
    ] = 0.05,
    confidence_tolerance: Annotated[
        float, typer.Option(min=0, max=1, help="With --live: how far mean confidence may move.")
    ] = 0.05,
    agreement_tolerance: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="With --live: how far the audited agreement may fall below calibration's.",
        ),
    ] = 0.05,
    reference: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --live: the first N decisions after the newest calibration was stored "
            "are the reference for each tier's share and confidence and each label's share "
            "(the deployed tier is not its out-of-fold copies); 0: calibration's figures.",
        ),
    ] = 0,
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Accuracy, macro-F1, cost, latency and share per tier of each variant (`--live`: how
    the cascade does in production, and whether it drifted; `--step` naming a language step:
    its per-field accuracy, grounded rate and output checks on gold data)."""
    from ..analysis.evaluation import check_variants, needed_rows, plot, score, variant_names

    if live:
        if data is not None:
            raise fail("--live reads the run store: leave out --data")
        tolerances = (share_tolerance, confidence_tolerance, agreement_tolerance)
        return _live(workflow, step, days, tolerances, reference, model, as_json)
    if data is None:
        raise fail("--data is needed (labelled JSONL), or --live")
    wf = language_step(workflow, step)
    if wf is not None and step is not None:
        if variants or plot_to is not None:
            raise fail(f"--variants and --plot compare a cascade's tiers: {step!r} is not one")
        return evaluate_language(wf, step, data, model, base_url, as_json)
    try:
        settings = settings_for(model, base_url)
        name, cascade = find_workflow_cascade(workflow, step)
        tiers = [s.name for s, _ in cascade.tiers]
        chosen = check_variants(
            [v.strip() for v in variants.split(",") if v.strip()] or variant_names(tiers), tiers
        )  # before any model call
        if plot_to is not None:
            writable_folder(plot_to.parent, "choose another path for --plot")
        thresholds = cascade.by_model.get(settings.model, [t for _, t in cascade.tiers])
        from ..steps.ml import read_labelled

        rows = len(read_labelled(data)[0])
        tier_answers, _, truth = labelled_answers(
            cascade, data, settings, needed_rows(chosen, tiers, thresholds, rows)
        )
        scores = score(tier_answers, truth, thresholds, chosen)
        if plot_to is not None:
            plot(scores, plot_to, f"{name} / {cascade.name} on {data.name}")
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workflow": name,
                    "step": cascade.name,
                    "rows": len(truth),
                    "variants": [
                        {
                            **{k: v for k, v in asdict(s).items() if k != "usd"},
                            "cost_usd": usd(s.usd),
                            "cost_usd_per_1000": usd(s.usd_per_1000),
                        }
                        for s in scores
                    ],
                    "plot": str(plot_to) if plot_to else None,
                }
            )
        )
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, title=f"{name} / {cascade.name} on {len(truth)} rows")
    for column in ("variant", "accuracy", "macro-F1", "cost/1k items", "s/item", "share per tier"):
        table.add_column(
            column, justify="left" if column in ("variant", "share per tier") else "right"
        )
    for s in scores:
        shares = " ".join(f"{t} {v:.0%}" for t, v in s.shares.items() if v)
        table.add_row(
            s.name,
            f"{s.accuracy:.3f}",
            f"{s.macro_f1:.3f}",
            format_cost(s.usd_per_1000),
            f"{s.seconds_per_item:.3f}",
            shares,
        )
    out.print(table)
    if plot_to is not None:
        err.print(f"plot: {plot_to}")
    return EXIT_OK


def _live(
    workflow: str,
    step: str | None,
    days: float,
    tolerances: tuple[float, float, float],
    reference: int,
    model: str | None,
    as_json: bool,
) -> int:
    """`eval --live`: per tier, the live share, confidence and audited agreement against the
    newest calibration's baseline (share and confidence against the reference window, with
    `reference`); exit 1 when one drifted."""
    import time

    from ..analysis.monitoring import live
    from ..analysis.tuning import stored_baselines
    from ..store.classifiers import ClassifierVersions
    from ..store.sqlite import RunStore

    try:
        settings = settings_for(model, None)
        name, cascade = find_workflow_cascade(workflow, step)
        store = RunStore(settings.db_path)
        window: list[Any] | None = None
        try:
            rows = store.cascade_decisions(
                cascade.name, name, since=time.time() - days * 86400, model=settings.model
            )
            if reference:
                latest = ClassifierVersions(settings.home, name, cascade.name).latest()
                deployed = (
                    float(ClassifierVersions.read_meta(latest).get("created_at", 0.0))
                    if latest is not None
                    else 0.0
                )
                window = list(
                    store.cascade_decisions(
                        cascade.name, name, since=deployed, model=settings.model
                    )[:reference]
                )
            found = "" if rows else other_models(store, cascade.name, name, days, settings.model)
        finally:
            store.close()
        if window is not None:
            taken = {tuple(r) for r in window}
            rows = [r for r in rows if tuple(r) not in taken]
        tiers = [s.name for s, _ in cascade.tiers]
        expected = stored_baselines(settings.home, name, cascade.name).get(settings.model)
        share_tolerance, confidence_tolerance, agreement_tolerance = tolerances
        report = live(rows, tiers, cascade.name, expected, reference=window,
                      share_tolerance=share_tolerance, confidence_tolerance=confidence_tolerance,
                      agreement_tolerance=agreement_tolerance)  # fmt: skip
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workflow": name,
                    "step": cascade.name,
                    "model": settings.model,
                    "items": report.items,
                    "baseline": report.baseline,
                    "drifted": report.drifted,
                    "reference_items": report.reference_items,
                    "tiers": [{**asdict(t), "agreement": t.agreement} for t in report.tiers],
                    "labels": [asdict(label) for label in report.labels],
                    "label_drift": report.label_drift,
                    "days": [asdict(d) for d in report.days],
                }
            )
        )
        return EXIT_FAILED if report.drifted else EXIT_OK
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"{name} / {cascade.name} live: {report.items} decisions, last {days:g} days",
    )
    for column in ("tier", "share", "calibrated", "confidence", "calibrated", "audited",
                   f"agreement ({report.level:.0%})", "calibrated"):  # fmt: skip
        table.add_column(column, justify="left" if column == "tier" else "right")

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    for t in report.tiers:
        table.add_row(
            t.tier,
            pct(t.share),
            pct(t.expected_share),
            "–" if t.mean_confidence is None else f"{t.mean_confidence:.3f}",
            "–" if t.expected_confidence is None else f"{t.expected_confidence:.3f}",
            str(t.audited),
            "–" if t.agreement is None
            else f"{t.agreement:.1%} ({t.agreement_interval[0]:.0%}–{t.agreement_interval[1]:.0%})",
            pct(t.expected_agreement),
        )  # fmt: skip
    out.print(table)
    if window is not None:
        err.print(
            f"share and confidence against the reference window: the first {len(window)} "
            f"decisions after the newest calibration (asked for {reference})"
        )
    if found:
        err.print(found, style="bold yellow")
    if not cascade.audit:
        err.print(
            f"cascade {cascade.name!r} audits nothing (audit: 0): whether its cheap tiers' "
            "answers are right cannot be told; set `audit:` (e.g. 0.05) to check some"
        )
    if not report.baseline:
        err.print(
            f"no calibrated baseline for {settings.model}: run `llmflow calibrate {workflow} "
            f"{cascade.name} --data …` so that drift can be told"
        )
    for t in report.tiers:
        for why in t.drift:
            err.print(f"DRIFT {t.tier}: {why}", style="bold red")
    for why in report.label_drift:
        err.print(f"DRIFT {why}", style="bold red")
    if report.drifted:
        err.print(
            f"recalibrate: llmflow calibrate {workflow} {cascade.name} --from-audits "
            "(or with --data on fresh labelled rows)"
        )
        return EXIT_FAILED
    return EXIT_OK
