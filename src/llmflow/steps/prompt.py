"""Prompts shared by the llm and agent steps: instructions from text or a Markdown file, and
the user message rendered from the input (a Jinja template over its fields, or as text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel

from ..errors import ConfigError

_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def read_instructions(source: str | Path) -> str:
    """Instructions as given: a `Path` is read as a (Markdown) file, a `str` is the text."""
    if isinstance(source, Path):
        try:
            return source.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"cannot read instructions file {source}: {e.strerror}") from e
    return source.strip()


def render_input(value: Any) -> str:
    """The default prompt for an input: text as is, records as `field: value` lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            lines.append(f"{key}: {text}")
        return "\n".join(lines)
    return json.dumps(value, ensure_ascii=False, default=str)


class PromptTemplate:
    """A step's user message: a Jinja template over the input's fields (and `input` itself),
    or, without a template, the input rendered as text. Errors name the step."""

    def __init__(self, step: str, source: str | None) -> None:
        self.step = step
        try:
            self.template = _jinja.from_string(source) if source is not None else None
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"step {step!r}: prompt template line {e.lineno}: {e.message}") from e

    def render(self, value: Any) -> str:
        if self.template is None:
            return render_input(value)
        try:
            return self.template.render(_variables(value))
        except jinja2.UndefinedError as e:
            raise ConfigError(f"step {self.step!r}: prompt template: {e.message}") from e


def _variables(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return {"input": value, **{k: getattr(value, k) for k in type(value).model_fields}}
    if isinstance(value, dict):
        return {"input": value, **value}
    return {"input": value}
