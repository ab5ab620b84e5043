"""Durable runs: resume after a crash without repeating finished model calls or effects
(checkpointed in the run store, `ledger.py`), human approvals that wait for days and workers
sharing a PostgreSQL queue (on DBOS Transact).

```python
from llmflow import durable

durable.launch()                      # SQLite in LLMFLOW_HOME, or LLMFLOW_DATABASE_URL
batch = await durable.run_durable(workflow, items, spec=..., gateway=gateway)
```

The CLI (`llmflow run`) runs durably by default; `llmflow resume`, `llmflow approvals`,
`llmflow approve|reject` and `llmflow worker` operate on durable runs. See docs/deploy.md.
"""

from typing import TYPE_CHECKING, Any

from ..steps.effects import Decision
from .actions import ActionStep, action, append_line_once, write_once
from .batch import CodeChangedError, RunSpec, fingerprint, keys_digest, run_durable
from .effects import DurableEffects, current_idempotency_key, idempotency_key, in_durable_run
from .engine import DurableSettings, configure, launch, shutdown
from .gateway import DurableGateway
from .serialization import JsonSerializer, RecordedError, new_encryption_key

if TYPE_CHECKING:
    from .approval import ApprovalRejectedError, ApproveStep, approve, request_approval

_APPROVAL = {"ApprovalRejectedError", "ApproveStep", "approve", "request_approval"}
"""Loaded on first use: approvals wait in DBOS, which runs without them never import."""


def __getattr__(name: str) -> Any:
    if name in _APPROVAL:
        from . import approval

        return getattr(approval, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActionStep",
    "ApprovalRejectedError",
    "ApproveStep",
    "CodeChangedError",
    "Decision",
    "DurableEffects",
    "DurableGateway",
    "DurableSettings",
    "JsonSerializer",
    "RecordedError",
    "RunSpec",
    "action",
    "append_line_once",
    "approve",
    "configure",
    "current_idempotency_key",
    "fingerprint",
    "idempotency_key",
    "in_durable_run",
    "keys_digest",
    "launch",
    "new_encryption_key",
    "request_approval",
    "run_durable",
    "shutdown",
    "write_once",
]
