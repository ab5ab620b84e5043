"""OpenTelemetry export: a nested workflow (route > parallel > agent > tool) run on the scripted
model sends its spans to a real OTLP/HTTP receiver on localhost (an http.server thread that
decodes each POST /v1/traces with opentelemetry-proto), with the GenAI attributes, the
parent/child structure of the run, message content only when asked for, and no API key.
Off by default: nothing is sent, and the OpenTelemetry SDK is not imported."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmflow.errors import ConfigError
from llmflow.patterns.chain import chain
from llmflow.runtime import telemetry_otlp
from llmflow.runtime.runner import BatchResult, Item, Workflow, run, run_batch
from llmflow.runtime.telemetry import (
    INSTALL,
    SpanData,
    SpanHooks,
    run_span_id,
    run_trace_id,
    telemetry_hooks,
)
from llmflow.settings import Settings
from llmflow.steps.base import CodeStep
from llmflow.steps.context import RunContext
from llmflow.testing import ScriptedModel, scripted_gateway

from .fake_openai_server import serve
from .otel_flow import ANSWER, API_KEY, FAKE_KEY, MAILS, reply, workflow
from .otlp_receiver import Receiver, attributes, receiving
from .test_durable import LLMFLOW, Model, _cli, _env, _run_args

# -- the receiver ---------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as got:
        try:
            yield got
        finally:
            telemetry_otlp.shutdown()  # the exporter to this receiver goes before it


def run_desk(monkeypatch: pytest.MonkeyPatch, receiver: Receiver, **env: str) -> BatchResult:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    gateway = scripted_gateway(ScriptedModel(reply), settings=Settings())
    items = [Item(key, text) for key, text in MAILS.items()]
    result = asyncio.run(run_batch(workflow(), items, gateway=gateway, run_id="run-otel-1"))
    assert result.status == "ok", result.failed
    telemetry_otlp.flush()
    return result


# -- the tests ------------------------------------------------------------------------------


def test_a_nested_run_is_exported_as_genai_spans(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    run_desk(monkeypatch, receiver, LLMFLOW_OTEL="1")
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    received = receiver.spans()
    spans = {span.span_id: span for span, _ in received}
    assert len(spans) == len(received), "every span is sent once, with an id of its own"
    attrs = {span.span_id: attributes(span.attributes) for span in spans.values()}
    assert all(r["service.name"] == "llmflow" for _, r in received)

    def named(name: str) -> list[Span]:
        return [s for s in spans.values() if s.name == name]

    def parent(span: Span) -> Span:
        return spans[span.parent_span_id]

    # One trace: the run at its root, its two items under it.
    (run,) = named("run desk")
    assert run.parent_span_id == b""
    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    assert attrs[run.span_id]["llmflow.run.id"] == "run-otel-1"
    assert attrs[run.span_id]["llmflow.run.items_ok"] == 2
    items = {attrs[s.span_id]["llmflow.item.key"]: s for s in spans.values()
             if s.name.startswith("item ")}  # fmt: skip
    assert set(items) == set(MAILS)
    assert all(parent(s) is run for s in items.values())
    # Every other span has its parent in the export.
    assert all(s.parent_span_id in spans for s in spans.values() if s is not run)

    # item > route > parallel > agent > tool, as the workflow nests them.
    (tool_span,) = named("execute_tool lookup_order")
    tool_attrs = attrs[tool_span.span_id]
    assert tool_attrs["gen_ai.operation.name"] == "execute_tool"
    assert tool_attrs["gen_ai.tool.name"] == "lookup_order"
    assert tool_attrs["gen_ai.tool.call.id"] == "call-1"
    assert tool_attrs["llmflow.tool.status"] == "ok"
    assert tool_attrs["llmflow.step.path"] == "triage/order/support/lookup_order[1]"
    agent_span = parent(tool_span)
    assert agent_span.name == "invoke_agent support"
    assert attrs[agent_span.span_id]["gen_ai.operation.name"] == "invoke_agent"
    assert attrs[agent_span.span_id]["gen_ai.agent.name"] == "support"
    parallel_span = parent(agent_span)
    assert attrs[parallel_span.span_id]["llmflow.step.kind"] == "parallel"
    route_span = parent(parallel_span)
    assert attrs[route_span.span_id]["llmflow.step.kind"] == "route"
    assert parent(route_span) is items["order.eml"]
    assert tool_span.start_time_unix_nano >= agent_span.start_time_unix_nano
    assert tool_span.end_time_unix_nano <= agent_span.end_time_unix_nano

    # Model calls: GenAI attributes, under the step that made them.
    calls = [s for s in spans.values() if attrs[s.span_id].get("gen_ai.operation.name") == "chat"]
    # Two classifications, the agent's two turns, one summary.
    assert len(calls) == 5
    for call in calls:
        a = attrs[call.span_id]
        assert call.name == "chat scripted"
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "scripted"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "scripted"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] in (["stop"], ["tool_calls"])
        assert call.kind == Span.SPAN_KIND_INTERNAL  # the scripted model runs in process
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    by_parent = sorted(attrs[parent(c).span_id]["llmflow.step.path"] for c in calls)
    assert by_parent == [
        "triage/classify", "triage/classify", "triage/order/summary",
        "triage/order/support", "triage/order/support",
    ]  # fmt: skip
    assert all(attrs[parent(c).span_id].get("llmflow.step.kind") for c in calls)

    # No message content by default, and no key at all.
    raw = b"".join(receiver.bodies)
    for text in (*MAILS.values(), ANSWER, "Answer the customer", '"order": "NW-1"', "shipped"):
        assert text.encode() not in raw, text
    assert API_KEY.encode() not in raw and FAKE_KEY.encode() not in raw


def test_message_content_only_when_opted_in(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # The standard endpoint alone turns the export on.
    run_desk(monkeypatch, receiver, LLMFLOW_OTEL_CONTENT="1")
    spans = [(span, attributes(span.attributes)) for span, _ in receiver.spans()]
    turns = [a for _, a in spans if a.get("llmflow.step.path") is None
             and a.get("gen_ai.operation.name") == "chat"
             and "Answer the customer." in a["gen_ai.input.messages"]]  # fmt: skip
    assert len(turns) == 2
    first, second = sorted(turns, key=lambda a: len(a["gen_ai.input.messages"]))
    messages = json.loads(first["gen_ai.input.messages"])
    assert messages[0] == {
        "role": "system", "parts": [{"type": "text", "content": "Answer the customer."}]
    }  # fmt: skip
    assert json.loads(first["gen_ai.output.messages"]) == [
        {"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "tool_call", "id": "call-1", "name": "lookup_order",
             "arguments": {"order": "NW-1"}}]}
    ]  # fmt: skip
    response = json.loads(second["gen_ai.input.messages"])[-1]
    assert response["role"] == "tool"
    assert response["parts"][0]["type"] == "tool_call_response"
    (output,) = json.loads(second["gen_ai.output.messages"])
    assert output["parts"][0]["content"].startswith(ANSWER)
    (tool_attrs,) = [a for _, a in spans if a.get("gen_ai.tool.name") == "lookup_order"]
    assert json.loads(tool_attrs["gen_ai.tool.call.arguments"]) == {"order": "NW-1"}
    assert tool_attrs["gen_ai.tool.call.result"].startswith("shipped")

    # Content goes out redacted: the keys in the mail, the tool's result and the answer.
    raw = b"".join(receiver.bodies)
    assert API_KEY.encode() not in raw and FAKE_KEY.encode() not in raw
    assert b"[redacted]" in raw


class ListSink:
    """A `SpanSink` that keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[SpanData] = []

    def emit(self, span: SpanData) -> None:
        self.spans.append(span)

    def flush(self, *, wait: bool = True) -> None:
        pass


def test_a_single_run_is_a_trace_of_its_own() -> None:
    """`run(step, input)` outside a batch: the top step is the root of a trace of its own."""
    sink = ListSink()
    gateway = scripted_gateway(ScriptedModel(reply))
    for text in MAILS.values():
        asyncio.run(run(workflow().step, text, gateway=gateway, hooks=[SpanHooks(sink)]))
    roots = [s for s in sink.spans if s.parent_id is None]
    assert [s.name for s in roots] == ["route triage", "route triage"]
    assert roots[0].trace_id != roots[1].trace_id
    ids = {s.span_id for s in sink.spans}
    assert all(s.parent_id in ids for s in sink.spans if s.parent_id is not None)
    (tool_span,) = [s for s in sink.spans if s.name == "execute_tool lookup_order"]
    assert tool_span.trace_id == roots[0].trace_id


def test_a_resumed_run_hangs_under_its_first_attempt() -> None:
    """The run span's ids come from the run id (workers elsewhere name it as their items'
    parent); a resumed run's span is a child of the first attempt's."""
    sink = ListSink()
    hooks = SpanHooks(sink)
    ctx = RunContext(gateway=scripted_gateway(ScriptedModel(reply)), run_id="run-r")
    for resuming in (False, True):
        hooks.on_run_start(ctx, workflow="desk", items=1, resuming=resuming)
        hooks.on_run_end(ctx, workflow="desk", status="ok", items_ok=1, items_failed=0, error=None)
    first, again = sink.spans
    assert (first.trace_id, first.span_id) == (run_trace_id("run-r"), run_span_id("run-r"))
    assert first.parent_id is None and first.attributes["llmflow.run.resumed"] is False
    assert again.trace_id == first.trace_id and again.parent_id == first.span_id
    assert again.attributes["llmflow.run.resumed"] is True


@pytest.mark.parametrize("content", [False, True])
def test_a_failure_says_what_failed_and_why_only_with_content(content: bool) -> None:
    def check(text: str) -> str:
        raise ValueError(f"cannot read {text!r}")

    sink = ListSink()
    flow = Workflow(name="fails", step=chain("flow", CodeStep("check", check)))
    result = asyncio.run(
        run_batch(flow, [Item("a", "private words")], gateway=scripted_gateway(ScriptedModel()),
                  hooks=[SpanHooks(sink, content=content)])
    )  # fmt: skip
    assert result.status == "failed"
    failed = {s.name: s for s in sink.spans if s.error is not None}
    assert set(failed) == {"run fails", "item a", "chain flow", "code check"}
    assert failed["code check"].attributes["error.type"] == "StepError: ValueError"
    assert failed["item a"].attributes["llmflow.item.status"] == "failed"
    said = " ".join(str(s.error) for s in failed.values())
    assert ("private words" in said) is content


def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLOW_OTEL", "1")
    monkeypatch.setitem(sys.modules, "llmflow.runtime.telemetry_otlp", None)  # not importable
    with pytest.raises(ConfigError, match=r"pip install 'llmflow\[otel\]'") as caught:
        telemetry_hooks()
    assert INSTALL in str(caught.value)


OFF = """
import asyncio, json, sys
from llmflow.runtime.runner import Item, run_batch
from llmflow.testing import ScriptedModel, scripted_gateway
from tests.otel_flow import MAILS, reply, workflow

gateway = scripted_gateway(ScriptedModel(reply))
items = [Item(key, text) for key, text in MAILS.items()]
result = asyncio.run(run_batch(workflow(), items, gateway=gateway))
export = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto",
          "llmflow.runtime.telemetry_otlp")
print(json.dumps([result.status, sorted(m for m in sys.modules if m.startswith(export))]))
"""


@pytest.mark.parametrize("setting", [None, "0"])
def test_off_sends_nothing_and_imports_nothing(
    setting: str | None, receiver: Receiver, tmp_path: Path
) -> None:
    """Unconfigured, or LLMFLOW_OTEL=0 with an endpoint set: a run (in a fresh interpreter, to
    its exit) sends no span and never imports the export (the OpenTelemetry SDK, its exporter,
    llmflow's module). The OpenTelemetry API alone is loaded by the Agents SDK itself."""
    env = {"PATH": "/usr/bin:/bin", "LLMFLOW_HOME": str(tmp_path / "home"), "NO_PROXY": "*"}
    if setting is not None:
        env |= {"LLMFLOW_OTEL": setting, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    done = subprocess.run(
        [sys.executable, "-c", OFF], capture_output=True, text=True, timeout=300, check=False,
        cwd=Path(__file__).resolve().parent.parent, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status, loaded = json.loads(done.stdout.splitlines()[-1])
    assert status == "ok"
    assert loaded == []
    assert receiver.bodies == []


@pytest.fixture
def openai_server() -> Iterator[str]:
    """An OpenAI-compatible server answering the durable-run tests' workflow."""
    with serve(Model().answer) as (url, _):
        yield url


def test_a_durable_cli_run_exports_one_trace(
    receiver: Receiver, openai_server: str, tmp_path: Path
) -> None:
    """`llmflow run` (durable, items as DBOS workflows) on an OpenAI-compatible server: the
    spans arrive by the time the process has exited, in one trace, calls as CLIENT spans."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"{i}.txt").write_text(f"i{i}|please refund")
    url = openai_server
    env = _env(
        tmp_path, LLMFLOW_OTEL="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        NO_PROXY="127.0.0.1,localhost", OPENAI_API_KEY=API_KEY,
    )  # fmt: skip
    code, output = _cli(_run_args(url, inputs, tmp_path), env)
    assert code == 0, output
    spans = {span.span_id: span for span, _ in receiver.spans()}
    attrs = {i: attributes(s.attributes) for i, s in spans.items()}
    (run,) = [s for s in spans.values() if s.name.startswith("run ")]
    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    assert all(s.parent_span_id in spans for s in spans.values() if s is not run)
    items = [s for s in spans.values() if s.name.startswith("item ")]
    assert len(items) == 3 and all(s.parent_span_id == run.span_id for s in items)
    calls = [s for i, s in spans.items() if attrs[i].get("gen_ai.operation.name") == "chat"]
    assert len(calls) == 6
    for call in calls:
        assert call.kind == Span.SPAN_KIND_CLIENT
        assert attrs[call.span_id]["gen_ai.request.model"] == "m"
        assert attrs[call.span_id]["gen_ai.usage.input_tokens"] > 0
    assert API_KEY.encode() not in b"".join(receiver.bodies)


def test_a_chat_session_is_a_trace(receiver: Receiver, tmp_path: Path) -> None:
    """`llmflow chat`: the session is the run, each turn an item under it."""
    agent_file = tmp_path / "helper.md"
    agent_file.write_text("---\ndescription: A helper.\n---\nAnswer in one short sentence.\n")
    env = _env(
        tmp_path, LLMFLOW_OTEL="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        NO_PROXY="127.0.0.1,localhost",
    )  # fmt: skip
    with serve(lambda body: "Fine, thanks.") as (url, _):
        done = subprocess.run(
            [*LLMFLOW, "chat", str(agent_file), "--base-url", url, "--model", "m"],
            input="hello\nand again\n", capture_output=True, text=True, env=env, timeout=120,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spans = {span.span_id: span for span, _ in receiver.spans()}
    (run,) = [s for s in spans.values() if s.name == "run chat:helper"]
    turns = sorted(s.name for s in spans.values() if s.parent_span_id == run.span_id)
    assert turns == ["item turn 1", "item turn 2"]
    assert all(s.parent_span_id in spans for s in spans.values() if s is not run)
    chats = [s for s in spans.values() if s.name == "chat m"]
    assert len(chats) == 2
