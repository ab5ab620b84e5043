"""Checks shared by the builders of workflow files: validation against the structure's
models with positions, expressions and their references, files, imports, tools, models.

Every problem is recorded on the Source it belongs to, at its line and column, and the walk
goes on: one pass reports every mistake.
"""

from __future__ import annotations

import abc
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2
from pydantic import BaseModel, ValidationError

from ..errors import pydantic_message
from ..steps.base import Step
from . import expressions as ex
from . import schema as m
from .imports import ImportProblem, resolve, resolve_tool
from .schemas import SchemaProblem, output_type
from .scope import (
    ScopedAgent,
    ScopedLLM,
)
from .source import Path_, Source, did_you_mean

if TYPE_CHECKING:
    from .agents import AgentFile

BASE_VARIABLES = frozenset({"input", "steps"})
JINJA_GLOBALS = frozenset(ex.strict.globals)
M = TypeVar("M", bound=BaseModel)
Folders = Path | Sequence[Path]
KIND_NAMES = {"llm": "an llm step", "agent": "an agent step", "orchestrate": "an orchestrate step"}


@dataclass(frozen=True, slots=True)
class Where:
    """What a step at some place in the file may refer to."""

    visible: dict[str, str] = field(default_factory=dict)
    """The ids it may read as `steps.<id>`, and the step each belongs to."""
    variables: frozenset[str] = BASE_VARIABLES
    """The variables its expressions and templates may use."""
    later: dict[str, str] = field(default_factory=dict)
    """Ids of the same chain that run after it (for a precise message)."""
    step: str = "the workflow"
    """The step it belongs to, for messages."""
    any_steps: bool = False
    """Whether `steps.<id>` references go unchecked (an agent file loaded on its own)."""

    def plus(self, *names: str) -> Where:
        return replace(self, variables=self.variables | set(names))


@dataclass(slots=True)
class ModelUse:
    """A model named in a file, for checking against the gateway."""

    name: str
    source: Source
    path: Path_


class Checker(abc.ABC):
    """The state of one file's build, and the checks every kind of step uses."""

    def __init__(self, source: Source, folder: Path, limits: m.Limits | None = None) -> None:
        self.source = source
        self.folder = folder
        self.folders: tuple[Path, ...] = (folder,)
        """Where `module:attr` references look for `module.py`, in order."""
        self.limits = limits or m.Limits()
        self.workflow = "workflow"
        """The workflow's name (its cascades' tuned versions are stored under it)."""
        self.sources: list[Source] = [source]
        self.models: list[ModelUse] = []
        self.all_ids: dict[str, tuple[str, int]] = {}
        """Every step id in the file, with its kind and line, for messages about ids that
        exist but are out of reach."""
        self._agent_files: dict[Path, AgentFile | None] = {}
        self._building_agents: list[Path] = []
        self._built_agents: dict[tuple[Path, str], ScopedAgent] = {}

    # -- shared checks ------------------------------------------------------------------------

    # -- shared checks ------------------------------------------------------------------------

    def validate(
        self, model: type[M], data: Any, path: Path_, what: str, source: Source | None = None
    ) -> M | None:
        """`data` as `model`, or None with every problem recorded at its position."""
        source = source or self.source
        try:
            return model.model_validate(data)
        except ValidationError as e:
            for error in e.errors():
                self._pydantic_problem(model, error, path, what, source)
            return None

    def _pydantic_problem(
        self, model: type[BaseModel], error: Any, path: Path_, what: str, source: Source
    ) -> None:
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _keys(_model_at(model, loc[:-1]))
            source.key_error(
                (*path, *loc),
                f"unknown key {key!r} in {_what(what, loc)}{did_you_mean(key, allowed)}"
                f"; allowed: {', '.join(allowed)}",
            )
        elif kind == "missing":
            source.error((*path, *loc[:-1]), f"missing key {loc[-1]!r} in {_what(what, loc)}")
        else:
            name = f"{loc[-1]}: " if loc and isinstance(loc[-1], str) else ""
            message = pydantic_message(error)
            if kind in ("model_type", "dict_type") and not loc:
                message = f"{what} must be a mapping of keys to values"
            if kind == "literal_error" and isinstance(error.get("input"), str):
                choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
                message += did_you_mean(error["input"], choices)
            source.error((*path, *loc), f"{name}{message}")

    def expression(
        self,
        text: Any,
        path: Path_,
        where: Where,
        *,
        template: bool = False,
        lenient: bool = False,
        source: Source | None = None,
    ) -> Any:
        """A compiled expression (or template) over the scope, its references checked."""
        source = source or self.source
        if not isinstance(text, str):
            source.error(path, f"expected {'a template' if template else 'an expression'} (text)")
            return None
        try:
            tree = ex.parse_template(text) if template else ex.parse_expression(text)
        except ex.ExpressionError as e:
            source.problem(
                source.in_text(path, e.line, None),
                f"invalid {'template' if template else 'expression'}: {e.message}",
            )
            return None
        try:  # unknown filters and tests are found when compiling (analysing compiles too)
            found = ex.analyse(tree)
            compiled: Any = (
                ex.compile_template(text, lenient_undefined=lenient)
                if template
                else ex.compile_expression(text, lenient_undefined=lenient)
            )
        except jinja2.TemplateSyntaxError as e:
            kind = "template" if template else "expression"
            unknown = re.search(r"No (filter|test) named '([^']+)'", e.message or "")
            needle, hint = None, ""
            if unknown:
                known = ex.strict.filters if unknown[1] == "filter" else ex.strict.tests
                needle, hint = unknown[2], did_you_mean(unknown[2], known)
            source.problem(
                source.in_text(path, e.lineno or 1, needle), f"invalid {kind}: {e.message}{hint}"
            )
            return None
        self._check_references(found, text, path, where, source)
        return compiled

    def _check_references(
        self, found: ex.Analysis, text: str, path: Path_, where: Where, source: Source
    ) -> None:
        for name in sorted(found.variables - where.variables - JINJA_GLOBALS):
            line = _line_of(text, name)
            source.problem(
                source.in_text(path, line, name),
                f"unknown variable {name!r}{did_you_mean(name, where.variables)}: "
                f"{where.step} can use {', '.join(sorted(where.variables))}",
            )
        for ref, line in found.steps:
            if ref in where.visible or where.any_steps:
                continue
            pos = source.in_text(path, line, ref)
            if ref in where.later:
                source.problem(
                    pos,
                    f"{where.step} refers to steps.{ref}, which runs after it: "
                    f"move {ref!r} before it",
                )
            elif ref in self.all_ids:
                _kind, at = self.all_ids[ref]
                source.problem(
                    pos,
                    f"{where.step} refers to steps.{ref} (line {at}), which has not run by then: "
                    "refer only to earlier steps of the same chain or of an enclosing one",
                )
            else:
                hint = did_you_mean(ref, where.visible)
                known = ", ".join(where.visible) or "none yet"
                source.problem(
                    pos, f"unknown step {ref!r} in steps.{ref}{hint}; steps before it: {known}"
                )

    def text_or_file(self, value: str, path: Path_, folder: Path, source: Source) -> str | None:
        """Instructions: a file when the value is one line ending in .md or .txt."""
        stripped = value.strip()
        if "\n" in stripped or not stripped.lower().endswith((".md", ".txt")):
            return value
        file = folder / stripped
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as e:
            source.error(path, f"cannot read instructions file {stripped}: {e.strerror}")
        except UnicodeDecodeError:
            source.error(path, f"instructions file {stripped} is not UTF-8 text")
        return None

    def output(self, value: Any, path: Path_, folder: Folders, source: Source) -> Any:
        try:
            return output_type(value, folder)
        except SchemaProblem as e:
            source.error((*path, *e.path), e.message)
            return None

    def model(self, name: str | None, path: Path_, source: Source) -> str | None:
        if name is not None:
            self.models.append(ModelUse(name, source, path))
        return name

    def function(self, ref: Any, path: Path_, folder: Folders, source: Source) -> Any:
        if not isinstance(ref, str):
            source.error(path, "expected an import path module:function")
            return None
        try:
            target = resolve(ref, folder)
        except ImportProblem as e:
            source.error(path, str(e))
            return None
        if not callable(target):
            source.error(path, f"{ref} is not a function")
            return None
        return target

    # -- steps --------------------------------------------------------------------------------

    def collect_ids(self, data: Any, path: Path_ = ()) -> None:
        """Note every step id in the file (a pre-pass, for messages)."""
        if isinstance(data, dict):
            if isinstance(data.get("id"), str) and "kind" in data:
                self.all_ids.setdefault(
                    data["id"], (str(data["kind"]), self.source.at((*path, "id")).line)
                )
            for key, value in data.items():
                self.collect_ids(value, (*path, key))
        elif isinstance(data, list):
            for index, value in enumerate(data):
                self.collect_ids(value, (*path, index))

    def tool_function(self, ref: str, path: Path_, folder: Folders, source: Source) -> Any:
        try:
            target = resolve_tool(ref, folder)
        except ImportProblem as e:
            source.error(path, f"missing tool {ref!r}: {e}")
            return None
        if not callable(target):
            source.error(path, f"tool {ref!r} is not a function")
            return None
        return target

    # -- built by the subclasses -------------------------------------------------------------

    @abc.abstractmethod
    def step(
        self, raw: Any, path: Path_, where: Where, *, default_id: str | None = None
    ) -> Step[Any, Any] | None:
        """One step, built; None when it has problems (recorded)."""

    @abc.abstractmethod
    def llm_step(
        self,
        spec: m.LLMSpec,
        name: str,
        path: Path_,
        where: Where,
        *,
        default_output: Any = str,
        output_given: bool = True,
    ) -> ScopedLLM | None:
        """An llm step from its spec."""

    @abc.abstractmethod
    def agent_from_file(
        self,
        file: Path,
        at: Path_,
        source: Source,
        where: Where,
        name: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> ScopedAgent | None:
        """The agent of an agent file."""


def _keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that validates the value at `loc` inside `model`."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or n: f for n, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif isinstance(part, int):
            current = _element(current)
        else:
            current = _element(current, mapping=True)
        current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """`X` from `Annotated[X, ...]` and `X | None`."""
    for _ in range(5):
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            tp = args[0]
        elif args and type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
        else:
            break
    return tp


def _element(tp: Any, *, mapping: bool = False) -> Any:
    args = typing.get_args(_unwrap(tp))
    if not args:
        return None
    return args[-1] if mapping else args[0]


def _what(what: str, loc: Sequence[Any]) -> str:
    names = [p for p in loc[:-1] if isinstance(p, str)]
    return f"{names[-1]}" if names else what


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines() or [""], start=1):
        if re.search(rf"\b{re.escape(needle)}\b", line):
            return number
    return 1


def shown(file: Path) -> str:
    """A path as shown in messages: relative to the working folder when inside it."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)
