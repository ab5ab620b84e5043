"""The stand-in for the embedded model while the documentation's snippets run.

`install()` makes `local` (the default model) a `ScriptedModel` whose replies fit any request:
a value of the requested JSON Schema, the first of the offered choices, or a line of text. The
snippets then run as a reader pastes them, with no weights, no network and in seconds.
`tests/test_docs_snippets.py` calls it in-process for shell lines, and through a
`sitecustomize` module for Python snippets run in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmflow.models.client import ModelClient, ModelRequest, ModelResponse, Usage
from llmflow.models.gateway import Gateway
from llmflow.testing import ScriptedModel, forbid_network

TEXT = "A short answer."


def instance(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A simple value that validates against `schema` (the subset llmflow's steps produce)."""
    if "$ref" in schema:
        return instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], defs)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {name: instance(properties[name], defs) for name in required}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [instance(schema.get("items", {}), defs) for _ in range(count)]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), schema.get("maximum", 10)
        return max(low, min(high, 8))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date":
        return "2026-01-05"
    return TEXT


def fitting_reply(request: ModelRequest) -> ModelResponse:
    """An answer of the kind `request` asks for."""
    if request.choices:
        first = request.choices[0]
        probs = {choice: float(choice == first) for choice in request.choices}
        return ModelResponse(text=first, choice_probs=probs, usage=Usage(output_tokens=1))
    if request.output_schema is not None:
        schema = request.output_schema
        text = json.dumps(instance(schema, schema.get("$defs", {})))
    else:
        text = TEXT
    prompt = sum(len(m.content or "") for m in request.messages)
    usage = Usage(input_tokens=prompt // 4 + 1, output_tokens=len(text) // 4 + 1)
    return ModelResponse(text=text, usage=usage, model="local")


def scripted_local(gateway: Gateway) -> ModelClient:
    """`Gateway._make_local`'s stand-in: the scripted model instead of the embedded one."""
    return ScriptedModel(fitting_reply)


def install() -> None:
    """In a fresh interpreter: serve `local` with `fitting_reply`, and forbid the network.

    With `DOCS_MODEL_MARK` set, touch that file, so the caller knows this ran.
    """
    Gateway._make_local = scripted_local  # type: ignore[method-assign,assignment]
    forbid_network().__enter__()
    mark = os.environ.get("DOCS_MODEL_MARK")
    if mark:
        Path(mark).touch()
