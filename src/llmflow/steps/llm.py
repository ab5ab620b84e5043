"""The llm step: instructions + the input rendered into a prompt + a typed output.

The output type may be `str` (free text), a pydantic model, a `Literal[...]`, an enum or any
type pydantic validates. Non-object types are wrapped as `{"value": ...}` on the wire, since
providers constrain objects best. An output that fails validation is sent back with the
validation error, up to `LLMFLOW_OUTPUT_REPAIRS` times (2 by default; a structured output cut
off at max_tokens is asked again with twice the tokens); then `OutputValidationError` names
the step. Only valid outputs are kept in the response cache.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Generic

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypeVar

from ..errors import OutputValidationError, pydantic_message
from ..models.client import Message, ModelRequest, ModelResponse, Sampling
from .base import In, Step
from .context import RunContext
from .prompt import PromptTemplate, read_instructions

Out = TypeVar("Out", default=Any)


class LLMStep(Step[In, Out], Generic[In, Out]):
    """One model call with instructions and a typed output (Software 3.0)."""

    kind = "llm"

    def __init__(
        self,
        name: str,
        *,
        instructions: str | Path,
        output: Any = str,
        prompt: str | None = None,
        model: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.instructions = read_instructions(instructions)
        """The system message."""
        self.output = output
        """The output type."""
        self.model = model
        """The model; None uses the run's model."""
        self.sampling = Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed)
        self._prompt = PromptTemplate(name, prompt)
        self._adapter: TypeAdapter[Any] | None = None
        self.schema: dict[str, Any] | None = None
        """The JSON schema sent to the model (None for free text)."""
        self._wrapped = False
        if output is not str:
            self._adapter = TypeAdapter(output)
            schema = self._adapter.json_schema()
            if schema.get("type") != "object":
                schema = {
                    "type": "object",
                    "properties": {"value": schema},
                    "required": ["value"],
                    **({"$defs": schema.pop("$defs")} if "$defs" in schema else {}),
                }
                self._wrapped = True
            self.schema = schema

    def variant(
        self, *, model: str | None = None, temperature: float | None = None, seed: int | None = None
    ) -> LLMStep[In, Out]:
        """A copy with another model or sampling (vote runs variants of one step)."""
        clone = copy.copy(self)
        clone.model = model if model is not None else self.model
        clone.sampling = dataclasses.replace(
            self.sampling,
            temperature=self.sampling.temperature if temperature is None else temperature,
            seed=self.sampling.seed if seed is None else seed,
        )
        return clone

    def render(self, input: In) -> str:
        """The user message for `input`."""
        return self._prompt.render(input)

    async def run(self, input: In, ctx: RunContext) -> Out:
        messages = [Message("system", self.instructions), Message("user", self.render(input))]
        sampling = self.sampling
        repairs = ctx.gateway.settings.output_repairs
        for attempt in range(repairs + 1):
            request = ModelRequest(
                messages=messages,
                output_schema=self.schema,
                schema_name=self.name.replace("-", "_"),
                sampling=sampling,
            )
            response = await ctx.gateway.complete(
                request, model=self.model or ctx.model, observer=ctx, validate=self.parse
            )
            try:
                return self.parse(response)
            except (ValidationError, ValueError) as e:
                problem = _describe_problem(e, response, sampling)
                if attempt == repairs:
                    after = {0: "", 1: " after a retry"}.get(repairs, f" after {repairs} retries")
                    raise OutputValidationError(
                        ctx.path, f"the model's output is invalid{after}: {problem}"
                    ) from e
                messages = [
                    *messages,
                    Message("assistant", response.text or ""),
                    Message(
                        "user",
                        f"Your answer was invalid: {problem}. Answer again, following the "
                        "required format exactly.",
                    ),
                ]
                if response.finish_reason == "length":
                    sampling = dataclasses.replace(sampling, max_tokens=sampling.max_tokens * 2)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def parse(self, response: ModelResponse) -> Out:
        """The typed output of a response; raises ValueError or ValidationError."""
        text = response.text or ""
        if self._adapter is None:
            if not text.strip():
                raise ValueError("the answer is empty")
            return text.strip()  # type: ignore[return-value]
        # strict=False: grammar-constrained local models may put raw newlines inside strings.
        data = json.loads(text, strict=False)
        if self._wrapped:
            if not isinstance(data, dict) or "value" not in data:
                raise ValueError('expected a JSON object {"value": ...}')
            data = data["value"]
        return self._adapter.validate_python(data)  # type: ignore[no-any-return]


def _describe_problem(error: Exception, response: ModelResponse, sampling: Sampling) -> str:
    if response.finish_reason == "length":
        return f"the output was cut off at max_tokens={sampling.max_tokens}"
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {pydantic_message(e)}"
            for e in error.errors()
        )
    return str(error)


llm = LLMStep
"""An llm step: `llm(name, instructions=..., output=..., prompt=...)`. `instructions` is
text, or a `Path` to a Markdown file; `prompt` is a Jinja template over the input's
fields (default: the input rendered as text)."""
