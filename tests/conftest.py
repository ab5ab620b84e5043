"""Every test runs with its own state directory, no provider key, and no network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.testing import forbid_network


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LLMFLOW_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMFLOW_MODEL", "LLMFLOW_RPM"):
        monkeypatch.delenv(name, raising=False)
    # A developer's OpenTelemetry collector gets no test's spans (tests/test_otel.py sets its own).
    for name in ("LLMFLOW_OTEL", "LLMFLOW_OTEL_CONTENT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # so no developer's .env is read
    with forbid_network():
        yield


@pytest.fixture
def inbox() -> Path:
    return SAMPLE_INBOX
