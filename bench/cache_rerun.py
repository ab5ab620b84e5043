"""A re-run of a batch costs nothing: every deterministic call is answered from the cache.

The email-triage workflow runs twice over the sample inbox in one process, on a scripted
model that answers after 20 ms (a stand-in for a hosted model's latency), with the SQLite run
store and its response cache. The second run should make 0 model calls; its wall time is
given as a ratio to the first run's (the baseline, measured in the same process).

Run: .venv/bin/python bench/cache_rerun.py  (rewrites bench/RESULTS-cache.md)
"""

from __future__ import annotations

import asyncio
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

from llmflow import ModelRequest, RunStore, run_batch
from llmflow.apps.email_triage import SAMPLE_INBOX, build, load_inbox
from llmflow.models.cache import ResponseCache
from llmflow.testing import ScriptedModel, scripted_gateway

RESULTS = Path(__file__).with_name("RESULTS-cache.md")


def answer(request: ModelRequest) -> str:
    if request.schema_name == "classify":
        return json.dumps({"category": "support", "priority": "normal"})
    if request.schema_name == "extract":
        return json.dumps(
            {"request": "Help.", "deadline": None, "order_numbers": [], "invoice_numbers": [],
             "needs_reply": True}
        )  # fmt: skip
    return "A short text."


async def measure(tmp: Path) -> list[tuple[str, float, int, int]]:
    store = RunStore(tmp / "runs.db")
    model = ScriptedModel(answer, latency_s=0.02)
    gateway = scripted_gateway(model)
    gateway.cache = ResponseCache(store)
    items = load_inbox(SAMPLE_INBOX)
    rows = []
    for label in ("first run", "second run (same inbox)"):
        before = len(model.requests)
        t0 = time.perf_counter()
        batch = await run_batch(build(), items, gateway=gateway, store=store, concurrency=4)
        wall = time.perf_counter() - t0
        calls = store.rows("model_calls", batch.run_id)
        rows.append((label, wall, len(model.requests) - before, sum(c["cached"] for c in calls)))
    store.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(measure(Path(tmp)))
    first = rows[0][1]
    table = "| run | wall s | model calls | cache hits | wall vs first run |\n"
    table += "|---|---:|---:|---:|---:|\n"
    table += "".join(
        f"| {label} | {wall:.2f} | {calls} | {hits} | {wall / first:.3f} |\n"
        for label, wall, calls, hits in rows
    )
    print(table)
    RESULTS.write_text(
        f"# Re-running a batch\n\nMeasured {datetime.date.today()} by `bench/cache_rerun.py` on "
        f"Python {platform.python_version()} ({platform.machine()}): email-triage over the "
        f"{len(load_inbox(SAMPLE_INBOX))}-mail sample inbox, twice in one process, on a scripted "
        "model answering after 20 ms, with the run store's response cache. Target: the second "
        f"run makes 0 model calls.\n\n{table}",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
