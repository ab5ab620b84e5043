"""Workflow-file steps -> library steps, checking everything on the way.

The builder walks the steps as written, validates each against the model of its `kind`, and
builds it with the library's own constructors (`llm`, `agent`, `chain`, `assign`, `gate`,
`route`, `parallel`, `vote`, `orchestrate`, `refine`, `cascade`, `rules`, `MLStep`). Every
problem (a key, a reference, a tool, a schema, a file) is recorded with its position and the
walk goes on, so one run reports every mistake; nothing is built for a file with problems.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import jinja2
from pydantic import BaseModel, Field, ValidationError

from ..errors import ConfigError
from ..patterns.cascade import cascade
from ..patterns.chain import Divert, Stop, assign, chain, gate
from ..patterns.orchestrate import Plan, Subtask, orchestrate
from ..patterns.parallel import at_least, best_of, majority, parallel, vote
from ..patterns.refine import Evaluation, refine
from ..patterns.route import route
from ..steps.agent import AgentStep, Tool, tool
from ..steps.base import Step
from ..steps.ml import MLStep, rules
from . import expressions as ex
from . import models as m
from .imports import ImportProblem, resolve, resolve_tool
from .schemas import SchemaProblem, output_type
from .scope import (
    MergedParallel,
    ScopedAgent,
    ScopedCode,
    ScopedLLM,
    SpecChain,
    TextOf,
    ToolCallStep,
    scope_from_state,
)
from .source import Path_, Pos, Source, did_you_mean, read_yaml

BASE_VARIABLES = frozenset({"input", "steps"})
JINJA_GLOBALS = frozenset(ex.strict.globals)
M = TypeVar("M", bound=BaseModel)
Folders = Path | Sequence[Path]
KIND_NAMES = {"llm": "an llm step", "agent": "an agent step", "orchestrate": "an orchestrate step"}


@dataclass(frozen=True, slots=True)
class Where:
    """What a step at some place in the file may refer to."""

    visible: dict[str, str] = field(default_factory=dict)
    """The ids it may read as `steps.<id>`, and the step each belongs to."""
    variables: frozenset[str] = BASE_VARIABLES
    """The variables its expressions and templates may use."""
    later: dict[str, str] = field(default_factory=dict)
    """Ids of the same chain that run after it (for a precise message)."""
    step: str = "the workflow"
    """The step it belongs to, for messages."""
    any_steps: bool = False
    """Whether `steps.<id>` references go unchecked (an agent file loaded on its own)."""

    def plus(self, *names: str) -> Where:
        return replace(self, variables=self.variables | set(names))


@dataclass(slots=True)
class ModelUse:
    """A model named in a file, for checking against the gateway."""

    name: str
    source: Source
    path: Path_


@dataclass(slots=True)
class AgentFile:
    """An agent file, read: its front matter and its body (the instructions)."""

    path: Path
    source: Source
    meta: dict[str, Any]
    body: str
    body_line: int
    """The file line the body starts on."""


class Builder:
    """Builds the steps of one workflow file (and the agent files it uses)."""

    def __init__(self, source: Source, folder: Path, limits: m.Limits | None = None) -> None:
        self.source = source
        self.folder = folder
        self.folders: tuple[Path, ...] = (folder,)
        """Where `module:attr` references look for `module.py`, in order."""
        self.limits = limits or m.Limits()
        self.sources: list[Source] = [source]
        self.models: list[ModelUse] = []
        self.all_ids: dict[str, tuple[str, int]] = {}
        """Every step id in the file, with its kind and line, for messages about ids that
        exist but are out of reach."""
        self._agent_files: dict[Path, AgentFile | None] = {}
        self._building_agents: list[Path] = []
        self._built_agents: dict[tuple[Path, str], ScopedAgent] = {}

    # -- shared checks ------------------------------------------------------------------------

    def validate(
        self, model: type[M], data: Any, path: Path_, what: str, source: Source | None = None
    ) -> M | None:
        """`data` as `model`, or None with every problem recorded at its position."""
        source = source or self.source
        try:
            return model.model_validate(data)
        except ValidationError as e:
            for error in e.errors():
                self._pydantic_problem(model, error, path, what, source)
            return None

    def _pydantic_problem(
        self, model: type[BaseModel], error: Any, path: Path_, what: str, source: Source
    ) -> None:
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _keys(_model_at(model, loc[:-1]))
            source.key_error(
                (*path, *loc),
                f"unknown key {key!r} in {_what(what, loc)}{did_you_mean(key, allowed)}"
                f"; allowed: {', '.join(allowed)}",
            )
        elif kind == "missing":
            source.error((*path, *loc[:-1]), f"missing key {loc[-1]!r} in {_what(what, loc)}")
        else:
            name = f"{loc[-1]}: " if loc and isinstance(loc[-1], str) else ""
            message = error["msg"]
            if kind in ("model_type", "dict_type") and not loc:
                message = f"{what} must be a mapping of keys to values"
            source.error((*path, *loc), f"{name}{message}")

    def expression(
        self,
        text: Any,
        path: Path_,
        where: Where,
        *,
        template: bool = False,
        lenient: bool = False,
        source: Source | None = None,
    ) -> Any:
        """A compiled expression (or template) over the scope, its references checked."""
        source = source or self.source
        if not isinstance(text, str):
            source.error(path, f"expected {'a template' if template else 'an expression'} (text)")
            return None
        try:
            tree = ex.parse_template(text) if template else ex.parse_expression(text)
        except ex.ExpressionError as e:
            source.problem(
                source.in_text(path, e.line, None),
                f"invalid {'template' if template else 'expression'}: {e.message}",
            )
            return None
        self._check_references(ex.analyse(tree), text, path, where, source)
        if template:
            return ex.compile_template(text, lenient_undefined=lenient)
        return ex.compile_expression(text, lenient_undefined=lenient)

    def _check_references(
        self, found: ex.Analysis, text: str, path: Path_, where: Where, source: Source
    ) -> None:
        for name in sorted(found.variables - where.variables - JINJA_GLOBALS):
            line = _line_of(text, name)
            source.problem(
                source.in_text(path, line, name),
                f"unknown variable {name!r}{did_you_mean(name, where.variables)}: "
                f"{where.step} can use {', '.join(sorted(where.variables))}",
            )
        for ref, line in found.steps:
            if ref in where.visible or where.any_steps:
                continue
            pos = source.in_text(path, line, ref)
            if ref in where.later:
                source.problem(
                    pos,
                    f"{where.step} refers to steps.{ref}, which runs after it: "
                    f"move {ref!r} before it",
                )
            elif ref in self.all_ids:
                _kind, at = self.all_ids[ref]
                source.problem(
                    pos,
                    f"{where.step} refers to steps.{ref} (line {at}), which has not run by then: "
                    "refer only to earlier steps of the same chain or of an enclosing one",
                )
            else:
                hint = did_you_mean(ref, where.visible)
                known = ", ".join(where.visible) or "none yet"
                source.problem(
                    pos, f"unknown step {ref!r} in steps.{ref}{hint}; steps before it: {known}"
                )

    def text_or_file(self, value: str, path: Path_, folder: Path, source: Source) -> str | None:
        """Instructions: a file when the value is one line ending in .md or .txt."""
        stripped = value.strip()
        if "\n" in stripped or not stripped.lower().endswith((".md", ".txt")):
            return value
        file = folder / stripped
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as e:
            source.error(path, f"cannot read instructions file {stripped}: {e.strerror}")
        except UnicodeDecodeError:
            source.error(path, f"instructions file {stripped} is not UTF-8 text")
        return None

    def output(self, value: Any, path: Path_, folder: Folders, source: Source) -> Any:
        try:
            return output_type(value, folder)
        except SchemaProblem as e:
            source.error((*path, *e.path), e.message)
            return None

    def model(self, name: str | None, path: Path_, source: Source) -> str | None:
        if name is not None:
            self.models.append(ModelUse(name, source, path))
        return name

    def function(self, ref: Any, path: Path_, folder: Folders, source: Source) -> Any:
        if not isinstance(ref, str):
            source.error(path, "expected an import path module:function")
            return None
        try:
            target = resolve(ref, folder)
        except ImportProblem as e:
            source.error(path, str(e))
            return None
        if not callable(target):
            source.error(path, f"{ref} is not a function")
            return None
        return target

    # -- steps --------------------------------------------------------------------------------

    def collect_ids(self, data: Any, path: Path_ = ()) -> None:
        """Note every step id in the file (a pre-pass, for messages)."""
        if isinstance(data, dict):
            if isinstance(data.get("id"), str) and "kind" in data:
                self.all_ids.setdefault(
                    data["id"], (str(data["kind"]), self.source.at((*path, "id")).line)
                )
            for key, value in data.items():
                self.collect_ids(value, (*path, key))
        elif isinstance(data, list):
            for index, value in enumerate(data):
                self.collect_ids(value, (*path, index))

    def step(
        self, raw: Any, path: Path_, where: Where, *, default_id: str | None = None
    ) -> Step[Any, Any] | None:
        """One step, built; None when it has problems (recorded)."""
        source = self.source
        if not isinstance(raw, dict):
            source.error(path, "a step is a mapping with an id, a kind and the kind's keys")
            return None
        kind = raw.get("kind")
        if kind is None:
            source.error(path, f"missing key 'kind' in a step: one of {', '.join(m.KINDS)}")
            return None
        if not isinstance(kind, str) or kind not in m.KINDS:
            hint = did_you_mean(str(kind), m.KINDS)
            source.error(
                (*path, "kind"), f"unknown kind {kind!r}{hint}: one of {', '.join(m.KINDS)}"
            )
            return None
        what = KIND_NAMES.get(kind, f"a {kind} step")
        spec = self.validate(m.KINDS[kind], raw, path, what)
        if spec is None:
            return None
        name = spec.id or default_id
        if name is None:
            source.error(path, f"missing key 'id' in {what}: steps in a list need an id")
            return None
        where = replace(where, step=f"step {name!r}")
        built = getattr(self, f"_{kind}")(spec, name, path, where)
        if built is None:
            return None
        step: Step[Any, Any] = built
        timeout = spec.timeout_s or self.limits.timeout_s
        if timeout is not None:
            step.timeout_s = timeout
        return step

    def _code(
        self, spec: m.CodeSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        fn = self.function(spec.function, (*path, "function"), self.folders, self.source)
        select = None
        if spec.input is not None:
            select = self.expression(spec.input, (*path, "input"), where)
        if fn is None or (spec.input is not None and select is None):
            return None
        return ScopedCode(name, fn, select)

    def _llm(self, spec: m.LLMSpec, name: str, path: Path_, where: Where) -> Step[Any, Any] | None:
        return self.llm_step(spec, name, path, where)

    def llm_step(
        self,
        spec: m.LLMSpec,
        name: str,
        path: Path_,
        where: Where,
        *,
        default_output: Any = str,
        output_given: bool = True,
    ) -> ScopedLLM | None:
        instructions = self.text_or_file(
            spec.instructions, (*path, "instructions"), self.folder, self.source
        )
        output = (
            self.output(spec.output, (*path, "output"), self.folders, self.source)
            if output_given
            else default_output
        )
        template = None
        if spec.prompt is not None:
            template = self.expression(spec.prompt, (*path, "prompt"), where, template=True)
        model = self.model(spec.model, (*path, "model"), self.source)
        if instructions is None or output is None or (spec.prompt is not None and not template):
            return None
        step = ScopedLLM(
            name,
            instructions=instructions,
            output=output,
            model=model,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
        )
        step.template = template
        return step

    def _tool(
        self, spec: m.ToolStepSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        fn = self.tool_function(spec.function, (*path, "function"), self.folders, self.source)
        args: dict[str, Callable[..., Any]] = {}
        ok = fn is not None
        for key, value in spec.args.items():
            if isinstance(value, str):
                compiled = self.expression(value, (*path, "args", key), where)
                ok = ok and compiled is not None
                args[key] = compiled
            else:
                args[key] = lambda _value=value, **_: _value
        if not ok:
            return None
        return ToolCallStep(name, fn, args, spec.side_effect)

    def tool_function(self, ref: str, path: Path_, folder: Folders, source: Source) -> Any:
        try:
            target = resolve_tool(ref, folder)
        except ImportProblem as e:
            source.error(path, f"missing tool {ref!r}: {e}")
            return None
        if not callable(target):
            source.error(path, f"tool {ref!r} is not a function")
            return None
        return target

    def _gate(
        self, spec: m.GateSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        when = self.expression(spec.when, (*path, "when"), where)
        diverted: Step[Any, Any] | None = None
        if spec.divert is not None:
            diverted = self.step(spec.divert, (*path, "divert"), where, default_id="divert")
            if diverted is None:
                return None
        if when is None:
            return None
        reason = spec.reason or f"gate {name!r} did not pass"
        divert = (
            None if diverted is None else assign(diverted.name, diverted, select=scope_from_state)
        )

        def check(state: dict[str, Any]) -> bool | Stop | Divert:
            if when(**scope_from_state(state)):
                return True
            return Stop(reason) if divert is None else Divert(divert, reason)

        return gate(name, check)

    def _chain(
        self, spec: m.ChainSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        return self.chain(name, spec.steps, spec.result, path, where)

    def chain(
        self,
        name: str,
        raws: Sequence[Any],
        result: Any,
        path: Path_,
        where: Where,
        *,
        steps_key: str = "steps",
        top: Callable[[Any], Any] | None = None,
        result_path: Path_ | None = None,
    ) -> SpecChain | None:
        visible = dict(where.visible)
        ids: list[tuple[str, Path_]] = []
        for index, raw in enumerate(raws):
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                ids.append((raw["id"], (*path, steps_key, index)))
        steps: list[Step[Any, Any]] = []
        own: list[str] = []
        diverts: dict[str, str] = {}
        seen: set[str] = set()
        ok = True
        for index, raw in enumerate(raws):
            here = (*path, steps_key, index)
            later = {i: name for i, p in ids if p > here and i not in visible and i not in seen}
            built = self.step(raw, here, replace(where, visible=dict(visible), later=later))
            if built is None:
                ok = False
                # Later references to it are fine: its own problems are reported already.
                failed = raw.get("id") if isinstance(raw, dict) else None
                if isinstance(failed, str) and raw.get("kind") != "gate" and failed not in seen:
                    seen.add(failed)
                    visible[failed] = failed
                continue
            if built.name in seen or built.name in where.visible:
                place = "this chain" if built.name in seen else "an enclosing chain"
                self.source.error(
                    (*here, "id"), f"duplicate step id {built.name!r}: {place} has one already"
                )
                ok = False
                continue
            seen.add(built.name)
            if built.kind == "gate":
                steps.append(built)
                divert = _divert_id(raw)
                if divert:  # its output is stored, for the result only: the chain ends there
                    diverts[divert] = divert
                    own.append(divert)
                continue
            steps.append(assign(built.name, built, select=scope_from_state))
            visible[built.name] = built.name
            own.append(built.name)
        compute = None
        if result is not None:
            compute = self.result(
                result, result_path or (*path, "result"), replace(where, visible=visible | diverts)
            )
            ok = ok and compute is not None
        if not ok or not steps:
            return None
        return SpecChain(name, chain(name, *steps), own=own, result=compute, top=top)

    def result(
        self, value: Any, path: Path_, where: Where
    ) -> Callable[[dict[str, Any]], Any] | None:
        """A chain's result: one expression, or a mapping of names to expressions."""
        where = replace(where, step="the result")
        if isinstance(value, str):
            one = self.expression(value, path, where, lenient=True)
            if one is None:
                return None
            return lambda state: one(**scope_from_state(state))
        if isinstance(value, dict):
            parts: dict[str, Callable[..., Any]] = {}
            ok = True
            for key, item in value.items():
                if isinstance(item, str):
                    compiled = self.expression(item, (*path, key), where, lenient=True)
                    ok = ok and compiled is not None
                    parts[key] = compiled
                else:
                    parts[key] = lambda _item=item, **_: _item
            if not ok:
                return None

            def compute(state: dict[str, Any]) -> dict[str, Any]:
                scope = scope_from_state(state)
                return {key: part(**scope) for key, part in parts.items()}

            return compute
        self.source.error(path, "result is an expression, or a mapping of names to expressions")
        return None

    def _route(
        self, spec: m.RouteSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        branches: dict[str, Step[Any, Any]] = {}
        ok = True
        for label, raw in spec.branches.items():
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
        return cascade(name, *tiers) if ok else None

    def _rules(
        self, spec: m.RulesSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        ok = True
        for index, rule in enumerate(spec.rules):
            try:
                re.compile(rule.pattern)
            except re.error as e:
                self.source.error(
                    (*path, "rules", index, "pattern"), f"not a valid regular expression: {e}"
                )
                ok = False
        text = self._text(spec.text, path, where)
        if not ok or text is None:
            return None
        return rules(name, [(r.pattern, r.label) for r in spec.rules], text=text)

    def _ml(self, spec: m.MLSpec, name: str, path: Path_, where: Where) -> Step[Any, Any] | None:
        text = self._text(spec.text, path, where)
        file = self.folder / spec.model
        if not file.is_file():
            self.source.error((*path, "model"), f"no model file {spec.model} in {self.folder}")
            return None
        if text is None:
            return None
        try:
            return MLStep.load(name, file, text=text)
        except ConfigError as e:
            self.source.error((*path, "model"), str(e))
            return None

    def _text(self, template: str | None, path: Path_, where: Where) -> TextOf | None:
        if template is None:
            return TextOf(None)
        compiled = self.expression(template, (*path, "text"), where, template=True)
        return None if compiled is None else TextOf(compiled)

    # -- agents -------------------------------------------------------------------------------

    def _agent(
        self, spec: m.AgentSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        if spec.file is None:
            if spec.instructions is None:
                self.source.error(
                    path, "an agent step needs a file (an agent file) or instructions"
                )
                return None
            instructions = self.text_or_file(
                spec.instructions, (*path, "instructions"), self.folder, self.source
            )
            if instructions is None:
                return None
            fields = spec.model_dump(
                exclude_unset=True, exclude={"id", "kind", "file", "timeout_s"}
            )
            fields.pop("instructions", None)
            return self.agent(
                name, fields, instructions, self.source, path, self.folders, where,
                body_path=(*path, "instructions"),
            )  # fmt: skip
        if spec.instructions is not None:
            self.source.error((*path, "instructions"), "give file or instructions, not both")
            return None
        file = (self.folder / spec.file).resolve()
        overrides = spec.model_dump(exclude_unset=True, exclude={"id", "kind", "file", "timeout_s"})
        return self.agent_from_file(file, (*path, "file"), self.source, where, name, overrides)

    def read_agent_file(self, file: Path, at: Path_, source: Source) -> AgentFile | None:
        if file in self._agent_files:
            return self._agent_files[file]
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            source.error(at, f"cannot read agent file {_shown(file)}: {reason}")
            self._agent_files[file] = None
            return None
        agent_file = read_agent_text(_shown(file), text, file)
        self.sources.append(agent_file.source)
        self._agent_files[file] = agent_file
        return agent_file

    def agent_from_file(
        self,
        file: Path,
        at: Path_,
        source: Source,
        where: Where,
        name: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> ScopedAgent | None:
        """The agent of an agent file; its handoffs are built from their files in turn."""
        if file in self._building_agents:
            cycle = [*self._building_agents[self._building_agents.index(file) :], file]
            source.error(
                at,
                "handoff cycle: " + " → ".join(p.name for p in cycle)
                + ": an agent cannot be handed back to one it came from; remove one handoff",
            )  # fmt: skip
            return None
        agent_file = self.read_agent_file(file, at, source)
        if agent_file is None:
            return None
        front = self.validate(
            m.AgentFrontMatter, agent_file.meta, (), "front matter", agent_file.source
        )
        if front is None:
            return None
        fields = front.model_dump(exclude_unset=True)
        default_name = fields.pop("name", None) or file.stem
        fields.update(overrides or {})
        name = name or default_name
        key = (file, name)
        if key in self._built_agents and not overrides:
            return self._built_agents[key]
        self._building_agents.append(file)
        try:
            built = self.agent(
                name, fields, agent_file.body, agent_file.source, (),
                (file.parent, *self.folders), where, body_line=agent_file.body_line,
            )  # fmt: skip
        finally:
            self._building_agents.pop()
        if built is not None and not overrides:
            self._built_agents[key] = built
        return built

    def agent(
        self,
        name: str,
        fields: dict[str, Any],
        instructions: str,
        source: Source,
        path: Path_,
        folders: Sequence[Path],
        where: Where,
        *,
        body_line: int | None = None,
        body_path: Path_ | None = None,
    ) -> ScopedAgent | None:
        """An agent from its fields (front matter, or an inline step) and instructions."""
        where = replace(where, step=f"agent {name!r}")
        ok = True
        tools: list[Tool] = []
        for index, entry in enumerate(fields.get("tools") or []):
            made = self._make_tool(entry, (*path, "tools", index), folders, source)
            ok = ok and made is not None
            if made is not None:
                tools.append(made)
        handoffs: list[AgentStep] = []
        for index, ref in enumerate(fields.get("handoffs") or []):
            target = (folders[0] / ref).resolve() if isinstance(ref, str) else None
            if target is None:
                source.error((*path, "handoffs", index), "a handoff is an agent file's path")
                ok = False
                continue
            handoff = self.agent_from_file(target, (*path, "handoffs", index), source, where)
            ok = ok and handoff is not None
            if handoff is not None:
                handoffs.append(handoff)
        output = self.output(fields.get("output"), (*path, "output"), folders, source)
        template = None
        if fields.get("prompt") is not None:
            template = self.expression(
                fields["prompt"], (*path, "prompt"), where, template=True, source=source
            )
            ok = ok and template is not None
        body_template = None
        if "{{" in instructions or "{%" in instructions:
            body_template = self._body_template(
                instructions, source, where, body_line=body_line, body_path=body_path
            )
            ok = ok and body_template is not None
        model = self.model(fields.get("model"), (*path, "model"), source)
        if not ok or output is None:
            return None
        try:
            step = ScopedAgent(
                name,
                instructions=instructions,
                tools=tools,
                handoffs=handoffs,
                output=output,
                model=model,
                max_turns=fields.get("max_turns") or self.limits.max_turns or 10,
                temperature=fields.get("temperature") or 0.0,
                max_tokens=fields.get("max_tokens") or 512,
                description=fields.get("description"),
            )
        except ValueError as e:
            source.error(path, str(e))
            return None
        step.template = template
        step.instructions_template = body_template
        return step

    def _body_template(
        self,
        body: str,
        source: Source,
        where: Where,
        *,
        body_line: int | None,
        body_path: Path_ | None,
    ) -> jinja2.Template | None:
        if body_path is not None:  # inline instructions in a workflow file
            compiled = self.expression(body, body_path, where, template=True, source=source)
            return typing.cast("jinja2.Template | None", compiled)
        # An agent file's body: positions are lines of the file after the front matter.
        body_source = Source(file=source.file, text=source.text)
        start = body_line or 1
        # A block-style position: the body's line k is the file's line `start - 1 + k`.
        body_source.values[("body",)] = Pos(start - 1, 1, "|")
        compiled = self.expression(body, ("body",), where, template=True, source=body_source)
        source.problems.extend(body_source.problems)
        return typing.cast("jinja2.Template | None", compiled)

    def _make_tool(self, entry: Any, path: Path_, folder: Folders, source: Source) -> Tool | None:
        if isinstance(entry, str):
            ref = m.ToolRef(function=entry)
        else:
            parsed = self.validate(m.ToolRef, entry, path, "a tool", source)
            if parsed is None:
                return None
            ref = parsed
        at = path if isinstance(entry, str) else (*path, "function")
        fn = self.tool_function(ref.function, at, folder, source)
        if fn is None:
            return None
        try:
            made: Tool = tool(
                fn, name=ref.name, description=ref.description, side_effect=ref.side_effect
            )
        except Exception as e:
            source.error(at, f"cannot make a tool of {ref.function}: {type(e).__name__}: {e}")
            return None
        return made


def read_agent_text(shown: str, text: str, file: Path) -> AgentFile:
    """Split an agent file into front matter (YAML with positions) and body."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        source = Source(file=shown, text=text)
        source.data = {}
        return AgentFile(file, source, {}, text.strip(), 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        source = Source(file=shown, text=text)
        source.error((), "the front matter opened by '---' on line 1 has no closing '---'")
        return AgentFile(file, source, {}, "", 1)
    source = read_yaml(shown, "".join(lines[1:end]), line_offset=1)
    source.text = text
    meta = source.data
    if source.problems or meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        source.error((), "the front matter must be a mapping of keys to values")
        meta = {}
    body_lines = lines[end + 1 :]
    skipped = len(body_lines) - len("".join(body_lines).lstrip("\n").splitlines(keepends=True))
    return AgentFile(file, source, meta, "".join(body_lines).strip(), end + 2 + skipped)


def _by(key: Callable[..., Any]) -> Callable[[Any], Any]:
    """A vote's comparison key: the key expression over one vote, as `value`."""
    return lambda vote: key(value=vote)


def _divert_id(raw: Any) -> str | None:
    divert = raw.get("divert") if isinstance(raw, dict) else None
    if isinstance(divert, dict):
        return str(divert.get("id") or "divert")
    return None


def _keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that validates the value at `loc` inside `model`."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or n: f for n, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif isinstance(part, int):
            current = _element(current)
        else:
            current = _element(current, mapping=True)
        current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """`X` from `Annotated[X, ...]` and `X | None`."""
    for _ in range(5):
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            tp = args[0]
        elif args and type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
        else:
            break
    return tp


def _element(tp: Any, *, mapping: bool = False) -> Any:
    args = typing.get_args(_unwrap(tp))
    if not args:
        return None
    return args[-1] if mapping else args[0]


def _what(what: str, loc: Sequence[Any]) -> str:
    names = [p for p in loc[:-1] if isinstance(p, str)]
    return f"{names[-1]}" if names else what


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines() or [""], start=1):
        if re.search(rf"\b{re.escape(needle)}\b", line):
            return number
    return 1


def _shown(file: Path) -> str:
    """A path as shown in messages: relative to the working folder when inside it."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def iter_problems(sources: Sequence[Source]) -> Iterator[tuple[str, int, int, str]]:
    for source in sources:
        yield from source.problems
