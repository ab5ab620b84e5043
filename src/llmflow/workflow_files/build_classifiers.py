"""Building the classifier steps of workflow files: rules, ml (a saved model, or trained from
examples when the file is loaded) and classify (the LLM tier, with a confidence)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2

from ..errors import ConfigError
from ..steps.base import Step
from ..steps.classify import LLMClassifier
from ..steps.ml import MLStep, rules
from . import schema as m
from .check import Checker, Where
from .scope import Scope, TextOf, scope_of, template_text
from .source import Path_

_trained: dict[tuple[Path, int, str, str | None, str], MLStep] = {}
"""Tiers trained from examples in this process, by file, its mtime, label field, text and
training options."""


class ScopedClassifier(LLMClassifier):
    """The LLM tier of a classifier, its prompt a sandboxed template over the scope."""

    template: jinja2.Template | None = None

    def request(self, input: Any, sampling: Any = None) -> Any:
        # The parent renders a plain string as it is: render the scope here.
        return super().request(template_text(self.template, scope_of(input)), sampling)


class ClassifierBuilder(Checker):
    """Builds rules, ml and classify steps."""

    def _rules(
        self, spec: m.RulesSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        ok = True
        for index, rule in enumerate(spec.rules):
            try:
                re.compile(rule.pattern)
            except re.error as e:
                self.source.error(
                    (*path, "rules", index, "pattern"), f"not a valid regular expression: {e}"
                )
                ok = False
        text = self._text(spec.text, path, where)
        if not ok or text is None:
            return None
        return rules(name, [(r.pattern, r.label) for r in spec.rules], text=text)

    def _ml(self, spec: m.MLSpec, name: str, path: Path_, where: Where) -> Step[Any, Any] | None:
        text = self._text(spec.text, path, where)
        if (spec.model is None) == (spec.train is None):
            self.source.error(path, "an ml step needs model (a saved model) or train (examples)")
            return None
        if text is None:
            return None
        options = {"char_ngrams": spec.char_ngrams, "out_of_scope": spec.out_of_scope,
                   "novelty": spec.novelty}  # fmt: skip
        if spec.train is not None:
            trained = self._train(spec.train, spec.label_field, text, (*path, "train"), options)
            if trained is None:
                return None
            step = MLStep(name, trained.model, text=text, out_of_scope=spec.out_of_scope,
                          max_novelty=trained.max_novelty)  # fmt: skip
            step.reference, step.training, step.options = (
                trained.reference, trained.training, trained.options,
            )  # fmt: skip
            return step
        assert spec.model is not None
        file = self.folder / spec.model
        if not file.is_file():
            self.source.error((*path, "model"), f"no model file {spec.model} in {self.folder}")
            return None
        try:
            return MLStep.load(name, file, text=text, out_of_scope=spec.out_of_scope)
        except ConfigError as e:
            self.source.error((*path, "model"), str(e))
            return None

    def _train(
        self, examples: str, label_field: str, text: TextOf, at: Path_, options: dict[str, Any]
    ) -> MLStep | None:
        """A text classifier trained on the examples (once per process and file version).
        Each row is a JSON object: its text is the step's `text` template with the row as
        `input` (so training and running read the same text), else its `text` field."""
        file = self.folder / examples
        try:
            key = (file.resolve(), file.stat().st_mtime_ns, label_field, _source(text),
                   json.dumps(options, sort_keys=True))  # fmt: skip
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            self.source.error(at, f"cannot read examples {examples}: {reason}")
            return None
        if key in _trained:
            return _trained[key]
        texts, labels = [], []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                label = row[label_field]
                texts.append(text(Scope.make(row, {})) if text.template else str(row["text"]))
            except (json.JSONDecodeError, KeyError, TypeError, jinja2.TemplateError) as e:
                problem = f"no field {e}" if isinstance(e, KeyError) else str(e)
                self.source.error(at, f"{examples} line {number}: {problem}")
                return None
            labels.append(str(label))
        if len(set(labels)) < 2:
            self.source.error(at, f"{examples}: training needs examples of two labels or more")
            return None
        try:
            model = MLStep.train("ml", texts, labels, **options)
        except (ValueError, ConfigError) as e:
            self.source.error(at, f"cannot train on {examples}: {e}")
            return None
        _trained[key] = model
        return model

    def _classify(
        self, spec: m.ClassifySpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        instructions = self.text_or_file(
            spec.instructions, (*path, "instructions"), self.folder, self.source
        )
        template = None
        if spec.prompt is not None:
            template = self.expression(spec.prompt, (*path, "prompt"), where, template=True)
        model = self.model(spec.model, (*path, "model"), self.source)
        if len(set(spec.labels)) < 2:
            self.source.error((*path, "labels"), "a classifier needs two different labels or more")
            return None
        if instructions is None or (spec.prompt is not None and template is None):
            return None
        step = ScopedClassifier(
            name, spec.labels, instructions=instructions, model=model, votes=spec.votes
        )
        step.template = template
        return step

    def _text(self, template: str | None, path: Path_, where: Where) -> TextOf | None:
        if template is None:
            return TextOf(None)
        compiled = self.expression(template, (*path, "text"), where, template=True)
        return None if compiled is None else TextOf(compiled)


def _source(text: TextOf) -> str | None:
    return getattr(text.template, "llmflow_source", None)
