"""Output schemas of workflow files: `text`, an inline JSON Schema, or a Python type.

An inline JSON Schema becomes a type pydantic can use: its JSON schema is exactly the one
written (so the model is constrained by it), and validation runs the `jsonschema` library, so
an answer that breaks the schema is sent back to the model with the reason like any other
invalid output. The schema itself is checked against its metaschema at load time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import jsonschema
from pydantic import AfterValidator, TypeAdapter, WithJsonSchema

from .imports import ImportProblem, resolve


class SchemaProblem(Exception):
    """An output schema that cannot be used; `path` is where inside the schema."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def json_schema_type(schema: dict[str, Any]) -> Any:
    """A type whose JSON schema is `schema` and whose values are checked against it."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise SchemaProblem(f"not a valid JSON Schema: {e.message}", tuple(e.path)) from None
    validator = cls(schema)

    def check(value: Any) -> Any:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            raise ValueError(f"{where + ': ' if where else ''}{error.message}")
        return value

    return Annotated[Any, WithJsonSchema(schema), AfterValidator(check)]


def output_type(value: Any, folder: Path | Sequence[Path]) -> Any:
    """The Python type for an `output` (or `schema`) value; raises SchemaProblem."""
    if value is None or value == "text":
        return str
    if isinstance(value, dict):
        if not value:
            raise SchemaProblem("an empty schema accepts anything: describe the output")
        return json_schema_type(value)
    if isinstance(value, str):
        try:
            target = resolve(value, folder)
        except ImportProblem as e:
            raise SchemaProblem(
                f"{e} (an output is 'text', a JSON Schema mapping, or module:Type)"
            ) from None
        try:
            TypeAdapter(target).json_schema()
        except Exception as e:
            raise SchemaProblem(f"{value} is not a type an output can have: {e}") from None
        return target
    raise SchemaProblem(
        f"an output is 'text', a JSON Schema mapping, or module:Type, not {type(value).__name__}"
    )
