"""llmflow: build, run, cost and operate LLM workflows.

The public names are listed once, here; everything else is internal and may change.
"""

from .errors import (
    ConfigError,
    InputError,
    LLMFlowError,
    MissingCredentialsError,
    ModelCallError,
    ModelTimeoutError,
    OutputValidationError,
    RunError,
    StepError,
    TransientModelError,
    UnknownModelError,
)
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
from .patterns.chain import Divert, Stop, assign, chain, gate
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
from .steps.base import CodeStep, Step, code
from .steps.llm import LLMStep, llm
from .store.sqlite import RunStore

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "CodeStep",
    "ConfigError",
    "Divert",
    "Gateway",
    "InputError",
    "Item",
    "ItemResult",
    "LLMFlowError",
    "LLMStep",
    "Message",
    "MissingCredentialsError",
    "ModelCall",
    "ModelCallError",
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "ModelTimeoutError",
    "OutputValidationError",
    "ProviderLimits",
    "RunContext",
    "RunError",
    "RunHooks",
    "RunInterrupted",
    "RunStore",
    "Sampling",
    "Settings",
    "Step",
    "StepError",
    "Stop",
    "ToolCall",
    "ToolSpec",
    "TransientModelError",
    "UnknownModelError",
    "Usage",
    "Workflow",
    "assign",
    "chain",
    "code",
    "gate",
    "llm",
    "run",
    "run_batch",
]
