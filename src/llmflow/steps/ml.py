"""Software 2.0 and 1.0 classifiers: a trained text classifier, and keyword/regex rules.

Both answer a `Label` (a label and a confidence in [0, 1]), so either can be a tier of a
cascade. The ml step's default model is TF-IDF (word 1–2-grams) + logistic regression with
calibrated probabilities (scikit-learn). Models are saved with skops, whose loader refuses
any type not on its trusted list: an untrusted file is never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
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
        # The novelty reference: the training rows' features (data, no code).
        "scipy.sparse._csr.csr_matrix",
    }
)

TRAIN_OPTIONS = ("char_ngrams", "out_of_scope", "novelty")
"""Every training option of `MLStep.train`, also accepted by workflow files' ml steps."""


def data_hash(texts: Sequence[str], labels: Sequence[str], options: dict[str, Any]) -> str:
    """SHA-256 of training rows and options: what a stored version says it was trained on."""
    digest = hashlib.sha256()
    digest.update(json.dumps(options, sort_keys=True).encode())
    for text, label in zip(texts, labels, strict=True):
        digest.update(json.dumps([text, label]).encode() + b"\n")
    return digest.hexdigest()


def read_labelled(
    path: str | Path, labels_known: Collection[str] | None = None
) -> tuple[list[str], list[str]]:
    """Texts and labels from JSONL rows `{"text": ..., "label": ...}` in the file at `path`
    (with `labels_known`: each label one of them)."""
    path = Path(path)
    texts: list[str] = []
    labels: list[str] = []
    expected = '{"text": ..., "label": ...}'
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", source=str(path)) from e
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM is no text
        except UnicodeDecodeError as e:
            raise InputError(
                f"line {number}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                "save the file as UTF-8",
                source=str(path),
            ) from e
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            where = f", column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
            raise InputError(
                f"line {number}{where}: not JSON ({getattr(e, 'msg', e)}): expected {expected}",
                source=str(path),
            ) from e
        if not isinstance(row, dict):
            raise InputError(
                f"line {number}: a JSON {type(row).__name__}: expected {expected}",
                source=str(path),
            )
        for field in ("text", "label"):
            if field not in row:
                raise InputError(
                    f'line {number}: no "{field}": expected {expected}', source=str(path)
                )
            if row[field] is None or isinstance(row[field], (dict, list, bool)):
                raise InputError(
                    f'line {number}: "{field}" is {json.dumps(row[field])}: expected a string',
                    source=str(path),
                )
        label = str(row["label"])
        if labels_known is not None and label not in labels_known:
            alike = [k for k in labels_known if k.casefold() == label.casefold()]
            hint = f"did you mean {alike[0]!r}?" if alike else "correct it or leave the row out"
            raise InputError(
                f"line {number}: label {label!r} is not among the labels "
                f"({', '.join(sorted(labels_known))}): {hint}",
                source=str(path),
            )
        texts.append(str(row["text"]))
        labels.append(label)
    if not labels:
        raise InputError(f"has no rows: expected one {expected} per line", source=str(path))
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

    counts = Counter(labels)
    once = sorted(label for label, n in counts.items() if n < 2)
    if once:  # calibrated probabilities need two folds of each label
        raise ConfigError(
            f"cannot train on one example of {', '.join(map(repr, once))}: give each label "
            "two examples or more"
        )
    folds = max(2, min(3, min(counts.values())))
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
    """A trained classic model as a step: text in, `Label` out.

    It abstains (label None, confidence 0) on an input it should not answer:
    - predicted as `out_of_scope`, a label learned from examples of what is not the tier's
      business (clinc150's `oos`): such inputs go on to the next tier instead of getting a
      confident wrong label;
    - more novel than `max_novelty`: 1 − the cosine similarity of the input to its nearest
      training row, in the model's own features (`novelty` when training sets the limit).
    """

    kind = "ml"

    def __init__(
        self,
        name: str,
        model: Any,
        *,
        text: Callable[[Any], str] = str,
        out_of_scope: str | None = None,
        max_novelty: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.model = model
        """A fitted scikit-learn classifier with `predict_proba`."""
        self.text = text
        """Turns the step's input into the text the model reads."""
        self.source: Path | None = None
        """The file the model was last loaded from or saved to, if any."""
        self.out_of_scope = out_of_scope
        """A label the tier never answers: predicting it abstains."""
        self.max_novelty = max_novelty
        """Abstain on inputs whose novelty is above this (None: never)."""
        self.reference: Any = None
        """The training rows' features, unit length (sparse): what novelty is measured to."""
        self.training: tuple[list[str], list[str]] | None = None
        """The texts and labels the model was trained on, when known."""
        self.options: dict[str, Any] = {}
        """The training options (`TRAIN_OPTIONS`)."""
        self.made_for: str | None = None
        """Loaded from a stored classifier version: the data hash of the workflow's own ml
        tier that version replaces (`data_sha256` of the tier trained from `train:`)."""

    @property
    def data_sha256(self) -> str | None:
        """The hash of the training rows and options (None: not known)."""
        if self.training is None:
            return None
        return data_hash(*self.training, self.options)

    @classmethod
    def train(
        cls,
        name: str,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        char_ngrams: bool = False,
        out_of_scope: str | None = None,
        novelty: float | None = None,
        **options: Any,
    ) -> MLStep:
        """Fit the default text classifier on labelled examples (see `text_classifier`).

        `out_of_scope` names a label whose examples teach the tier what to leave to the next
        one; `novelty` (a share, e.g. 0.98) makes the tier abstain on inputs more unlike the
        training rows than that share of the training rows are unlike the others."""
        step = cls(
            name,
            text_classifier(texts, labels, char_ngrams=char_ngrams),
            out_of_scope=out_of_scope,
            **options,
        )
        step.training = (list(texts), list(labels))
        step.options = {"char_ngrams": char_ngrams, "out_of_scope": out_of_scope,
                        "novelty": novelty}  # fmt: skip
        if novelty is not None:
            if not 0 < novelty <= 1:
                raise ConfigError(f"ml step {name!r}: novelty must be in (0, 1], not {novelty}")
            step.reference = step._features(texts)
            step.max_novelty = _novelty_limit(step.reference, novelty)
        return step

    def retrained(self, texts: Sequence[str], labels: Sequence[str]) -> MLStep:
        """The same kind of tier (options, text) trained on other rows."""
        opts = {k: v for k, v in self.options.items() if k in TRAIN_OPTIONS}
        return MLStep.train(self.name, texts, labels, text=self.text, **opts)

    def _features(self, texts: Sequence[str]) -> Any:
        from sklearn.preprocessing import normalize

        return normalize(self.model.steps[0][1].transform(list(texts))).tocsr()

    def novelty(self, texts: Sequence[str]) -> list[float]:
        """1 − cosine similarity to the nearest training row, per text (0 without a reference)."""
        if self.reference is None or not texts:
            return [0.0] * len(texts)
        similarity = self._features(texts) @ self.reference.T
        nearest = similarity.max(axis=1).toarray().ravel()
        return [float(max(0.0, 1.0 - s)) for s in nearest]

    @classmethod
    def load(cls, name: str, path: Path, **options: Any) -> MLStep:
        """Load a model saved by `save`; refuses a file holding untrusted types."""
        step = cls(name, _load_trusted(path), **options)
        extra_file = _extra(path)
        if extra_file.is_file():
            extra = _load_trusted(extra_file)
            step.out_of_scope = extra.get("out_of_scope", step.out_of_scope)
            step.max_novelty = extra.get("max_novelty", step.max_novelty)
            step.reference = extra.get("reference")
            step.options = dict(extra.get("options") or {})
            training = extra.get("training")
            if training is not None:
                step.training = (list(training["texts"]), list(training["labels"]))
        step.source = path
        return step

    def save(self, path: Path) -> Path:
        """Save with skops (no pickle): the model, and beside it (`<name>.extra.skops`) the
        out-of-scope label, the novelty reference and the training rows, when known."""
        import skops.io as sio

        path.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(self.model, path)
        extra: dict[str, Any] = {
            "out_of_scope": self.out_of_scope,
            "max_novelty": self.max_novelty,
            "reference": self.reference,
            "options": self.options,
            "training": None
            if self.training is None
            else {"texts": self.training[0], "labels": self.training[1]},
        }
        sio.dump(extra, _extra(path))
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
        novel = self.novelty(texts) if self.max_novelty is not None else [0.0] * len(texts)
        out = []
        for row, novelty in zip(probabilities, novel, strict=True):
            best = int(row.argmax())
            label = classes[best]
            if label == self.out_of_scope or (
                self.max_novelty is not None and novelty > self.max_novelty
            ):
                out.append(Label(label=None, confidence=0.0))  # not this tier's business
            else:
                out.append(Label(label=label, confidence=float(row[best])))
        return out

    async def run(self, input: Any, ctx: RunContext) -> Label:
        return self.predict([self.text(input)])[0]


def _extra(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".skops") + ".extra.skops")


def _load_trusted(path: Path) -> Any:
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
    return sio.load(path, trusted=untrusted)


def _novelty_limit(reference: Any, share: float) -> float:
    """The novelty that `share` of the training rows stay within, each measured to the
    others (itself left out)."""
    import numpy as np

    similarity = (reference @ reference.T).tolil()
    similarity.setdiag(0)
    nearest = similarity.tocsr().max(axis=1).toarray().ravel()
    novelty = 1.0 - nearest
    return float(np.quantile(novelty, share))


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
