"""Evaluating a classifier's variants on labelled data: each tier alone, and the cascade.

Every tier answers each row it is needed on once (`tuning.answers` with `needed_rows`: the
LLM tier only on the rows the cascade passes on, unless `llm-only` is asked for); each
variant is then scored from those answers: a tier alone answers everything itself, the
cascade takes the first tier whose confidence clears its threshold and pays for every tier it
tried. So comparing variants costs at most one pass over the data, and every variant sees
exactly the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ..errors import ConfigError
from ..steps.label import Label
from .tuning import TierAnswers


@dataclass(frozen=True)
class VariantScore:
    name: str
    accuracy: float
    macro_f1: float
    usd: Decimal
    """Dollars for all rows."""
    seconds_per_item: float
    shares: dict[str, float]
    """Share of rows each tier answered."""
    rows: int

    @property
    def usd_per_1000(self) -> Decimal:
        return self.usd * 1000 / max(1, self.rows)


def variant_names(tiers: Sequence[str]) -> list[str]:
    return [*(f"{t}-only" for t in tiers), "cascade"]


def check_variants(variants: Sequence[str], tiers: Sequence[str]) -> list[str]:
    """`variants` if each names a tier's `-only` variant or `cascade`; else a ConfigError."""
    known = variant_names(tiers)
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise ConfigError(
            f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(known)}"
        )
    return list(variants)


def needed_rows(
    variants: Sequence[str], tiers: Sequence[str], thresholds: Sequence[float], n: int
) -> Callable[[int, list[list[Label]]], list[int]]:
    """For `tuning.answers`: the rows each tier must answer for `variants` to be scored, given
    the earlier tiers' answers. A `<tier>-only` variant needs its tier on every row; the
    cascade needs a tier only on the rows the tiers before it passed on."""

    def needed(tier: int, so_far: list[list[Label]]) -> list[int]:
        if f"{tiers[tier]}-only" in variants:
            return list(range(n))
        if "cascade" not in variants:
            return []
        rows = []
        for i in range(n):
            if all(
                so_far[t][i].label is None or so_far[t][i].confidence < thresholds[t]
                for t in range(tier)
            ):
                rows.append(i)
        return rows

    return needed


def score(
    tier_answers: TierAnswers,
    truth: Sequence[str],
    thresholds: Sequence[float],
    variants: Sequence[str],
) -> list[VariantScore]:
    """Scores of `variants` (`<tier>-only` or `cascade`) on rows labelled `truth`."""
    check_variants(variants, tier_answers.tiers)
    return [_score(tier_answers, truth, thresholds, v) for v in variants]


def _score(
    tier_answers: TierAnswers, truth: Sequence[str], thresholds: Sequence[float], variant: str
) -> VariantScore:
    from sklearn.metrics import f1_score

    tiers = tier_answers.tiers
    n = len(truth)
    predicted: list[str] = []
    usd = Decimal(0)
    seconds = 0.0
    counts = dict.fromkeys(tiers, 0)
    only = tiers.index(variant.removesuffix("-only")) if variant != "cascade" else None
    last = len(tiers) - 1
    for i in range(n):
        order = [only] if only is not None else range(len(tiers))
        for tier in order:
            said = tier_answers.answers[tier][i]
            usd += tier_answers.costs[tier][i]
            seconds += tier_answers.seconds[tier][i]
            final = only is not None or tier == last
            if said.label is not None and (final or said.confidence >= thresholds[tier]):
                predicted.append(said.label)
                counts[tiers[tier]] += 1
                break
            if final:  # the tier abstained: no answer, counted wrong
                predicted.append("")
                counts[tiers[tier]] += 1
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    labels = sorted(set(truth))
    f1 = f1_score(list(truth), predicted, labels=labels, average="macro", zero_division=0)
    return VariantScore(
        name=variant,
        accuracy=correct / max(1, n),
        macro_f1=float(f1),
        usd=usd,
        seconds_per_item=seconds / max(1, n),
        shares={t: c / max(1, n) for t, c in counts.items()},
        rows=n,
    )


def plot(scores: Sequence[VariantScore], path: Path, title: str) -> Path:
    """Cost per 1,000 items against accuracy, one point per variant (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ConfigError(
            "the plot needs matplotlib: pip install 'llmflow[analysis]' (or leave out --plot)"
        ) from e
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for s in scores:
        x = float(s.usd_per_1000)
        axes.scatter([x], [s.accuracy], s=60)
        axes.annotate(s.name, (x, s.accuracy), textcoords="offset points", xytext=(6, 4))
    axes.set_xlabel("cost per 1,000 items (USD)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return path
