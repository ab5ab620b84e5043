"""The urgency cues code finds for the email triage's priority ml tier (`priority_cues.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmflow import MLStep
from llmflow.apps.email_triage.classifier import classification_text, ml_text
from llmflow.apps.email_triage.priority_cues import cues, with_cues


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("Could you send the parts by tomorrow?", "cue_deadline_soon"),
        ("Necesito el cambio de talla para mañana.", "cue_deadline_soon"),
        ("Wir brauchen die Ware bis Freitag.", "cue_deadline_soon"),
        ("Please confirm by Friday.", "cue_deadline_soon"),
        ("请明天之前回复", "cue_deadline_soon"),
        ("明日までにお願いします", "cue_deadline_soon"),
        ("أحتاجه غدا", "cue_deadline_soon"),
        ("אני צריך את זה מחר", "cue_deadline_soon"),
        ("URGENT: please call me", "cue_urgent_word"),
        ("Bitte dringend prüfen", "cue_urgent_word"),
        ("Sprawa pilne", "cue_urgent_word"),
        ("紧急：订单问题", "cue_urgent_word"),
        ("至急ご確認ください", "cue_urgent_word"),
        ("긴급 요청입니다", "cue_urgent_word"),
        ("طلب عاجل", "cue_urgent_word"),
        ("בקשה דחוף", "cue_urgent_word"),
        ("FYI, no action needed", "cue_no_action"),
        ("仅供参考", "cue_no_action"),
    ],
)
def test_a_cue_fires_in_many_languages(text: str, cue: str) -> None:
    assert cue in cues(text)


def test_a_calm_mail_has_no_cue_and_is_read_unchanged() -> None:
    calm = classification_text(
        "Anna Berg <anna@example.com>",
        "Question about the Talus 45 backpack",
        "Hello, does the Talus 45 fit a 15-inch laptop? I ordered a jacket from you on "
        "Thursday and liked it. Best, Anna",
    )
    assert cues(calm) == []
    assert with_cues(calm) == calm


def test_only_the_priority_ml_tier_reads_the_cues() -> None:
    text = "Subject: urgent\n\nPlease refund it today."
    assert ml_text("priority")(text).endswith("\n\ncue_deadline_soon cue_urgent_word")
    assert ml_text("category")(text) == text


def test_the_stored_priority_tier_reads_the_cues_when_loaded(tmp_path: Path) -> None:
    """Trained on cued texts, the tier must read cued texts in a later run too, when it is
    loaded from the state directory instead of trained."""
    from llmflow.apps.email_triage import classifier

    labels = {"priority": ["urgent", "high", "normal", "low"]}
    for _ in ("trained and stored", "loaded"):
        [flow] = classifier.cascades(tmp_path / "home", labels)
        [ml] = [step for step, _ in flow.tiers if isinstance(step, MLStep)]
        assert ml.text is with_cues
        assert ml.data_sha256 == classifier.examples_sha256("priority")
