"""The exceptions llmflow raises, split by who has to act.

```
LLMFlowError
├── ConfigError                 the user must change something (a flag, a file, a key)
│   ├── UnknownModelError       a model name no provider resolves
│   ├── MissingCredentialsError a provider needs a key that is not set
│   ├── InputError              an input (file, folder, mailbox) cannot be read
│   └── SpecError               a workflow or agent file is wrong (file:line:column)
└── RunError                    a run failed while executing
    ├── StepError               a step failed; carries the step path
    │   └── OutputValidationError  an LLM output failed its type, after its repairs
    ├── BudgetExceededError     a money, token or request budget would be exceeded
    ├── ProviderDownError       a provider keeps failing: calls fail fast, the run stops
    └── ModelCallError          a provider call failed
        ├── TransientModelError retryable: rate limit, timeout, 5xx, malformed answer
        └── ModelTimeoutError   the gateway's timeout expired (after retries)
```

Every error carries the context needed to act on it (step path, run id, file) and its
message names the fix where there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
"""What pydantic puts before a validator's own message."""


def pydantic_message(error: Mapping[str, Any]) -> str:
    """One of a pydantic ValidationError's `errors()` as the user reads it: a validator's
    `raise ValueError("a step id is ...")` reads "a step id is ...", not "Value error, a step
    id is ..." (every place that shows pydantic errors formats them with this)."""
    message = str(error["msg"])
    for prefix in PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message


class LLMFlowError(Exception):
    """Root of every error llmflow raises on purpose."""


class ConfigError(LLMFlowError):
    """The user or their configuration is at fault: the message says what to change."""


class DefinitionError(ConfigError, ValueError):
    """A workflow put together wrongly in code (a chain with no steps, a cascade whose tiers
    share a name): raised when the step is built, before anything runs. A `ValueError` too,
    as argument errors are in Python."""


class UnknownModelError(ConfigError):
    """A model name that no provider resolves."""


class MissingCredentialsError(ConfigError):
    """A provider needs a credential that is not set."""


class UnknownRunError(ConfigError):
    """No run in this run store has the id (or id prefix) given."""


class InputError(ConfigError):
    """An input cannot be read or parsed."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source
        """The file (or item) the input came from."""


class SpecError(ConfigError):
    """A workflow file or agent file has mistakes. The message lists every one as
    `file:line:column: what is wrong (how to fix it)`; `problems` holds them, and `file`,
    `line`, `column` are the first one's position."""

    def __init__(self, problems: list[tuple[str, int, int, str]]) -> None:
        if not problems:
            raise ValueError("a SpecError needs at least one problem")
        self.problems = sorted(set(problems), key=lambda p: (p[0], p[1], p[2], p[3]))
        """(file, line, column, message) of every problem, in file order."""
        super().__init__(
            "\n".join(f"{f}:{line}:{col}: {msg}" for f, line, col, msg in self.problems)
        )
        self.file, self.line, self.column, _ = self.problems[0]


class RunError(LLMFlowError):
    """A run failed while executing."""


class StepError(RunError):
    """A step failed. `path` is the step's path in the workflow, e.g. `triage/classify`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"step {path!r}: {message}")
        self.path = path
        self.reason = message


class OutputValidationError(StepError):
    """An LLM output did not match the step's output type, even after its repairs
    (`LLMFLOW_OUTPUT_REPAIRS`)."""


class BudgetExceededError(RunError):
    """A call would take a run past its budget. `budget` is `cost`, `tokens` or `requests`."""

    def __init__(self, message: str, *, budget: str, scope: str = "run") -> None:
        super().__init__(message)
        self.budget = budget
        self.scope = scope
        """What the budget covers: `run` (the whole batch) or `item`."""


@dataclass(frozen=True, slots=True)
class ProviderFault:
    """A failure that says a provider is unusable as configured, not just busy: connection
    refused, key refused (401/403), endpoint or model not found (404). The gateway's circuit
    breaker opens after a few in a row."""

    what: str
    """What failed, e.g. `connection refused` or `HTTP 401 (the key was refused)`."""
    fix: str
    """What the user should do, e.g. `set OPENAI_API_KEY to a valid key`."""


class ProviderDownError(RunError):
    """A provider keeps failing (connection refused, key refused, endpoint not found, or most
    recent requests failing): the gateway's circuit breaker is open and calls to it fail fast
    with this one error. It stops the whole run (`scope` is `run`, as for a run's budget):
    what finished is kept, and `llmflow resume` continues once the cause is fixed."""

    scope = "run"
    """What the error stops: the whole run, not just the item it happened in."""

    def __init__(self, endpoint: str, what: str, fix: str) -> None:
        super().__init__(f"provider {endpoint} is down: {what}. Fix: {fix}")
        self.endpoint = endpoint
        """The provider's URL (credentials removed), or its name."""
        self.what = what
        """What failed."""
        self.fix = fix
        """What to do about it."""


class ModelCallError(RunError):
    """A model provider call failed for good. `fault` is set when the failure says the
    provider is unusable as configured (see `ProviderFault`)."""

    def __init__(
        self, message: str, *, model: str | None = None, fault: ProviderFault | None = None
    ) -> None:
        super().__init__(f"{model}: {message}" if model else message)
        self.model = model
        self.fault = fault


class TransientModelError(ModelCallError):
    """A failure worth retrying: rate limit, timeout, server error, output cut off.

    `retry_after` is the provider's requested wait in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        retry_after: float | None = None,
        fault: ProviderFault | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, model=model, fault=fault)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        """The provider said "slow down" (429): a sign of load, not of a provider down."""


class ModelTimeoutError(ModelCallError):
    """A model call did not finish within the gateway's timeout."""
