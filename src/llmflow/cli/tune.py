"""`llmflow calibrate | distill | eval | correct`: tuning a workflow's classifier cascades.

calibrate  thresholds per tier from labelled data, to reach a target accuracy at least cost
distill    the ml tier retrained from the LLM's recorded decisions (and people's corrections)
eval       accuracy, macro-F1, cost, latency and share per tier of each variant, and a plot
correct    record the right label of a decision, for the next distillation

Each writes a new classifier version in the state directory, which the workflow uses the
next time it is built.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import ConfigError, LLMFlowError
from ..models.pricing import format_cost
from .app import EXIT_FAILED, EXIT_OK, endpoint, err, fail, out, usd, writable_folder

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    from collections.abc import Callable, Iterable

    from ..analysis.tuning import TierAnswers
    from ..patterns.cascade import Cascade
    from ..settings import Settings
    from ..steps.label import Label

Model = Annotated[
    str | None, typer.Option("--model", "-m", help="The model for LLM tiers (default: local).")
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        callback=endpoint,
        help="An OpenAI-compatible endpoint for --model, e.g. http://localhost:8000/v1.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("distill")(distill_command)
    app.command("eval")(evaluate)
    app.command("correct")(correct)


def _settings(model: str | None, base_url: str | None) -> Settings:
    from ..settings import Settings

    overrides: dict[str, Any] = {}
    if model:
        overrides["model"] = model
    if base_url:
        overrides["base_url"] = base_url
    return Settings().model_copy(update=overrides)


def _cascade(workflow: str, step: str | None) -> tuple[str, Cascade]:
    from ..analysis.tuning import cascades, find_cascade
    from ..workflows import load_workflow

    wf = load_workflow(workflow)
    if step is None:
        found = cascades(wf.step)
        if len(found) != 1:
            names = ", ".join(c.name for c in found) or "none"
            raise ConfigError(f"name the cascade to evaluate with --step (cascades: {names})")
        return wf.name, found[0]
    return wf.name, find_cascade(wf.step, step)


def _answers(
    cascade: Cascade,
    data: Path,
    settings: Settings,
    needed: Callable[[int, list[list[Label]]], Iterable[int]] | None = None,
) -> tuple[TierAnswers, list[str], list[str]]:
    """Every tier's answer on the labelled rows of `data` (those `needed`), the texts and
    the labels."""
    import asyncio

    from ..analysis.tuning import answers
    from ..models.cache import ResponseCache
    from ..models.gateway import Gateway
    from ..steps.ml import read_labelled
    from ..store.sqlite import RunStore

    texts, truth = read_labelled(data)
    gateway = Gateway(settings)
    gateway.resolve()  # a missing key fails before any work
    store = RunStore(settings.db_path)
    gateway.cache = ResponseCache(store)  # a second calibration does not pay again
    err.print(f"running {len(cascade.tiers)} tiers on {len(texts)} rows of {data} …")

    async def all_tiers() -> TierAnswers:
        try:
            return await answers(cascade, texts, gateway, needed=needed)
        finally:
            await gateway.aclose()

    try:
        return asyncio.run(all_tiers()), texts, truth
    finally:
        store.close()


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
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Choose per-tier thresholds that reach a target accuracy at the lowest cost.

    An ml tier trained on some of the rows is calibrated on its out-of-fold answers (copies
    trained without each fifth of the rows): its answers on rows it learned would make it
    look better than it is."""
    from ..analysis.tuning import (
        baseline_meta,
        calibrate_on,
        honest,
        save_version,
        stored_baselines,
        stored_by_model,
    )

    if target_accuracy is not None and max_drop is not None:
        raise fail("give --target-accuracy or --max-drop, not both")
    if from_audits:
        return _calibrate_from_audits(
            workflow, step, max_drop, days, model, base_url, as_json, data
        )
    if data is None:
        raise fail("--data is needed (labelled JSONL), or --from-audits")
    if target_accuracy is None and max_drop is None:
        target_accuracy = 0.95
    try:
        settings = _settings(model, base_url)
        name, cascade = _cascade(workflow, step)
        tier_answers, texts, truth = _answers(cascade, data, settings)
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
        names = [s.name for s, _ in cascade.tiers]
        report.version = save_version(
            cascade,
            settings.home,
            name,
            by_model={
                **stored_by_model(settings.home, name, cascade.name),
                model_name: dict(zip(names, thresholds, strict=True)),
            },
            meta={
                "model": model_name,
                "source": f"calibrated on {data}",
                "target_accuracy": report.target,
                "max_drop": max_drop,
                "validation_accuracy": report.calibration.accuracy,
                "held_out_accuracy": report.test_accuracy,
                "rows": len(truth),
                "honest": notes,
                "baseline_by_model": {
                    **stored_baselines(settings.home, name, cascade.name),
                    model_name: baseline_meta(report.baseline, names),
                },
            },
        )
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
) -> int:
    import time

    from ..analysis.tuning import (
        baseline_meta,
        calibrate_from_audits,
        save_version,
        stored_baselines,
        stored_by_model,
    )
    from ..store.sqlite import RunStore

    if data is not None:
        raise fail("--from-audits reads the run store: leave out --data")
    try:
        settings = _settings(model, base_url)
        name, cascade = _cascade(workflow, step)
        model_name = settings.model
        store = RunStore(settings.db_path)
        try:
            rows = store.cascade_decisions(
                cascade.name, name, since=time.time() - days * 86400, model=model_name
            )
        finally:
            store.close()
        result = calibrate_from_audits(
            cascade,
            rows,
            max_drop=0.02 if max_drop is None else max_drop,
            current=cascade.by_model.get(model_name, [t for _, t in cascade.tiers]),
            expected=stored_baselines(settings.home, name, cascade.name).get(model_name),
        )
        names = [s.name for s, _ in cascade.tiers]
        thresholds = result.calibration.thresholds
        result.version = save_version(
            cascade,
            settings.home,
            name,
            by_model={
                **stored_by_model(settings.home, name, cascade.name),
                model_name: dict(zip(names, thresholds, strict=True)),
            },
            meta={
                "model": model_name,
                "source": f"calibrated from {len(rows)} live decisions ({result.audited} audited)",
                "target_agreement": result.target,
                "agreement": result.calibration.accuracy,
                "baseline_by_model": {
                    **stored_baselines(settings.home, name, cascade.name),
                    model_name: baseline_meta(result.baseline, names),
                },
            },
        )
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


def distill_command(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    step: Annotated[str, typer.Argument(help="The cascade whose ml tier learns from history.")],
    target_agreement: Annotated[
        float, typer.Option(min=0, max=1, help="Agreement with the LLM the ml tier must keep.")
    ] = 0.97,
    min_examples: Annotated[int, typer.Option(min=2, help="Fewest decisions to learn from.")] = 20,
    as_json: Json = False,
) -> int:
    """Train the ml tier from the LLM's recorded decisions (corrections take precedence)."""
    from ..analysis.tuning import distill
    from ..settings import Settings
    from ..store.sqlite import RunStore

    try:
        settings = Settings()
        name, cascade = _cascade(workflow, step)
        store = RunStore(settings.db_path)
        try:
            result = distill(
                cascade,
                store,
                workflow=name,
                home=settings.home,
                target_agreement=target_agreement,
                min_examples=min_examples,
            )
        finally:
            store.close()
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        data = asdict(result)
        del data["llm_cost_per_item"]
        data.update(
            llm_cost_usd_per_item=usd(result.llm_cost_per_item),
            saving_usd_per_1000=usd(result.saving_per_1000),
            version=str(result.version),
        )
        out.print_json(json.dumps(data))
        return EXIT_OK
    out.print(
        f"learned from {result.examples} decisions ({result.corrections} corrected by people).\n"
        f"On held-out decisions the ml tier answers {result.share:.0%} of items at "
        f"confidence ≥ {result.threshold:.3f}, agreeing with the LLM on {result.agreement:.1%} "
        f"of them; the filter agrees with the LLM alone on {result.filter_agreement:.1%}.\n"
        f"Expected saving: {format_cost(result.saving_per_1000)} per 1,000 items "
        f"(an LLM decision cost {format_cost(result.llm_cost_per_item)}).\n"
        f"Saved as {result.version}; the next run of {name} uses it."
    )
    return EXIT_OK


def evaluate(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help='Labelled JSONL: {"text": ..., "label": ...} per line.'),
    ] = None,
    step: Annotated[
        str | None, typer.Option("--step", help="The cascade (needed if there are several).")
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
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Accuracy, macro-F1, cost, latency and share per tier of each variant (`--live`: how
    the cascade does in production, and whether it drifted)."""
    from ..analysis.evaluation import check_variants, needed_rows, plot, score, variant_names

    if live:
        if data is not None:
            raise fail("--live reads the run store: leave out --data")
        return _live(workflow, step, days, share_tolerance, confidence_tolerance, model, as_json)
    if data is None:
        raise fail("--data is needed (labelled JSONL), or --live")
    try:
        settings = _settings(model, base_url)
        name, cascade = _cascade(workflow, step)
        tiers = [s.name for s, _ in cascade.tiers]
        chosen = check_variants(
            [v.strip() for v in variants.split(",") if v.strip()] or variant_names(tiers), tiers
        )  # before any model call
        if plot_to is not None:
            writable_folder(plot_to.parent, "choose another path for --plot")
        thresholds = cascade.by_model.get(settings.model, [t for _, t in cascade.tiers])
        from ..steps.ml import read_labelled

        rows = len(read_labelled(data)[0])
        tier_answers, _, truth = _answers(
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
    share_tolerance: float,
    confidence_tolerance: float,
    model: str | None,
    as_json: bool,
) -> int:
    """`eval --live`: per tier, the live share, confidence and audited agreement against the
    newest calibration's baseline; exit 1 when one drifted."""
    import time

    from ..analysis.monitoring import live
    from ..analysis.tuning import stored_baselines
    from ..store.sqlite import RunStore

    try:
        settings = _settings(model, None)
        name, cascade = _cascade(workflow, step)
        store = RunStore(settings.db_path)
        try:
            rows = store.cascade_decisions(
                cascade.name, name, since=time.time() - days * 86400, model=settings.model
            )
        finally:
            store.close()
        tiers = [s.name for s, _ in cascade.tiers]
        expected = stored_baselines(settings.home, name, cascade.name).get(settings.model)
        report = live(rows, tiers, cascade.name, expected, share_tolerance=share_tolerance,
                      confidence_tolerance=confidence_tolerance)  # fmt: skip
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
                    "tiers": [{**asdict(t), "agreement": t.agreement} for t in report.tiers],
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
                   "agreement (95 %)", "calibrated"):  # fmt: skip
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
    if not report.baseline:
        err.print(
            f"no calibrated baseline for {settings.model}: run `llmflow calibrate {workflow} "
            f"{cascade.name} --data …` so that drift can be told"
        )
    for t in report.tiers:
        for why in t.drift:
            err.print(f"DRIFT {t.tier}: {why}", style="bold red")
    if report.drifted:
        err.print(
            f"recalibrate: llmflow calibrate {workflow} {cascade.name} --from-audits "
            "(or with --data on fresh labelled rows)"
        )
        return EXIT_FAILED
    return EXIT_OK


def correct(
    run_id: Annotated[str, typer.Argument(help="The run (an id or a unique prefix).")],
    item: Annotated[str, typer.Argument(help="The item's key, e.g. the file name.")],
    step: Annotated[str, typer.Option("--step", help="The classifier step, e.g. category.")],
    label: Annotated[str, typer.Option("--label", help="The right label.")],
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
) -> int:
    """Record the right label for a decision; `distill` learns it over the model's."""
    from ..settings import Settings
    from ..store.sqlite import RunStore

    try:
        store = RunStore(Settings().db_path)
        try:
            row = store.find_item(run_id, item)
            store.correct(row["id"], step, label, note)
        finally:
            store.close()
    except LLMFlowError as e:
        raise fail(str(e)) from None
    out.print(f"recorded: {item} is {label!r} for step {step!r}")
    return EXIT_OK
