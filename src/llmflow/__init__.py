"""llmflow: build, run, cost and operate LLM workflows.

The public names are listed once, here; everything else is internal and may change.

Importing llmflow is cheap: the errors load at once, every other public name on first use
(PEP 562), so the command line starts without the Agents SDK, pydantic or the pricing data.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import (
    BudgetExceededError,
    ConfigError,
    DefinitionError,
    InputError,
    LLMFlowError,
    MissingCredentialsError,
    ModelCallError,
    ModelTimeoutError,
    OutputValidationError,
    ProviderDownError,
    RunError,
    SpecError,
    StepError,
    TransientModelError,
    UnknownModelError,
)

if TYPE_CHECKING:  # the type checker sees plain imports; at run time they load on first use
    from .models.budget import Budget
    from .models.client import (
        Message,
        ModelClient,
        ModelRequest,
        ModelResponse,
        Sampling,
        ToolCall,
        ToolSpec,
        Usage,
    )
    from .models.gateway import Gateway, ModelCall, ProviderLimits
    from .patterns.cascade import CascadeResult, cascade
    from .patterns.chain import Divert, Stop, assign, chain, gate
    from .patterns.grounded import Grounding, grounding_check
    from .patterns.orchestrate import Plan, Subtask, Synthesis, WorkItem, WorkResult, orchestrate
    from .patterns.parallel import Failed, VoteResult, at_least, best_of, majority, parallel, vote
    from .patterns.refine import Candidate, Draft, Evaluation, RefineResult, refine
    from .patterns.route import RouteDecision, route
    from .runtime.runner import (
        BatchResult,
        Item,
        ItemResult,
        RunInterrupted,
        Workflow,
        run,
        run_batch,
    )
    from .settings import Settings
    from .steps.agent import AgentStep, Tool, agent, tool
    from .steps.base import CodeStep, Step, code
    from .steps.classify import LLMClassifier, classify
    from .steps.context import RunContext, RunHooks
    from .steps.label import Label
    from .steps.llm import LLMStep, llm
    from .steps.ml import MLStep, RulesStep, rules
    from .store.sqlite import RunStore

_LAZY: dict[str, tuple[str, ...]] = {  # the names imported above, by module
    ".models.budget": ("Budget",),
    ".models.client": (
        "Message",
        "ModelClient",
        "ModelRequest",
        "ModelResponse",
        "Sampling",
        "ToolCall",
        "ToolSpec",
        "Usage",
    ),
    ".models.gateway": ("Gateway", "ModelCall", "ProviderLimits"),
    ".patterns.cascade": ("CascadeResult", "cascade"),
    ".patterns.chain": ("Divert", "Stop", "assign", "chain", "gate"),
    ".patterns.grounded": ("Grounding", "grounding_check"),
    ".patterns.orchestrate": (
        "Plan",
        "Subtask",
        "Synthesis",
        "WorkItem",
        "WorkResult",
        "orchestrate",
    ),
    ".patterns.parallel": (
        "Failed",
        "VoteResult",
        "at_least",
        "best_of",
        "majority",
        "parallel",
        "vote",
    ),
    ".patterns.refine": ("Candidate", "Draft", "Evaluation", "RefineResult", "refine"),
    ".patterns.route": ("RouteDecision", "route"),
    ".steps.context": ("RunContext", "RunHooks"),
    ".runtime.runner": (
        "BatchResult",
        "Item",
        "ItemResult",
        "RunInterrupted",
        "Workflow",
        "run",
        "run_batch",
    ),
    ".settings": ("Settings",),
    ".steps.agent": ("AgentStep", "Tool", "agent", "tool"),
    ".steps.base": ("CodeStep", "Step", "code"),
    ".steps.classify": ("LLMClassifier", "classify"),
    ".steps.label": ("Label",),
    ".steps.llm": ("LLMStep", "llm"),
    ".steps.ml": ("MLStep", "RulesStep", "rules"),
    ".store.sqlite": ("RunStore",),
}

__version__ = "0.1.0"

__all__ = [
    "AgentStep",
    "BatchResult",
    "Budget",
    "BudgetExceededError",
    "Candidate",
    "CascadeResult",
    "CodeStep",
    "ConfigError",
    "DefinitionError",
    "Divert",
    "Draft",
    "Evaluation",
    "Failed",
    "Gateway",
    "Grounding",
    "InputError",
    "Item",
    "ItemResult",
    "LLMClassifier",
    "LLMFlowError",
    "LLMStep",
    "Label",
    "MLStep",
    "Message",
    "MissingCredentialsError",
    "ModelCall",
    "ModelCallError",
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "ModelTimeoutError",
    "OutputValidationError",
    "Plan",
    "ProviderDownError",
    "ProviderLimits",
    "RefineResult",
    "RouteDecision",
    "RulesStep",
    "RunContext",
    "RunError",
    "RunHooks",
    "RunInterrupted",
    "RunStore",
    "Sampling",
    "Settings",
    "SpecError",
    "Step",
    "StepError",
    "Stop",
    "Subtask",
    "Synthesis",
    "Tool",
    "ToolCall",
    "ToolSpec",
    "TransientModelError",
    "UnknownModelError",
    "Usage",
    "VoteResult",
    "WorkItem",
    "WorkResult",
    "Workflow",
    "agent",
    "assign",
    "at_least",
    "best_of",
    "cascade",
    "chain",
    "classify",
    "code",
    "gate",
    "grounding_check",
    "llm",
    "majority",
    "orchestrate",
    "parallel",
    "refine",
    "route",
    "rules",
    "run",
    "run_batch",
    "tool",
    "vote",
]

_HOME = {name: module for module, names in _LAZY.items() for name in names}

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays an error there

    def __getattr__(name: str) -> object:
        """Import a public name's module on first use, and keep the name."""
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
