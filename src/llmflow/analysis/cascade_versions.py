"""A workflow's cascades, and their stored classifier versions: finding a cascade in a
workflow, saving a tuned version, and `tuned`, which applies the newest one when a workflow
is built (so a run after `llmflow calibrate` or `llmflow distill` uses the result)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..patterns.cascade import Cascade
from ..steps.base import Step
from ..steps.ml import MLStep
from ..store.classifiers import ClassifierVersions


def walk(root: Step[Any, Any]) -> Iterator[Step[Any, Any]]:
    """Every step in `root`'s tree, `root` first, depth first."""
    yield root
    for _, child in root.children():
        yield from walk(child)


def find_step(root: Step[Any, Any], name: str) -> Step[Any, Any]:
    """The step called `name` anywhere in `root`'s tree (the first found, depth first)."""
    found = next((step for step in walk(root) if step.name == name), None)
    if found is None:
        names = sorted({step.name for step in walk(root) if step.name})
        raise ConfigError(f"the workflow has no step {name!r} (its steps: {', '.join(names)})")
    return found


def cascades(root: Step[Any, Any]) -> list[Cascade]:
    """Every cascade in `root`'s tree."""
    return [step for step in walk(root) if isinstance(step, Cascade)]


def find_cascade(root: Step[Any, Any], name: str) -> Cascade:
    step = find_step(root, name)
    if not isinstance(step, Cascade):
        names = ", ".join(repr(c.name) for c in cascades(root)) or "none"
        raise ConfigError(
            f"step {name!r} is a {step.kind} step, not a cascade: name a cascade step "
            f"(cascades here: {names})"
        )
    return step


class StaleVersionWarning(UserWarning):
    """A stored classifier version was made for other training data or options than the
    workflow's: it is not applied."""


def stale(cascade: Cascade, meta: dict[str, Any], version: Path) -> str | None:
    """Why the stored `version` no longer fits `cascade` (its ml tier's training data or
    options changed since), or None when it fits or nothing tells."""
    ml = next((s for s, _ in cascade.tiers if isinstance(s, MLStep)), None)
    current = None if ml is None else ml.data_sha256
    if current is None:
        return None  # the workflow's ml tier is a saved model: the version applies
    made_for = meta.get("workflow_data_sha256")
    if made_for is None:  # made before versions followed their data: check the model's own
        stored = version / "model.skops"
        if not stored.is_file():
            return None
        made_for = MLStep.load("ml", stored).data_sha256
    if made_for == current:
        return None
    return (
        f"classifier version {version} of {cascade.name!r} was made for other training data "
        f"or options than the workflow's now: not applied, the ml tier is the one trained "
        f"from the workflow's data, at its default thresholds. Calibrate it again: "
        f"llmflow calibrate <workflow> {cascade.name} --data <labelled.jsonl>"
    )


def tuned(cascade: Cascade, home: Path, workflow: str) -> Cascade:
    """`cascade` with its newest stored version applied: the ml tier's model, the tiers'
    thresholds, and thresholds calibrated per model (over the cascade's own). Unchanged
    when nothing is stored, or when the version was made for other training data or options
    than the cascade's ml tier has now (a `StaleVersionWarning` says so): a workflow whose
    `train:` data changed runs the model trained from it, never the old one."""
    latest = ClassifierVersions(home, workflow, cascade.name).latest()
    if latest is None:
        return cascade
    meta = ClassifierVersions.read_meta(latest)
    why = stale(cascade, meta, latest)
    if why is not None:
        warnings.warn(why, StaleVersionWarning, stacklevel=2)
        return cascade
    thresholds: dict[str, float] = meta.get("thresholds", {})
    tiers: list[tuple[Step[Any, Any], float]] = []
    for step, threshold in cascade.tiers:
        stored = latest / "model.skops"
        if isinstance(step, MLStep) and step.source != stored and stored.is_file():
            made_for = step.data_sha256
            step = MLStep.load(step.name, stored, text=step.text,
                               out_of_scope=step.out_of_scope)  # fmt: skip
            step.made_for = made_for  # a version saved from this cascade is made for it too
        tiers.append((step, float(thresholds.get(step.name, threshold))))
    by_model = dict(cascade.by_model)
    for model, named in meta.get("thresholds_by_model", {}).items():
        by_model[model] = [float(named.get(s.name, t)) for s, t in tiers]
    return Cascade(
        cascade.name, tiers, by_model=by_model, audit=cascade.audit, timeout_s=cascade.timeout_s
    )


def stored_by_model(home: Path, workflow: str, cascade: str) -> dict[str, dict[str, float]]:
    """Per-model thresholds of the newest stored version (to carry into the next one)."""
    latest = ClassifierVersions(home, workflow, cascade).latest()
    if latest is None:
        return {}
    found: dict[str, dict[str, float]] = ClassifierVersions.read_meta(latest).get(
        "thresholds_by_model", {}
    )
    return found


def ml_tier(cascade: Cascade) -> MLStep:
    for step, _ in cascade.tiers:
        if isinstance(step, MLStep):
            return step
    raise ConfigError(f"cascade {cascade.name!r} has no ml tier to train")


def save_version(
    cascade: Cascade,
    home: Path,
    workflow: str,
    *,
    thresholds: Sequence[float] | None = None,
    by_model: dict[str, dict[str, float]] | None = None,
    ml: MLStep | None = None,
    meta: dict[str, Any],
) -> Path:
    """Store the ml tier (the given one, else the cascade's) and thresholds as a new version;
    `by_model` holds thresholds calibrated for particular models (by tier name)."""
    versions = ClassifierVersions(home, workflow, cascade.name)
    path = versions.create()
    template = next((s for s, _ in cascade.tiers if isinstance(s, MLStep)), None)
    model = ml or template
    if model is not None:
        model.save(path / "model.skops")
        meta = {
            "data_sha256": model.data_sha256,
            "workflow_data_sha256": (template.made_for or template.data_sha256)
            if template
            else None,
            "options": model.options,
            **meta,
        }
    current = thresholds or [t for _, t in cascade.tiers]
    names = [step.name for step, _ in cascade.tiers]
    ClassifierVersions.write_meta(
        path,
        {
            "created_at": time.time(),
            "thresholds": dict(zip(names, current, strict=True)),
            "thresholds_by_model": by_model or {},
            **meta,
        },
    )
    return path
