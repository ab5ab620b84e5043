"""llmflow: build, run, cost and operate LLM workflows.

The public names are listed once, here; everything else is internal and may change.
"""

from .errors import (
    BudgetExceededError,
    ConfigError,
    InputError,
    LLMFlowError,
    MissingCredentialsError,
    ModelCallError,
    ModelTimeoutError,
    OutputValidationError,
    RunError,
    SpecError,
    StepError,
    TransientModelError,
    UnknownModelError,
)
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
from .patterns.orchestrate import Plan, Subtask, Synthesis, WorkItem, WorkResult, orchestrate
from .patterns.parallel import Failed, VoteResult, at_least, best_of, majority, parallel, vote
from .patterns.refine import Candidate, Draft, Evaluation, RefineResult, refine
from .patterns.route import RouteDecision, route
from .runtime.context import RunContext, RunHooks
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
from .steps.label import Label
from .steps.llm import LLMStep, llm
from .steps.ml import MLStep, RulesStep, rules
from .store.sqlite import RunStore

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
    "Divert",
    "Draft",
    "Evaluation",
    "Failed",
    "Gateway",
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
    "ProviderLimits",
    "RefineResult",
    "RouteDecision",
    "RulesStep",
    "RunContext",
    "RunError",
    "RunHooks",
    "RunInterrupted",
    "RunStore",
    "SpecError",
    "Sampling",
    "Settings",
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
