from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from llmflow import ConfigError, ModelResponse, OutputValidationError, Usage, llm, run
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway


class Ticket(BaseModel):
    title: str
    severity: int


async def test_pydantic_output_is_validated_and_the_prompt_rendered() -> None:
    model = ScriptedModel([json_reply({"title": "Broken pole", "severity": 2})])
    step = llm(
        "ticket",
        instructions="Make a ticket.",
        output=Ticket,
        prompt="Customer {{ name }} wrote: {{ text }}",
    )
    out = await run(step, {"name": "Ana", "text": "pole broke"}, gateway=scripted_gateway(model))
    assert out == Ticket(title="Broken pole", severity=2)
    request = model.requests[0]
    assert request.messages[0].role == "system"
    assert request.messages[0].content == "Make a ticket."
    assert request.messages[1].content == "Customer Ana wrote: pole broke"
    assert request.output_schema is not None
    assert request.output_schema["properties"]["severity"]["type"] == "integer"


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@pytest.mark.parametrize(
    ("output", "reply", "expected"),
    [
        (Literal["yes", "no"], {"value": "no"}, "no"),
        (Colour, {"value": "blue"}, Colour.BLUE),
        (list[int], {"value": [1, 2]}, [1, 2]),
    ],
)
async def test_non_object_outputs_are_wrapped_as_value(
    output: object, reply: object, expected: object
) -> None:
    model = ScriptedModel([json.dumps(reply)])
    step = llm("pick", instructions="Pick.", output=output)
    assert await run(step, "input", gateway=scripted_gateway(model)) == expected
    schema = model.requests[0].output_schema
    assert schema is not None
    assert schema["required"] == ["value"]


async def test_text_output_is_stripped_and_has_no_schema() -> None:
    model = ScriptedModel(["  A summary.  \n"])
    out = await run(llm("sum", instructions="Sum."), "text", gateway=scripted_gateway(model))
    assert out == "A summary."
    assert model.requests[0].output_schema is None


async def test_an_invalid_output_is_retried_once_with_the_error() -> None:
    model = ScriptedModel(
        [json_reply({"title": "x", "severity": "high"}), json_reply({"title": "x", "severity": 3})]
    )
    out = await run(
        llm("t", instructions="i", output=Ticket), "in", gateway=scripted_gateway(model)
    )
    assert out.severity == 3
    retry = model.requests[1].messages
    assert retry[-2].role == "assistant"
    assert "severity" in (retry[-1].content or "")
    assert "integer" in (retry[-1].content or "")


async def test_an_output_still_invalid_after_its_repairs_fails_naming_the_step() -> None:
    model = ScriptedModel(["not json", "{still not", '{"title": 1}'])
    with pytest.raises(OutputValidationError) as info:
        await run(llm("t", instructions="i", output=Ticket), "in", gateway=scripted_gateway(model))
    assert info.value.path == "t"
    assert "after 2 retries" in str(info.value)
    assert len(model.requests) == 3  # the answer, then two repairs (LLMFLOW_OUTPUT_REPAIRS)
    assert len(model.requests[2].messages) == 6  # each repair sees every earlier answer


async def test_the_number_of_repairs_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLOW_OUTPUT_REPAIRS", "1")
    model = ScriptedModel(["not json", "{still not"])
    with pytest.raises(OutputValidationError, match="after a retry"):
        await run(llm("t", instructions="i", output=Ticket), "in", gateway=scripted_gateway(model))
    assert len(model.requests) == 2
    monkeypatch.setenv("LLMFLOW_OUTPUT_REPAIRS", "4")
    model = ScriptedModel(["x"] * 4 + [json_reply({"title": "x", "severity": 1})])
    out = await run(
        llm("t", instructions="i", output=Ticket), "in", gateway=scripted_gateway(model)
    )
    assert out.severity == 1 and len(model.requests) == 5


async def test_a_cut_off_output_is_retried_with_more_tokens() -> None:
    cut = ModelResponse(text='{"title": "x", "sev', finish_reason="length", usage=Usage())
    model = ScriptedModel([cut, json_reply({"title": "x", "severity": 1})])
    step = llm("t", instructions="i", output=Ticket, max_tokens=50)
    await run(step, "in", gateway=scripted_gateway(model))
    assert [r.sampling.max_tokens for r in model.requests] == [50, 100]
    assert "cut off at max_tokens=50" in (model.requests[1].messages[-1].content or "")


async def test_instructions_from_a_markdown_file(tmp_path: Path) -> None:
    (tmp_path / "sum.md").write_text("# Summarise\nBe brief.\n")
    step = llm("s", instructions=tmp_path / "sum.md")
    assert step.instructions == "# Summarise\nBe brief."
    with pytest.raises(ConfigError, match="cannot read instructions file"):
        llm("s", instructions=tmp_path / "missing.md")


async def test_template_errors_name_the_step() -> None:
    with pytest.raises(ConfigError, match="step 's': prompt template line 1"):
        llm("s", instructions="i", prompt="{{ broken")
    step = llm("s", instructions="i", prompt="{{ nosuchfield }}")
    with pytest.raises(ConfigError, match="nosuchfield"):
        await run(step, {"text": "x"}, gateway=scripted_gateway(ScriptedModel(["x"])))


async def test_the_step_model_overrides_the_run_model() -> None:
    default, special = ScriptedModel(["default"]), ScriptedModel(["special"])
    gateway = scripted_gateway(default)
    gateway.register("special", special)
    assert await run(llm("a", instructions="i", model="special"), "x", gateway=gateway) == "special"
    assert await run(llm("b", instructions="i"), "x", gateway=gateway) == "default"
