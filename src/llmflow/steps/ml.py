"""Software 2.0 and 1.0 classifiers: a trained text classifier, and keyword/regex rules.

Both answer a `Label` (a label and a confidence in [0, 1]), so either can be a tier of a
cascade. The ml step's default model is TF-IDF (word 1–2-grams) + logistic regression with
calibrated probabilities (scikit-learn). Models are saved with skops, whose loader refuses
any type not on its trusted list: an untrusted file is never unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .base import Step
from .context import RunContext
from .label import Label

TRUSTED_TYPES = frozenset(
    {
        # Beyond skops' own trusted list: what llmflow's default text classifier is made of.
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    }
)


def read_labelled(path: str | Path) -> tuple[list[str], list[str]]:
    """Texts and labels from JSONL rows `{"text": ..., "label": ...}` in the file at `path`."""
    path = Path(path)
    texts: list[str] = []
    labels: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", source=str(path)) from e
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            texts.append(str(row["text"]))
            labels.append(str(row["label"]))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(
                f'line {number}: expected {{"text": ..., "label": ...}} ({e})', source=str(path)
            ) from e
    if len(set(labels)) < 2:
        raise InputError("needs examples of at least two labels", source=str(path))
    return texts, labels


def text_classifier(
    texts: Sequence[str], labels: Sequence[str], *, char_ngrams: bool = False
) -> Any:
    """TF-IDF word 1–2-grams + logistic regression, probabilities calibrated by 3-fold CV
    (fewer folds when a label has few examples).

    With 200 texts or more, n-grams seen only once are dropped: on the bundled data sets that
    kept accuracy and made training faster and the model file smaller (checked by hand, not
    benchmarked). `char_ngrams` adds character 2–5-grams within words: on short texts with
    many labels that raised the ml tier's 5-fold accuracy from 0.706 to 0.772 on banking77
    and from 0.734 to 0.791 on clinc150 (bench/RESULTS-cascade-eval.md before and after
    commit 280e04b), for a larger model file."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    smallest = min(list(labels).count(label) for label in set(labels))
    folds = max(2, min(3, smallest))
    features: Any = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(texts) >= 200 else 1
    )
    if char_ngrams:
        characters = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=features.min_df
        )
        features = make_union(features, characters)
    model = make_pipeline(
        features,
        CalibratedClassifierCV(LogisticRegression(C=10, max_iter=300, tol=1e-3), cv=folds),
    )
    model.fit(list(texts), list(labels))
    return model


class MLStep(Step[Any, Label]):
    """A trained classic model as a step: text in, `Label` out."""

    kind = "ml"

    def __init__(
        self,
        name: str,
        model: Any,
        *,
        text: Callable[[Any], str] = str,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.model = model
        """A fitted scikit-learn classifier with `predict_proba`."""
        self.text = text
        """Turns the step's input into the text the model reads."""
        self.source: Path | None = None
        """The file the model was last loaded from or saved to, if any."""

    @classmethod
    def train(
        cls,
        name: str,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        char_ngrams: bool = False,
        **options: Any,
    ) -> MLStep:
        """Fit the default text classifier on labelled examples (see `text_classifier`)."""
        return cls(name, text_classifier(texts, labels, char_ngrams=char_ngrams), **options)

    @classmethod
    def load(cls, name: str, path: Path, **options: Any) -> MLStep:
        """Load a model saved by `save`; refuses a file holding untrusted types."""
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read model file {path}: {e}") from e
        unknown = [t for t in untrusted if t not in TRUSTED_TYPES]
        if unknown:
            raise ConfigError(
                f"model file {path} holds types llmflow does not trust: {unknown} "
                "(retrain it with llmflow, or inspect it with skops before trusting it)"
            )
        step = cls(name, sio.load(path, trusted=untrusted), **options)
        step.source = path
        return step

    def save(self, path: Path) -> Path:
        """Save with skops (no pickle)."""
        import skops.io as sio

        path.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(self.model, path)
        self.source = path
        return path

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    def predict(self, texts: Iterable[str]) -> list[Label]:
        """Labels for many texts at once (much faster than one by one)."""
        texts = list(texts)
        if not texts:
            return []
        probabilities = self.model.predict_proba(texts)
        classes = self.labels
        out = []
        for row in probabilities:
            best = int(row.argmax())
            out.append(Label(label=classes[best], confidence=float(row[best])))
        return out

    async def run(self, input: Any, ctx: RunContext) -> Label:
        return self.predict([self.text(input)])[0]


class RulesStep(Step[Any, Label]):
    """Keyword/regex rules: the first rule that matches answers with confidence 1; when
    none matches, the step abstains (label None, confidence 0)."""

    kind = "rules"

    def __init__(
        self,
        name: str,
        rules: Sequence[tuple[str, str]],
        *,
        text: Callable[[Any], str] = str,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.rules: list[tuple[re.Pattern[str], str]] = []
        for pattern, label in rules:
            try:
                self.rules.append((re.compile(pattern, re.IGNORECASE), label))
            except re.error as e:
                raise ConfigError(
                    f"rules step {name!r}: pattern {pattern!r} is not a valid regex: {e}"
                ) from e
        self.text = text

    async def run(self, input: Any, ctx: RunContext) -> Label:
        text = self.text(input)
        for pattern, label in self.rules:
            if pattern.search(text):
                return Label(label=label, confidence=1.0)
        return Label(label=None, confidence=0.0)


rules = RulesStep
"""`rules(name, [(regex, label), ...], text=...)`: a rules step."""
