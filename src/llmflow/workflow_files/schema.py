"""The structure of workflow files and agent files, as pydantic models.

Nested steps are kept as raw data (`RawStep`) here: the loader validates each step with the
model of its `kind` itself, so that an error's position is the step's own, and an unknown
kind gets a did-you-mean instead of a wall of union errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RawStep = Any
"""A step as written: checked by the loader against the model of its `kind`."""
OutputSpec = Any
"""`text`, an inline JSON Schema, or an import path `module:Type` (checked by the loader)."""
Expression = str
Number = Annotated[float, Field(ge=0)]

ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RESERVED_IDS = frozenset({"input", "steps"})


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class StepSpec(Spec):
    """Keys every step takes."""

    id: str | None = None
    kind: str
    description: str | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is not None and not ID.match(value):
            raise ValueError("a step id is letters, digits, '_' and '-', starting with a letter")
        if value in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved: choose another id")
        return value


class CodeSpec(StepSpec):
    function: str
    input: Expression | None = None


class LLMSpec(StepSpec):
    instructions: str
    prompt: str | None = None
    output: OutputSpec = "text"
    model: str | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(gt=0)] = 512
    grounded: Any = None
    """What the answer must be grounded in: an expression (`input.body`), or a
    GroundingOptions mapping (checked by the loader). Every number, amount, date, id, email
    address, URL and name the answer states must be stated there."""
    on_ungrounded: Literal["fail", "empty"] | None = None
    """What an ungrounded answer does: `fail` the step (default), or `empty`: answer null
    (nothing rather than an invention; a cascade tier answering null abstains)."""


class GroundingOptions(Spec):
    source: Expression
    """The text the output must be grounded in, e.g. `input.body`."""
    fields: list[str] | None = None
    """Only these fields of an object output are checked (default: every text and number)."""
    allowed: list[str] = Field(default_factory=list)
    """Text the output may state besides the source (our name, a signature)."""
    names: bool = True
    """Check capitalised names too (off for languages without capitals)."""


class ToolRef(Spec):
    function: str
    side_effect: bool = False
    needs_approval: bool | str = False
    """Each call waits for `llmflow approve|reject` (durable runs only); or `module:function`
    of (principal, arguments) saying which calls do (refunds above an amount)."""
    requires: list[str] | None = None
    """Permissions the run's principal must hold (its `permissions`)."""
    check: str | None = None
    """`module:function` of (principal, arguments): True allows the call, anything else
    refuses it (a string says why). The engine refuses, records and tells the model."""
    untrusted: bool = False
    """Its results come from outside: the model reads them marked as data."""
    name: str | None = None
    description: str | None = None


class AgentFields(Spec):
    """What an agent file's front matter and an agent step share."""

    description: str | None = None
    model: str | None = None
    tools: list[Any] | None = None
    """Each a tool name or import path, or a ToolRef mapping (checked by the loader)."""
    handoffs: list[str] | None = None
    output: OutputSpec | None = None
    prompt: str | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    max_turns: Annotated[int, Field(gt=0)] | None = None


class AgentFrontMatter(AgentFields):
    name: str | None = None


class AgentSpec(StepSpec, AgentFields):
    file: str | None = None
    instructions: str | None = None


class ToolStepSpec(StepSpec):
    function: str
    args: dict[str, Any] = Field(default_factory=dict)
    side_effect: bool = False


class GateSpec(StepSpec):
    when: Expression
    divert: RawStep | None = None
    reason: str | None = None


class ChainSpec(StepSpec):
    steps: Annotated[list[RawStep], Field(min_length=1)]
    result: Any = None


class RouteSpec(StepSpec):
    branches: Annotated[dict[str, RawStep], Field(min_length=1)]
    instructions: str | None = None
    classifier: RawStep | None = None
    prompt: str | None = None
    model: str | None = None
    default: str | None = None
    min_confidence: Annotated[float, Field(ge=0, le=1)] | None = None


OnError = Literal["fail_fast", "collect"]


class ParallelSpec(StepSpec):
    sections: Annotated[list[RawStep], Field(min_length=1)]
    merge: Any = None
    on_error: OnError = "fail_fast"
    max_concurrency: Annotated[int, Field(gt=0)] | None = None


class AtLeast(Spec):
    at_least: Annotated[int, Field(gt=0)]
    value: Any


class VoteSpec(StepSpec):
    step: RawStep
    n: Annotated[int, Field(gt=0, le=100)] | None = None
    models: Annotated[list[str], Field(min_length=1)] | None = None
    aggregate: Any = "majority"
    key: Expression | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_concurrency: Annotated[int, Field(gt=0)] | None = None


class OrchestrateSpec(StepSpec):
    instructions: str | None = None
    planner: RawStep | None = None
    prompt: str | None = None
    model: str | None = None
    max_tokens: Annotated[int, Field(gt=0)] = 1024
    workers: Annotated[list[RawStep], Field(min_length=1)]
    synthesiser: RawStep
    max_subtasks: Annotated[int, Field(gt=0, le=100)] | None = None
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    on_error: OnError = "collect"


class RefineSpec(StepSpec):
    generator: RawStep
    evaluator: RawStep
    max_rounds: Annotated[int, Field(gt=0, le=100)] | None = None


class Tier(Spec):
    step: RawStep
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class CascadeSpec(StepSpec):
    tiers: Annotated[list[Tier], Field(min_length=1)]
    audit: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of the items a cheap tier answers that the last tier also answers, as a live
    audit (`llmflow eval --live` reads the agreement)."""


class Rule(Spec):
    pattern: str
    label: str


class RulesSpec(StepSpec):
    rules: Annotated[list[Rule], Field(min_length=1)]
    text: str | None = None


class MLSpec(StepSpec):
    model: str | None = None
    train: str | None = None
    """A .jsonl file of labelled examples to train on when the file is loaded."""
    label_field: str = "label"
    text: str | None = None
    char_ngrams: bool = False
    """Add character 2-5-grams (short texts with many labels)."""
    out_of_scope: str | None = None
    """A label whose examples teach the tier what to leave to the next tier (e.g. `oos`)."""
    novelty: Annotated[float, Field(gt=0, le=1)] | None = None
    """Abstain on inputs more unlike the training rows than this share of them (e.g. 0.98)."""


class ClassifySpec(StepSpec):
    labels: Annotated[list[str], Field(min_length=2)]
    instructions: str = "Classify the input."
    prompt: str | None = None
    model: str | None = None
    votes: Annotated[int, Field(gt=0, le=20)] = 5


class ClaimsSpec(StepSpec):
    reply: Expression
    """The reply to check, e.g. `steps.answer.message`."""
    on_mismatch: Literal["rewrite", "block"] = "rewrite"
    message: str | None = None
    """The reply sent instead of one claiming what did not happen (default: an apology)."""


class GroundingSpec(StepSpec, GroundingOptions):
    text: Expression
    """What to check, e.g. `steps.summary` (in a refine evaluator: `output`)."""


KINDS: dict[str, type[StepSpec]] = {
    "code": CodeSpec,
    "llm": LLMSpec,
    "agent": AgentSpec,
    "tool": ToolStepSpec,
    "gate": GateSpec,
    "chain": ChainSpec,
    "route": RouteSpec,
    "parallel": ParallelSpec,
    "vote": VoteSpec,
    "orchestrate": OrchestrateSpec,
    "refine": RefineSpec,
    "cascade": CascadeSpec,
    "rules": RulesSpec,
    "ml": MLSpec,
    "classify": ClassifySpec,
    "claims": ClaimsSpec,
    "grounding": GroundingSpec,
}

InputType = Literal["text", "jsonl", "json", "csv", "email", "value"]


class InputSpec(Spec):
    type: InputType = "text"
    key: str | None = None
    pattern: str = "*"
    json_: bool = Field(False, alias="json")
    schema_: Any = Field(None, alias="schema")


class ReportSpec(Spec):
    template: str
    file: str = "report.md"


class OutputFiles(Spec):
    results: str = "results.jsonl"
    report: Any = None
    """A ReportSpec mapping, or a list of them (checked by the loader)."""
    columns: dict[str, Expression] | None = None


class Limits(Spec):
    concurrency: Annotated[int, Field(gt=0, le=1000)] | None = None
    max_turns: Annotated[int, Field(gt=0)] | None = None
    max_rounds: Annotated[int, Field(gt=0, le=100)] | None = None
    max_subtasks: Annotated[int, Field(gt=0, le=100)] | None = None
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None


class PrincipalSpec(Spec):
    id: Expression
    """Who the input is from, an expression over `input` (e.g. `input.customer`)."""
    kind: str = "user"
    permissions: list[str] = Field(default_factory=list)
    """What they may do (tools' `requires` name these)."""
    attributes: dict[str, Expression] = Field(default_factory=dict)
    """More of what code knows about them, each an expression over `input`."""


class WorkflowSpec(Spec):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    model: str | None = None
    input: InputSpec = Field(default_factory=InputSpec)
    principal: Expression | PrincipalSpec | None = None
    """Who each item is from and what they may act on, set by code from the item: an
    expression for the id, or a mapping (id, kind, permissions, attributes)."""
    steps: Annotated[list[RawStep], Field(min_length=1)]
    result: Any = None
    output: OutputFiles = Field(default_factory=OutputFiles)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if "/" in value or not value.strip():
            raise ValueError("a workflow name must be non-empty and contain no '/'")
        return value
