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
from .app import EXIT_OK, endpoint, err, fail, out, usd, writable_folder

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    from ..analysis.tuning import TierAnswers
    from ..patterns.cascade import Cascade
    from ..settings import Settings

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


def _answers(cascade: Cascade, data: Path, settings: Settings) -> tuple[TierAnswers, list[str]]:
    """Every tier's answer on the labelled rows of `data`, and the labels."""
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
            return await answers(cascade, texts, gateway)
        finally:
            await gateway.aclose()

    try:
        return asyncio.run(all_tiers()), truth
    finally:
        store.close()


def calibrate(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    step: Annotated[str, typer.Argument(help="The cascade step to calibrate.")],
    data: Annotated[
        Path, typer.Option("--data", help='Labelled JSONL: {"text": ..., "label": ...} per line.')
    ],
    target_accuracy: Annotated[
        float, typer.Option("--target-accuracy", min=0, max=1, help="Accuracy to reach.")
    ] = 0.95,
    validation_share: Annotated[
        float,
        typer.Option(min=0.1, max=0.9, help="Rows that choose thresholds; the rest check them."),
    ] = 0.5,
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Choose per-tier thresholds that reach a target accuracy at the lowest cost."""
    from ..analysis.tuning import calibrate_on, save_version, stored_by_model

    try:
        settings = _settings(model, base_url)
        name, cascade = _cascade(workflow, step)
        tier_answers, truth = _answers(cascade, data, settings)
        model_name = settings.model
        report = calibrate_on(
            tier_answers,
            truth,
            target_accuracy,
            validation_share,
            current=cascade.by_model.get(model_name, [t for _, t in cascade.tiers]),
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
                "target_accuracy": target_accuracy,
                "validation_accuracy": report.calibration.accuracy,
                "held_out_accuracy": report.test_accuracy,
                "rows": len(truth),
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
                            "share_validation": report.calibration.shares[i],
                            "share_held_out": report.test_shares[i],
                            "cost_usd_per_item": usd(report.cost_per_item[i]),
                        }
                        for i, tier in enumerate(tiers)
                    ],
                    "validation_accuracy": report.calibration.accuracy,
                    "held_out_accuracy": report.test_accuracy,
                    "version": str(report.version),
                }
            )
        )
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, title=f"{name} / {cascade.name}")
    for column in ("tier", "alone", "threshold", "share (val)", "share (held-out)", "cost/item"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for i, tier in enumerate(tiers):
        table.add_row(
            tier,
            f"{report.tier_accuracy[i]:.3f}",
            "never" if thresholds[i] == float("inf") else f"{thresholds[i]:.3f}",
            f"{report.calibration.shares[i]:.0%}",
            f"{report.test_shares[i]:.0%}",
            format_cost(report.cost_per_item[i]),
        )
    out.print(table)
    reached = "reached" if report.calibration.accuracy >= target_accuracy else "NOT reached"
    out.print(
        f"target {target_accuracy:.3f} {reached} on {report.validation} validation rows "
        f"({report.calibration.accuracy:.3f}); {report.test_accuracy:.3f} on "
        f"{report.test} held-out rows. Saved as {report.version}, used when the LLM "
        f"tier runs on {model_name}"
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
        Path, typer.Option("--data", help='Labelled JSONL: {"text": ..., "label": ...} per line.')
    ],
    step: Annotated[
        str | None, typer.Option("--step", help="The cascade (needed if there are several).")
    ] = None,
    variants: Annotated[
        str, typer.Option(help="Comma-separated: <tier>-only for each tier, and cascade.")
    ] = "",
    plot_to: Annotated[
        Path | None, typer.Option("--plot", help="Write a cost-versus-accuracy PNG here.")
    ] = None,
    model: Model = None,
    base_url: BaseUrl = None,
    as_json: Json = False,
) -> int:
    """Accuracy, macro-F1, cost, latency and share per tier of each variant."""
    from ..analysis.evaluation import check_variants, plot, score, variant_names

    try:
        settings = _settings(model, base_url)
        name, cascade = _cascade(workflow, step)
        tiers = [s.name for s, _ in cascade.tiers]
        chosen = check_variants(
            [v.strip() for v in variants.split(",") if v.strip()] or variant_names(tiers), tiers
        )  # before any model call
        if plot_to is not None:
            writable_folder(plot_to.parent, "choose another path for --plot")
        tier_answers, truth = _answers(cascade, data, settings)
        thresholds = cascade.by_model.get(settings.model, [t for _, t in cascade.tiers])
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
