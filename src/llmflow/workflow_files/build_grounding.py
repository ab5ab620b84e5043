"""The grounding check in workflow files: an llm step's `grounded:` option and the
`grounding` step kind (a gate's test in a chain, a refine loop's evaluator).

    - id: summary
      kind: llm
      instructions: Summarise the mail in two sentences.
      prompt: "{{ input.body }}"
      grounded: input.body        # every number, date, id, ... it states must be in the mail
      on_ungrounded: empty        # answer null; or fail (the default)

The answer is checked by code (`steps.grounding.ungrounded`); the verdict is recorded as the
step's child `grounded`, with the refused values. An ungrounded answer fails the step, naming
them, or (`on_ungrounded: empty`) becomes null: a cascade tier that answers null abstains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import StepError
from ..patterns.grounded import GroundingCheck, text_of
from ..steps.base import Step
from ..steps.context import RunContext
from . import schema as m
from .check import Checker, Where
from .scope import Scope, ScopedLLM, scope_of
from .source import Path_, did_you_mean

GROUNDED_FORMS = (
    "grounded is an expression naming the text the answer must be grounded in (e.g. "
    "input.body), or a mapping with source and optionally fields, allowed, names"
)


@dataclass(slots=True)
class GroundedAnswer:
    """An llm step's answer, accepted only when grounded in its source."""

    check: GroundingCheck
    source: Callable[..., Any]
    written: str
    """The source expression as written, for messages."""
    on_ungrounded: Literal["fail", "empty"]

    async def __call__(self, answer: Any, scope: Scope, ctx: RunContext) -> Any:
        checked = {"output": answer, "source": text_of(self.source(**scope))}
        verdict = await self.check.invoke(checked, ctx, self.check.name)
        if verdict.passed:
            return answer
        if self.on_ungrounded == "empty":
            return None
        raise StepError(
            ctx.path,
            f"ungrounded answer refused: it states {', '.join(verdict.ungrounded)}, which "
            f"{self.written} does not (grounded: {self.written}); on_ungrounded: empty "
            "answers null instead",
        )


class GroundingBuilder(Checker):
    """Builds `grounding` steps and the `grounded:` option of llm steps."""

    def _grounding(
        self, spec: m.GroundingSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        text = self.expression(spec.text, (*path, "text"), where)
        source = self.expression(spec.source, (*path, "source"), where)
        if text is None or source is None:
            return None
        return GroundingCheck(
            name,
            text=lambda value: text(**scope_of(value)),
            source=lambda value: source(**scope_of(value)),
            fields=spec.fields,
            allowed=spec.allowed,
            names=spec.names,
        )

    def grounded_answer(self, spec: m.LLMSpec, step: ScopedLLM, path: Path_, where: Where) -> bool:
        """Attach an llm step's `grounded:` check to it; False when it has problems
        (recorded)."""
        if spec.grounded is None:
            if spec.on_ungrounded is not None:
                self.source.key_error(
                    (*path, "on_ungrounded"),
                    "on_ungrounded needs grounded: <expression>, the text the answer must be "
                    "grounded in (e.g. grounded: input.body)",
                )
                return False
            return True
        here = (*path, "grounded")
        if isinstance(spec.grounded, str):
            options: m.GroundingOptions | None = m.GroundingOptions(source=spec.grounded)
            source_path = here
        elif isinstance(spec.grounded, dict):
            options = self.validate(m.GroundingOptions, spec.grounded, here, "grounded")
            source_path = (*here, "source")
        else:
            self.source.error(here, GROUNDED_FORMS)
            return False
        if options is None:
            return False
        source = self.expression(options.source, source_path, where)
        ok = source is not None
        if options.fields is not None:
            ok = self._check_fields(options.fields, step, (*here, "fields")) and ok
        if not ok:
            return False
        step.grounding = GroundedAnswer(
            check=GroundingCheck(
                "grounded",
                text=lambda checked: checked["output"],
                source=lambda checked: checked["source"],
                fields=options.fields,
                allowed=options.allowed,
                names=options.names,
            ),
            source=source,
            written=options.source,
            on_ungrounded=spec.on_ungrounded or "fail",
        )
        return True

    def _check_fields(self, fields: list[str], step: ScopedLLM, path: Path_) -> bool:
        if step.schema is None:
            self.source.error(
                path, "fields picks fields of an object output, and this step answers text: "
                "leave fields out (the whole answer is checked)"
            )  # fmt: skip
            return False
        known = list(step.schema.get("properties", {}))
        ok = True
        for index, name in enumerate(fields):
            if name not in known:
                self.source.error(
                    (*path, index),
                    f"unknown field {name!r}{did_you_mean(name, known)}: the output has "
                    f"{', '.join(known) or 'no fields'}",
                )
                ok = False
        return ok
