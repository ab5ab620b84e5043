"""Workflow-file steps -> library steps, checking everything on the way.

The builder walks the steps as written, validates each against the model of its `kind`, and
builds it with the library's own constructors (`llm`, `agent`, `chain`, `assign`, `gate`,
`route`, `parallel`, `vote`, `orchestrate`, `refine`, `cascade`, `rules`, `MLStep`). Every
problem (a key, a reference, a tool, a schema, a file) is recorded with its position and the
walk goes on, so one run reports every mistake; nothing is built for a file with problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..patterns.chain import Divert, Stop, assign, chain, gate
from ..steps.base import Step
from ..steps.claims import claims_match_actions, reply_text
from . import schema as m
from .agents import AgentBuilder
from .build_classifiers import ClassifierBuilder
from .build_grounding import GroundingBuilder
from .build_patterns import PatternBuilder
from .check import (
    KIND_NAMES,
    Where,
)
from .scope import (
    ScopedCode,
    ScopedLLM,
    SpecChain,
    ToolCallStep,
    scope_from_state,
    scope_of,
)
from .source import Path_, did_you_mean


class Builder(AgentBuilder, PatternBuilder, ClassifierBuilder, GroundingBuilder):
    """Builds the steps of one workflow file (and the agent files it uses)."""

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
        if not self.grounded_answer(spec, step, path, where):
            return None
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

    def _claims(
        self, spec: m.ClaimsSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        reply = self.expression(spec.reply, (*path, "reply"), where)
        if reply is None:
            return None
        message = spec.message
        return claims_match_actions(
            name,
            reply=lambda value: reply_text(reply(**scope_of(value))),
            on_mismatch=spec.on_mismatch,
            rewrite=None if message is None else lambda _mismatches, _reply: message,
        )

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


def _divert_id(raw: Any) -> str | None:
    divert = raw.get("divert") if isinstance(raw, dict) else None
    if isinstance(divert, dict):
        return str(divert.get("id") or "divert")
    return None
