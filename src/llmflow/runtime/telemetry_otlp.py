"""The OpenTelemetry SDK side of the export: spans built by `telemetry.SpanHooks` go through a
tracer provider of llmflow's own (the application's global provider is left alone) and a
batch processor to an OTLP/HTTP exporter.

Imported only when the export is on (`telemetry.telemetry_hooks`): it needs the `otel` extra,
`pip install 'llmflow[otel]'`. One exporter serves the whole process; spans are sent in the
background, and at the end of each run, and what is left at exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from .telemetry import SpanData

FLUSH_TIMEOUT_MS = 10_000
"""How long a flush waits for the collector."""


class PlannedIds(IdGenerator):
    """Span and trace ids chosen by the caller for the next span (random otherwise): a step's
    children name it as their parent before the step's own span exists."""

    def __init__(self) -> None:
        self.random = RandomIdGenerator()
        self.span_id: int | None = None
        self.trace_id: int | None = None

    def generate_span_id(self) -> int:
        planned, self.span_id = self.span_id, None
        return planned if planned is not None else self.random.generate_span_id()

    def generate_trace_id(self) -> int:
        planned, self.trace_id = self.trace_id, None
        return planned if planned is not None else self.random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False


def llmflow_version() -> str:
    try:
        return version("llmflow")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


def _resource() -> Resource:
    attributes = {"service.version": llmflow_version(), "telemetry.distro.name": "llmflow"}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "llmflow"
    return Resource.create(attributes)


class OtlpExporter:
    """Hands `SpanData` to OpenTelemetry, which batches them to the OTLP/HTTP endpoint."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.ids = PlannedIds()
        self.provider = TracerProvider(resource=_resource(), id_generator=self.ids)
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url))
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("llmflow", llmflow_version())
        self._lock = threading.Lock()

    def emit(self, span: SpanData) -> None:
        if span.parent_id is None:
            context = None
            planned_trace: int | None = span.trace_id
        else:
            parent = SpanContext(
                trace_id=span.trace_id, span_id=span.parent_id, is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )  # fmt: skip
            context = trace.set_span_in_context(NonRecordingSpan(parent))
            planned_trace = None
        with self._lock:  # the planned ids are for this span only
            self.ids.trace_id, self.ids.span_id = planned_trace, span.span_id
            otel_span = self.tracer.start_span(
                span.name,
                context=context,
                kind=SpanKind.CLIENT if span.kind == "client" else SpanKind.INTERNAL,
                attributes=span.attributes,
                start_time=int(span.start * 1e9),
            )
            self.ids.trace_id = self.ids.span_id = None
        if span.error is not None:
            otel_span.set_status(Status(StatusCode.ERROR, span.error))
        otel_span.end(end_time=int(max(span.end, span.start) * 1e9))

    def flush(self, *, wait: bool = True) -> None:
        """Send the spans batched so far (`wait=False`: in the background)."""
        if wait:
            self.processor.force_flush(FLUSH_TIMEOUT_MS)
        else:
            threading.Thread(
                target=self.processor.force_flush, args=(FLUSH_TIMEOUT_MS,), daemon=True,
                name="llmflow-otel-flush",
            ).start()  # fmt: skip

    def shutdown(self) -> None:
        self.provider.shutdown()


_exporter: OtlpExporter | None = None
_exporter_lock = threading.Lock()
_at_exit = False


def exporter(url: str | None) -> OtlpExporter:
    """The process's exporter to `url` (made on first use; a new URL replaces it)."""
    global _exporter, _at_exit
    with _exporter_lock:
        if _exporter is None or _exporter.url != url:
            if _exporter is not None:
                _exporter.shutdown()
            if not _at_exit:
                atexit.register(shutdown)
                _at_exit = True
            _exporter = OtlpExporter(url)
        return _exporter


def flush() -> None:
    """Send every span exported so far, waiting for the collector (tests, short scripts)."""
    if _exporter is not None:
        _exporter.flush(wait=True)


def shutdown() -> None:
    """Send what is left and stop the exporter (at exit; a later run starts a new one)."""
    global _exporter
    with _exporter_lock:
        if _exporter is not None:
            _exporter.shutdown()
            _exporter = None
