"""The embedded model's structured answers are strict JSON, whatever its grammar let through."""

from __future__ import annotations

import json

from llmflow.models.embedded_prompt import strict_json


def test_raw_newlines_inside_strings_are_escaped() -> None:
    raw = '{"answer": "line one\nline two", "n": 2}'
    fixed = strict_json(raw)
    assert json.loads(fixed) == {"answer": "line one\nline two", "n": 2}  # strict parse


def test_text_that_is_not_json_is_left_for_validation_to_report() -> None:
    assert strict_json('{"cut off": "') == '{"cut off": "'
