"""The public API is listed once, sorted and complete (after httpx's test of the same name)."""

from __future__ import annotations

import llmflow


def test_all_is_sorted_and_complete() -> None:
    assert llmflow.__all__ == sorted(llmflow.__all__)
    public = {
        name
        for name, value in vars(llmflow).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("llmflow.")
    }
    assert public == set(llmflow.__all__)
