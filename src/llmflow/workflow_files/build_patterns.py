"""Building the patterns of workflow files: route, parallel, vote, orchestrate, refine,
cascade, and the classic classifiers (rules, ml), with the library's own constructors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from ..analysis.tuning import tuned
from ..patterns.cascade import cascade
from ..patterns.orchestrate import Plan, Subtask, orchestrate
from ..patterns.parallel import at_least, best_of, majority, parallel, vote
from ..patterns.refine import Evaluation, refine
from ..patterns.route import route
from ..settings import Settings
from ..steps.base import Step
from . import schema as m
from .check import (
    Checker,
    Where,
)
from .scope import (
    MergedParallel,
    ScopedLLM,
)
from .source import Path_, did_you_mean


class PatternBuilder(Checker):
    """Builds the pattern steps; `step` (in Builder) builds their sub-steps."""

    def _route(
        self, spec: m.RouteSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        branches: dict[str, Step[Any, Any]] = {}
        ok = True
        for label, raw in spec.branches.items():
            if not label.strip() or "/" in label:
                self.source.key_error(
                    (*path, "branches", label),
                    f"branch label {label!r} must be non-empty text without '/'",
                )
                ok = False
                continue
            built = self.step(raw, (*path, "branches", label), where, default_id=label)
            ok = ok and built is not None
            if built is not None:
                branches[label] = built
        classifier: Step[Any, Any] | None = None
        if (spec.instructions is None) == (spec.classifier is None):
            self.source.error(
                path, f"route {name!r} needs either instructions (an llm classifier) or a "
                "classifier step, not both and not neither"
            )  # fmt: skip
            ok = False
        elif spec.classifier is not None:
            for key in ("prompt", "model"):
                if getattr(spec, key) is not None:
                    self.source.key_error(
                        (*path, key), f"{key} belongs to the classifier step, not the route"
                    )
                    ok = False
            classifier = self.step(
                spec.classifier, (*path, "classifier"), where, default_id="classify"
            )
            ok = ok and classifier is not None
        else:
            labels = tuple(spec.branches)
            llm_spec = m.LLMSpec(
                kind="llm", instructions=spec.instructions or "", prompt=spec.prompt,
                model=spec.model, max_tokens=32,
            )  # fmt: skip
            classifier = self.llm_step(
                llm_spec,
                "classify",
                path,
                where,
                default_output=Literal[labels],
                output_given=False,
            )
            ok = ok and classifier is not None
        if spec.default is not None and spec.default not in spec.branches:
            self.source.error(
                (*path, "default"),
                f"default {spec.default!r} is not a branch"
                f"{did_you_mean(spec.default, spec.branches)}: one of {', '.join(spec.branches)}",
            )
            ok = False
        if not ok or classifier is None:
            return None
        return route(
            name, branches, classifier=classifier, default=spec.default,
            min_confidence=spec.min_confidence,
        )  # fmt: skip

    def _keyed(
        self, raws: Sequence[Any], path: Path_, key: str, where: Where
    ) -> dict[str, Step[Any, Any]] | None:
        """Steps in a list keyed by their ids (parallel sections, workers, cascade tiers)."""
        out: dict[str, Step[Any, Any]] = {}
        ok = True
        for index, raw in enumerate(raws):
            built = self.step(raw, (*path, key, index), where)
            if built is None:
                ok = False
            elif built.name in out:
                self.source.error(
                    (*path, key, index, "id"), f"duplicate id {built.name!r} in {key}"
                )
                ok = False
            else:
                out[built.name] = built
        return out if ok else None

    def _parallel(
        self, spec: m.ParallelSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        sections = self._keyed(spec.sections, path, "sections", where)
        merge_step: Step[Any, Any] | None = None
        merge_fn: Any = None
        ok = sections is not None
        if isinstance(spec.merge, dict):
            merge_step = self.step(
                spec.merge, (*path, "merge"), where.plus("sections"), default_id="merge"
            )
            ok = ok and merge_step is not None
        elif isinstance(spec.merge, str):
            merge_fn = self.function(spec.merge, (*path, "merge"), self.folders, self.source)
            ok = ok and merge_fn is not None
        elif spec.merge is not None:
            self.source.error((*path, "merge"), "merge is an import path or a step")
            ok = False
        if not ok or sections is None:
            return None
        step = parallel(
            name, sections, merge=merge_fn, on_error=spec.on_error,
            max_concurrency=spec.max_concurrency or self.limits.max_concurrency,
        )  # fmt: skip
        return step if merge_step is None else MergedParallel(step, merge_step)

    def _vote(
        self, spec: m.VoteSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        inner = self.step(spec.step, (*path, "step"), where, default_id="step")
        ok = inner is not None
        if spec.n is not None and spec.models is not None:
            self.source.error((*path, "models"), "give n or models, not both")
            ok = False
        for index, model in enumerate(spec.models or []):
            self.model(model, (*path, "models", index), self.source)
        if spec.models and inner is not None and not isinstance(inner, ScopedLLM):
            self.source.error((*path, "models"), "models needs an llm step to run on each model")
            ok = False
        aggregate: Any = None
        if spec.aggregate == "majority":
            aggregate = majority()
            if spec.key is not None:
                only_value = replace(where, variables=frozenset({"value"}), step="the vote's key")
                key = self.expression(spec.key, (*path, "key"), only_value)
                ok = ok and key is not None
                aggregate = majority(_by(key))
        elif isinstance(spec.aggregate, dict) and "at_least" in spec.aggregate:
            rule = self.validate(m.AtLeast, spec.aggregate, (*path, "aggregate"), "aggregate")
            ok = ok and rule is not None
            aggregate = rule and at_least(rule.at_least, rule.value)
        elif isinstance(spec.aggregate, dict) and "best_of" in spec.aggregate:
            scorer = self.step(
                spec.aggregate["best_of"], (*path, "aggregate", "best_of"), where.plus("value"),
                default_id="score",
            )  # fmt: skip
            ok = ok and scorer is not None and len(spec.aggregate) == 1
            if len(spec.aggregate) != 1:
                self.source.error((*path, "aggregate"), "best_of takes a step and nothing else")
            aggregate = scorer and best_of(scorer)
        else:
            self.source.error(
                (*path, "aggregate"),
                "aggregate is majority, {at_least: <k>, value: <v>} or {best_of: <step>}",
            )
            ok = False
        if not ok or inner is None:
            return None
        return vote(
            name, inner, n=spec.n or 3, models=spec.models, aggregate=aggregate,
            temperature=spec.temperature,
            max_concurrency=spec.max_concurrency or self.limits.max_concurrency,
        )  # fmt: skip

    def _orchestrate(
        self, spec: m.OrchestrateSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        max_subtasks = spec.max_subtasks or self.limits.max_subtasks or 8
        planner: Step[Any, Any] | None = None
        ok = True
        if (spec.instructions is None) == (spec.planner is None):
            self.source.error(
                path, f"orchestrate {name!r} needs either instructions (an llm planner) or a "
                "planner step, not both and not neither"
            )  # fmt: skip
            ok = False
        elif spec.planner is not None:
            planner = self.step(spec.planner, (*path, "planner"), where, default_id="plan")
        else:

            class BoundedPlan(Plan):
                subtasks: list[Subtask] = Field(min_length=1, max_length=max_subtasks)

            llm_spec = m.LLMSpec(
                kind="llm", instructions=spec.instructions or "", prompt=spec.prompt,
                model=spec.model, max_tokens=spec.max_tokens,
            )  # fmt: skip
            planner = self.llm_step(
                llm_spec, "plan", path, where, default_output=BoundedPlan, output_given=False
            )
        workers = self._keyed(spec.workers, path, "workers", where.plus("task"))
        synthesiser = self.step(
            spec.synthesiser, (*path, "synthesiser"), where.plus("results"), default_id="synthesise"
        )
        if not ok or planner is None or workers is None or synthesiser is None:
            return None
        return orchestrate(
            name, planner=planner, workers=workers, synthesiser=synthesiser,
            max_subtasks=max_subtasks,
            max_concurrency=spec.max_concurrency or self.limits.max_concurrency or 4,
            on_error=spec.on_error,
        )  # fmt: skip

    def _refine(
        self, spec: m.RefineSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        generator = self.step(
            spec.generator, (*path, "generator"), where.plus("round", "previous", "feedback"),
            default_id="generate",
        )  # fmt: skip
        evaluator = self._evaluator(
            spec.evaluator, (*path, "evaluator"), where.plus("output", "round")
        )
        if generator is None or evaluator is None:
            return None
        return refine(
            name, generator=generator, evaluator=evaluator,
            max_rounds=spec.max_rounds or self.limits.max_rounds or 3,
        )  # fmt: skip

    def _evaluator(self, raw: Any, path: Path_, where: Where) -> Step[Any, Any] | None:
        """An llm evaluator answers an Evaluation unless it says otherwise."""
        if isinstance(raw, dict) and raw.get("kind") == "llm" and "output" not in raw:
            spec = self.validate(m.LLMSpec, raw, path, "an llm step")
            if spec is None:
                return None
            return self.llm_step(
                spec, spec.id or "evaluate", path, replace(where, step="the evaluator"),
                default_output=Evaluation, output_given=False,
            )  # fmt: skip
        return self.step(raw, path, where, default_id="evaluate")

    def _cascade(
        self, spec: m.CascadeSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        tiers: list[tuple[Step[Any, Any], float]] = []
        names: set[str] = set()
        ok = True
        for index, tier in enumerate(spec.tiers):
            here = (*path, "tiers", index, "step")
            built = self.step(tier.step, here, where)
            if built is None:
                ok = False
            elif built.name in names:
                self.source.error((*here, "id"), f"duplicate tier id {built.name!r}")
                ok = False
            else:
                names.add(built.name)
                tiers.append((built, tier.threshold))
        if not ok:
            return None
        # The newest version `llmflow calibrate` / `distill` stored for this cascade applies.
        return tuned(cascade(name, *tiers, audit=spec.audit), Settings().home, self.workflow)

    # -- agents -------------------------------------------------------------------------------


def _by(key: Callable[..., Any]) -> Callable[[Any], Any]:
    """A vote's comparison key: the key expression over one vote, as `value`."""
    return lambda vote: key(value=vote)
