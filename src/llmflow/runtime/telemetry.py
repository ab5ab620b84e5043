"""OpenTelemetry export of runs: an observer next to the run store's recorder.

With `LLMFLOW_OTEL=1`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, every run, item, step, model call and tool call
becomes a span, exported over OTLP/HTTP (`telemetry_otlp.py`), named and attributed after the
GenAI semantic conventions (`telemetry_genai.py`). Message content is added only with
`LLMFLOW_OTEL_CONTENT=1`. `LLMFLOW_OTEL=0` turns the export off even when an endpoint is set.
Off by default: then nothing is exported and OpenTelemetry is not even imported.

The spans nest as the run does: the run > its items > the steps, as the workflow nests them
(`route > parallel > agent > tool`) > the model calls each step made. Hooks only learn of a
step when it ends, after its sub-steps: a step's span id is drawn when its first child (a
sub-step or a model call) ends, and the step's own span takes it when it ends. The run's
trace and span ids come from its id, so the items of a durable run that run in other
processes (workers) join the same trace.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigError
from ..models.gateway import ModelCall
from ..redact import redact
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from .telemetry_genai import IN_PROCESS, Attributes, call_span, clean, error_type, step_span

INSTALL = "pip install 'llmflow[otel]'"
"""What installs the export's packages (opentelemetry-sdk and its OTLP/HTTP exporter)."""


class TelemetrySettings(BaseSettings):
    """Whether and where runs are exported, from the environment or `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    otel: bool | None = Field(default=None, validation_alias="LLMFLOW_OTEL")
    """1: export spans over OTLP; 0: never; unset: when an OTLP endpoint is configured."""
    content: bool = Field(default=False, validation_alias="LLMFLOW_OTEL_CONTENT")
    """Add message content (prompts, outputs, tool arguments and results) to the spans."""
    endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    """The collector's base URL (spans go to `<endpoint>/v1/traces`)."""
    traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    """The full URL spans are posted to (wins over `endpoint`)."""

    @property
    def enabled(self) -> bool:
        if self.otel is not None:
            return self.otel
        return bool(self.endpoint or self.traces_endpoint)

    @property
    def url(self) -> str | None:
        """Where spans are posted; None: the exporter's default (http://localhost:4318)."""
        if self.traces_endpoint:
            return self.traces_endpoint
        if self.endpoint:
            return f"{self.endpoint.rstrip('/')}/v1/traces"
        return None


_CONFIG_NAMES = (
    "LLMFLOW_OTEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def telemetry_hooks() -> tuple[RunHooks, ...]:
    """The export's observer when it is configured (see the module's docstring), else none.

    Raises `ConfigError` naming the extra to install when the export is asked for and the
    OpenTelemetry packages are missing."""
    if not any(os.environ.get(n) for n in _CONFIG_NAMES) and not os.path.exists(".env"):
        return ()  # the common case, without reading settings
    settings = TelemetrySettings()
    if not settings.enabled:
        return ()
    try:
        from .telemetry_otlp import exporter
    except ImportError as e:
        raise ConfigError(
            f"OpenTelemetry export is on (LLMFLOW_OTEL or OTEL_EXPORTER_OTLP_ENDPOINT is set) "
            f"but its packages are not installed ({e.name or e}): {INSTALL}, or unset "
            "LLMFLOW_OTEL / set LLMFLOW_OTEL=0"
        ) from e
    return (SpanHooks(exporter(settings.url), content=settings.content),)


# -- spans, as the hooks build them ---------------------------------------------------------

SpanKind = Literal["internal", "client"]


@dataclass(slots=True, kw_only=True)
class SpanData:
    """One finished span, before it is handed to OpenTelemetry."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    """None: the root of its trace."""
    start: float
    """Seconds since the epoch."""
    end: float
    attributes: Attributes
    kind: SpanKind = "internal"
    error: str | None = None
    """Why it failed (the span's status is then ERROR)."""


class SpanSink(Protocol):
    """Where finished spans go (`telemetry_otlp.OtlpExporter`)."""

    def emit(self, span: SpanData) -> None: ...

    def flush(self, *, wait: bool = ...) -> None: ...


def new_span_id() -> int:
    return secrets.randbits(64) or 1


def run_trace_id(run_id: str) -> int:
    """A run's trace id, the same in every process that runs its items."""
    return int.from_bytes(hashlib.sha256(f"trace:{run_id}".encode()).digest()[:16]) or 1


def run_span_id(run_id: str) -> int:
    """The span id of a run's span, the same in every process."""
    return int.from_bytes(hashlib.sha256(f"run:{run_id}".encode()).digest()[:8]) or 1


@dataclass(slots=True)
class _Pending:
    """A step whose span id its children already use; its span comes when it ends."""

    span_id: int = field(default_factory=new_span_id)
    start: float = float("inf")
    end: float = 0.0


@dataclass(slots=True)
class _Scope:
    """One item's (or a run's, or a single `run()`'s) spans in the making."""

    trace_id: int
    parent_id: int | None
    """The span the scope's top-level steps hang under (the item's, or the run's)."""
    pending: dict[str, _Pending] = field(default_factory=dict)
    span_id: int | None = None
    """The item's own span id."""


Key = tuple[str | None, object]


class SpanHooks(RunHooks):
    """Run hooks that turn a run into spans and hand them to a `SpanSink`."""

    def __init__(self, sink: SpanSink, *, content: bool = False) -> None:
        self.sink = sink
        self.content = content
        self._scopes: dict[Key, _Scope] = {}
        self._runs: dict[str, tuple[float, bool]] = {}  # run id -> (started at, resuming)
        self._lock = threading.Lock()

    # -- the run and its items --------------------------------------------------------------

    def on_run_start(self, ctx: RunContext, *, resuming: bool = False, **kwargs: Any) -> None:
        if ctx.run_id is not None:
            self._runs[ctx.run_id] = (time.time(), resuming)

    def on_run_end(
        self,
        ctx: RunContext,
        *,
        workflow: str,
        status: str,
        items_ok: int,
        items_failed: int,
        error: str | None,
        **kwargs: Any,
    ) -> None:
        run_id = ctx.run_id
        if run_id is None:
            return
        now = time.time()
        started_at, resuming = self._runs.pop(run_id, (now, False))
        self._close(self._scopes.pop((run_id, None), None))
        trace_id, span_id = run_trace_id(run_id), run_span_id(run_id)
        parent = None
        if resuming:  # the first attempt's span keeps the run's id: this one hangs under it
            span_id, parent = new_span_id(), span_id
        attributes = clean(
            {"llmflow.run.id": run_id, "llmflow.workflow": workflow, "llmflow.run.status": status,
             "llmflow.run.items_ok": items_ok, "llmflow.run.items_failed": items_failed,
             "llmflow.run.resumed": resuming,
             "llmflow.model": ctx.model or ctx.gateway.settings.model}
        )  # fmt: skip
        failed = status in ("failed", "stopped", "interrupted")
        self.sink.emit(
            SpanData(
                name=f"run {workflow}", trace_id=trace_id, span_id=span_id, parent_id=parent,
                start=started_at, end=now, attributes=attributes,
                error=self._why(error or status) if failed else None,
            )
        )  # fmt: skip
        self.sink.flush(wait=False)

    def on_item_start(self, ctx: RunContext, *, key: str, **kwargs: Any) -> None:
        with self._lock:
            scope = self._scope(ctx)
            scope.span_id = scope.parent_id = new_span_id()  # its top-level steps hang under it
            if ctx.run_id is not None:  # a worker's items: the run started elsewhere, earlier
                self._runs.setdefault(ctx.run_id, (time.time(), False))

    def on_item_end(
        self,
        ctx: RunContext,
        *,
        key: str,
        output: Any,
        error: BaseException | None,
        started_at: float,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            scope = self._scopes.pop(self._key(ctx), None)
        if scope is None or scope.span_id is None:
            return
        self._close(scope)
        status = "ok" if error is None else "failed"
        attributes = clean(
            {"llmflow.item.key": key, "llmflow.item.id": ctx.item_id,
             "llmflow.item.status": status,
             "error.type": error_type(error) if error is not None else None}
        )  # fmt: skip
        self.sink.emit(
            SpanData(
                name=f"item {key}", trace_id=scope.trace_id, span_id=scope.span_id,
                parent_id=run_span_id(ctx.run_id) if ctx.run_id else None, start=started_at,
                end=time.time(), attributes=attributes,
                error=self._why(error),
            )
        )  # fmt: skip

    # -- steps and calls --------------------------------------------------------------------

    def on_step_end(
        self,
        ctx: RunContext,
        *,
        step: Step[Any, Any],
        input: Any,
        output: Any,
        error: BaseException | None,
        started_at: float,
        latency_s: float,
        **kwargs: Any,
    ) -> None:
        tool = getattr(step, "tool", None) if step.kind in ("tool", "action") else None
        status = None
        if tool is not None:
            status = next((a.status for a in reversed(ctx.actions) if a.path == ctx.path), None)
        name, attributes = step_span(
            path=ctx.path, kind=step.kind, name=step.name,
            model=getattr(step, "model", None) or ctx.model or ctx.gateway.settings.model,
            input=input, output=output,
            tool=tool, tool_call_id=getattr(getattr(step, "tool_ctx", None), "tool_call_id", None),
            tool_status=status, content=self.content,
        )  # fmt: skip
        if error is not None:
            attributes["error.type"] = error_type(error)
        end = started_at + latency_s
        with self._lock:
            scope = self._scope(ctx)
            pending = scope.pending.pop(ctx.path, None)
            span_id = pending.span_id if pending is not None else new_span_id()
            parent_id = self._parent(scope, ctx.path, started_at, end)
        self.sink.emit(
            SpanData(
                name=name, trace_id=scope.trace_id, span_id=span_id, parent_id=parent_id,
                start=started_at, end=end, attributes=attributes,
                error=self._why(error),
            )
        )  # fmt: skip
        if ctx.item_id is None and ctx.run_id is None and "/" not in ctx.path:
            with self._lock:  # the top step of a single `run()`: its trace is complete
                self._close(self._scopes.pop(self._key(ctx), None))

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        name, attributes = call_span(call, content=self.content)
        end = call.started_at + call.latency_s
        with self._lock:
            scope = self._scope(ctx)
            if ctx.path:
                parent = scope.pending.setdefault(ctx.path, _Pending())
                parent.start, parent.end = min(parent.start, call.started_at), max(parent.end, end)
                parent_id: int | None = parent.span_id
            else:
                parent_id = scope.parent_id
        self.sink.emit(
            SpanData(
                name=name, trace_id=scope.trace_id, span_id=new_span_id(), parent_id=parent_id,
                start=call.started_at, end=end, attributes=attributes,
                kind="internal" if call.provider in IN_PROCESS else "client",
                error=self._why(call.error),
            )
        )  # fmt: skip

    # -- bookkeeping ------------------------------------------------------------------------

    def _why(self, error: BaseException | str | None) -> str | None:
        """A failed span's status description: the error's message, redacted, with content
        on; only what failed (the error's type, or the run's status) without, as messages may
        quote inputs or outputs."""
        if error is None:
            return None
        if isinstance(error, str):  # a run's error, or a call's `Type: message`
            return redact(error) if self.content else error.split(":", 1)[0]
        if self.content:
            return redact(f"{type(error).__name__}: {error}")
        return error_type(error)

    @staticmethod
    def _key(ctx: RunContext) -> Key:
        if ctx.run_id is None:  # a single `run()`: its context's extras are its own
            return (None, id(ctx.extras))
        return (ctx.run_id, ctx.item_id)

    def _scope(self, ctx: RunContext) -> _Scope:
        key = self._key(ctx)
        scope = self._scopes.get(key)
        if scope is None:
            if ctx.run_id is None:
                scope = _Scope(trace_id=secrets.randbits(128) or 1, parent_id=None)
            else:
                scope = _Scope(trace_id=run_trace_id(ctx.run_id),
                               parent_id=run_span_id(ctx.run_id))  # fmt: skip
            self._scopes[key] = scope
        return scope

    @staticmethod
    def _parent(scope: _Scope, path: str, start: float, end: float) -> int | None:
        """The span id of `path`'s parent step (drawn now if it has none yet), or the scope's
        span for a top-level step."""
        if "/" not in path:
            return scope.parent_id
        parent = scope.pending.setdefault(path.rsplit("/", 1)[0], _Pending())
        parent.start, parent.end = min(parent.start, start), max(parent.end, end)
        return parent.span_id

    def _close(self, scope: _Scope | None) -> None:
        """Emit a span for each path whose children have spans but that never ended as a step
        (a context made with `ctx.child` outside a step): no span is left without a parent."""
        if scope is None:
            return
        while scope.pending:
            path = max(scope.pending, key=lambda p: p.count("/"))
            pending = scope.pending.pop(path)
            parent_id = self._parent(scope, path, pending.start, pending.end)
            self.sink.emit(
                SpanData(
                    name=path.rsplit("/", 1)[-1], trace_id=scope.trace_id,
                    span_id=pending.span_id, parent_id=parent_id, start=pending.start,
                    end=max(pending.end, pending.start),
                    attributes=clean({"llmflow.step.path": path}),
                )
            )  # fmt: skip


__all__: list[str] = [
    "INSTALL",
    "SpanData",
    "SpanHooks",
    "SpanSink",
    "TelemetrySettings",
    "run_span_id",
    "run_trace_id",
    "telemetry_hooks",
]
