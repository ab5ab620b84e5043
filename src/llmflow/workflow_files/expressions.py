"""The expression and template language of workflow files: Jinja, in a sandbox.

Conditions (`when: "steps.classify.category != 'spam'"`), selections (`result`, `input`,
`columns`) and templates (`prompt`, agent bodies) are compiled once, at load time, by an
immutable sandboxed Jinja environment: attribute and item access, comparisons, boolean logic,
literals and filters — no Python, no access to private attributes, no mutation. `analyse`
lists what a template or expression refers to, so the loader can check every `steps.<id>`
reference and every variable before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..patterns.grounded import text_of
from ..steps.grounding import ungrounded
from ..steps.untrusted import mark_untrusted

# StrictUndefined: a typo in a field name fails the step with the name, instead of a silent
# empty string reaching a prompt. Result and column expressions are lenient (see below).
strict = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
# ChainableUndefined: `steps.answer.text` is none when a gate stopped before `answer` ran.
lenient = ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)
for _environment in (strict, lenient):  # `{{ input.body | untrusted('mail') }}`: marked as data
    _environment.filters["untrusted"] = mark_untrusted
    # `steps.summary | ungrounded(input.body)`: what it states that the mail does not (a list)
    _environment.filters["ungrounded"] = lambda text, source: ungrounded(
        text_of(text), text_of(source)
    )


class ExpressionError(Exception):
    """An expression or template that does not parse; `line` is 1-based within it."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(slots=True)
class Analysis:
    """What an expression or template refers to."""

    variables: set[str] = field(default_factory=set)
    """The free variables it reads (`input`, `steps`, ...)."""
    steps: list[tuple[str, int]] = field(default_factory=list)
    """Each `steps.<id>` / `steps['<id>']` reference, with its line in the source."""


def parse_expression(source: str) -> nodes.Expr:
    """The parsed expression; raises ExpressionError."""
    try:
        parser = Parser(strict, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise ExpressionError(f"unexpected {token.value!r} after the expression", token.lineno)
        return expr
    except jinja2.TemplateSyntaxError as e:
        raise ExpressionError(e.message or "invalid expression", e.lineno or 1) from None


def parse_template(source: str) -> nodes.Template:
    """The parsed template; raises ExpressionError."""
    try:
        return strict.parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise ExpressionError(e.message or "invalid template", e.lineno or 1) from None


def analyse(tree: nodes.Node) -> Analysis:
    """The variables and step references of a parsed expression or template."""
    found = Analysis()
    if isinstance(tree, nodes.Template):
        found.variables = set(meta.find_undeclared_variables(tree))
    else:
        found.variables = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    for node in [tree, *tree.find_all((nodes.Getattr, nodes.Getitem))]:
        if isinstance(node, nodes.Getattr) and _is_steps(node.node):
            found.steps.append((node.attr, node.lineno))
        elif (
            isinstance(node, nodes.Getitem)
            and _is_steps(node.node)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            found.steps.append((node.arg.value, node.lineno))
    return found


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"


def compile_expression(source: str, *, lenient_undefined: bool = False) -> Callable[..., Any]:
    """A function of the variables returning the expression's value (parse it first)."""
    env = lenient if lenient_undefined else strict
    compiled = env.compile_expression(source, undefined_to_none=lenient_undefined)

    def evaluate(**variables: Any) -> Any:
        return _plain(compiled(**variables))

    return evaluate


def compile_template(source: str, *, lenient_undefined: bool = False) -> jinja2.Template:
    """The template, ready to `render(**variables)` (parse it first). It keeps its source as
    `llmflow_source`, for a lenient copy."""
    template = (lenient if lenient_undefined else strict).from_string(source)
    template.llmflow_source = source  # type: ignore[attr-defined]
    return template


def _plain(value: Any) -> Any:
    """A chainable undefined (a step that did not run) as None."""
    return None if isinstance(value, jinja2.Undefined) else value
