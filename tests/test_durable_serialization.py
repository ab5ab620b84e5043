"""The durable serializer: what it writes reads back as the same value, whichever path wrote
it (a model or dataclass at the top is dumped by pydantic in one pass, anything else through
`encode`), with credentials redacted and, with a key, encrypted."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pydantic

from llmflow.durable.serialization import JsonSerializer, decode, encode, new_encryption_key
from llmflow.models.client import ModelResponse, ToolCall, Usage


class Verdict(pydantic.BaseModel):
    label: str
    score: float
    notes: list[str] = []


@dataclasses.dataclass
class Totals:
    amount: Decimal
    currency: str
    lines: list[dict[str, int]]


VALUES = [
    ModelResponse(
        text='Grüße, 東京 "quoted" \\ done', usage=Usage(input_tokens=12, output_tokens=3)
    ),
    ModelResponse(text="", tool_calls=[ToolCall(id="c1", name="lookup", arguments='{"q": 1}')]),
    Verdict(label="billing", score=0.5, notes=["a", "ß"]),
    Totals(amount=Decimal("1250.10"), currency="EUR", lines=[{"n": 1}]),
    {"ok": True, "output": "x", "nested": [1, 2.5, None, (1, 2)]},
]


def test_every_value_reads_back_as_it_was_written() -> None:
    serializer = JsonSerializer()
    for value in VALUES:
        assert serializer.deserialize(serializer.serialize(value)) == value


def test_the_one_pass_dump_reads_back_as_the_general_encoding_does() -> None:
    serializer = JsonSerializer()
    for value in VALUES:
        general = json.dumps(encode(value), ensure_ascii=False, separators=(",", ":"))
        assert json.loads(serializer.serialize(value)) == json.loads(general)
        assert decode(json.loads(serializer.serialize(value))) == decode(json.loads(general))


def test_credentials_are_redacted_and_a_key_encrypts() -> None:
    secret = "sk-" + "a1b2c3d4e5f6g7h8"
    key = new_encryption_key()
    for serializer in (JsonSerializer(), JsonSerializer(key)):
        text = serializer.serialize(ModelResponse(text=f"the key is {secret}"))
        assert secret not in text
        assert secret not in serializer.deserialize(text).text
    assert "the key" not in JsonSerializer(key).serialize(ModelResponse(text="the key"))
