"""Tuning a workflow's classifier cascades from data, and applying what was learned.

- `answers` (`tier_answers.py`) runs every tier of a cascade on labelled texts and meters
  each tier's cost.
- `calibrate_on` (`cascade_calibration.py`) picks per-tier thresholds on a validation split,
  checks them on the held-out rest (`llmflow calibrate` stores them as a new classifier
  version); `calibrate_from_audits` does it from live audits, optionally first retraining
  the ml tier on what the last tier labelled (`retrain`).
- `distill` (`distill.py`) trains the ml tier from the run history (the LLM's own decisions,
  with people's corrections taking precedence), calibrates it against the LLM, and stores it.
- `tuned` (`cascade_versions.py`) gives a cascade with its newest stored version applied; a
  workflow calls it when it is built, so a run after `llmflow calibrate` or `llmflow distill`
  uses the result.
"""

from __future__ import annotations

from .cascade_calibration import (
    AuditCalibration,
    CalibrationReport,
    baseline_meta,
    calibrate_from_audits,
    calibrate_on,
    decision_inputs,
    honest,
    pick,
    retrain,
    split,
    stored_baselines,
)
from .cascade_versions import (
    StaleVersionWarning,
    cascades,
    find_cascade,
    find_step,
    ml_tier,
    save_version,
    stale,
    stored_by_model,
    tuned,
    walk,
)
from .distill import Distillation, distill, history
from .tier_answers import TierAnswers, answers, out_of_fold, overlap

# Each job has its module (the versions, the tiers' answers, calibration, distillation);
# this one keeps the names callers have always imported from here.
__all__ = [
    "AuditCalibration",
    "CalibrationReport",
    "Distillation",
    "StaleVersionWarning",
    "TierAnswers",
    "answers",
    "baseline_meta",
    "calibrate_from_audits",
    "calibrate_on",
    "cascades",
    "decision_inputs",
    "distill",
    "find_cascade",
    "find_step",
    "history",
    "honest",
    "ml_tier",
    "out_of_fold",
    "overlap",
    "pick",
    "retrain",
    "save_version",
    "split",
    "stale",
    "stored_baselines",
    "stored_by_model",
    "tuned",
    "walk",
]
