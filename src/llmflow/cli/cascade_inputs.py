"""What the tuning commands (`calibrate`, `eval`) share: the --model, --base-url and --json
options, the settings they make, the cascade named on the command line, and every tier's
answers on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from .app import endpoint, err

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    from collections.abc import Callable, Iterable

    from ..analysis.tuning import TierAnswers
    from ..patterns.cascade import Cascade
    from ..settings import Settings
    from ..steps.label import Label
    from ..store.base import Store

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


def settings_for(model: str | None, base_url: str | None) -> Settings:
    from ..settings import Settings

    overrides: dict[str, Any] = {}
    if model:
        overrides["model"] = model
    if base_url:
        overrides["base_url"] = base_url
    return Settings().model_copy(update=overrides)


def find_workflow_cascade(workflow: str, step: str | None) -> tuple[str, Cascade]:
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


def other_models(store: Store, cascade: str, workflow: str, days: float, model: str) -> str:
    """When no decision of `cascade` on `model` was recorded in the last `days`: the models
    that have some, and the --model to pass (else "")."""
    import time

    rows = store.cascade_decisions(cascade, workflow, since=time.time() - days * 86400)
    found: dict[str, int] = {}
    for row in rows:
        if row["model"] and row["model"] != model:
            found[row["model"]] = found.get(row["model"], 0) + 1
    if not found:
        return ""
    listing = ", ".join(f"{n} on {m}" for m, n in sorted(found.items()))
    return (
        f"no decisions of {cascade!r} recorded on {model} in the last {days:g} days, but "
        f"{listing}: pass --model {max(found, key=found.__getitem__)}"
    )


def refuse_file_history(cascade: Cascade, what: str) -> None:
    """Refuse `what` (learning from a cascade's recorded history) for a workflow file's
    cascade: its steps record the workflow's scope or state as their input, not the text each
    tier reads (a template over the scope), so that text cannot be rebuilt from the store:
    `distill` would find no usable decision and `--retrain` would learn text the tier never
    reads. Python cascades record the tiers' own input."""
    from ..workflow_files.build_classifiers import ScopedClassifier
    from ..workflow_files.scope import TextOf

    if any(
        isinstance(tier, ScopedClassifier) or isinstance(getattr(tier, "text", None), TextOf)
        for tier, _ in cascade.tiers
    ):
        raise ConfigError(
            f"{what} is not available for a workflow file's cascade ({cascade.name!r}) yet: its "
            "runs record the workflow's state, not the text each tier reads, so the store "
            "cannot give the ml tier what it would learn from. Add the labelled inputs to the "
            "ml tier's train: examples instead (the file's version changes, and the tier is "
            "retrained on load), or use a Python cascade"
        )


def labels_known(cascade: Cascade) -> set[str] | None:
    """Every label a tier of `cascade` can answer (an ml tier's out-of-scope label counted),
    or None when a tier's labels are not known (a step of the user's own)."""
    from ..steps.classify import LLMClassifier
    from ..steps.ml import MLStep, RulesStep

    known: set[str] = set()
    for tier, _ in cascade.tiers:
        if isinstance(tier, (LLMClassifier, MLStep)):
            known.update(tier.labels)
        elif isinstance(tier, RulesStep):
            known.update(label for _, label in tier.rules)
        else:
            return None
    return known


def labelled_answers(
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

    texts, truth = read_labelled(data, labels_known(cascade))  # a typo fails before any call
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
