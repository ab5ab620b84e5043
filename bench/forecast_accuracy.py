"""How close is a forecast from 10 sample emails to the full inbox, on the same model?

Runs email-triage on the embedded model over 10 sample emails (every fourth mail of the sample
inbox), learns the per-item profile as `llmflow estimate` does, and forecasts the whole
inbox; then runs the whole inbox (the 10 sample mails come from the response cache with their
original token counts) and compares the forecast with the actual token totals. Target: within
±15 %. Takes about 10 minutes on 2 cores.

Run: .venv/bin/python bench/forecast_accuracy.py  (rewrites bench/RESULTS-forecast.md)
"""

from __future__ import annotations

import asyncio
import datetime
import platform
import tempfile
from pathlib import Path

from llmflow import Gateway, RunStore, Settings, run_batch
from llmflow.analysis.forecast import learn
from llmflow.apps.email_triage import SAMPLE_INBOX, build, load_inbox
from llmflow.models.cache import ResponseCache

RESULTS = Path(__file__).with_name("RESULTS-forecast.md")


async def measure(tmp: Path) -> dict[str, tuple[float, int]]:
    store = RunStore(tmp / "runs.db")
    gateway = Gateway(Settings(home=tmp))
    gateway.cache = ResponseCache(store)
    items = load_inbox(SAMPLE_INBOX)
    sample = items[::4][:10]
    runs = {}
    for label, batch_items in (("sample", sample), ("full", items)):
        batch = await run_batch(build(), batch_items, gateway=gateway, store=store, concurrency=1)
        runs[label] = (batch.run_id, len(batch_items))
    sample_id, sample_n = runs["sample"]
    full_id, full_n = runs["full"]
    profile = learn(store.rows("model_calls", sample_id), sample_n)
    calls = store.rows("model_calls", full_id)
    store.close()
    actual_in = sum(c["input_tokens"] or 0 for c in calls)
    actual_out = sum(c["output_tokens"] or 0 for c in calls)
    return {
        "input tokens": (profile.mean_input * full_n, actual_in),
        "output tokens": (profile.mean_output * full_n, actual_out),
        "all tokens": ((profile.mean_input + profile.mean_output) * full_n, actual_in + actual_out),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(Path(tmp)))
    table = "| measure | forecast | actual | ratio | target | met |\n|---|---:|---:|---:|---|---|\n"
    for name, (forecast, actual) in figures.items():
        ratio = forecast / actual
        met = "yes" if abs(ratio - 1) <= 0.15 else "no"
        table += f"| {name} | {forecast:,.0f} | {actual:,} | {ratio:.3f} | ±15 % | {met} |\n"
    print(table)
    RESULTS.write_text(
        f"# Forecast accuracy\n\nMeasured {datetime.date.today()} by `bench/forecast_accuracy.py`"
        f" on Python {platform.python_version()} ({platform.machine()}): email-triage on the "
        "embedded model (SmolLM2-135M), forecast from 10 sample emails (every fourth of the "
        f"{len(load_inbox(SAMPLE_INBOX))}-mail sample inbox) vs the actual token totals of the "
        f"whole inbox, in the same process.\n\n{table}",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
