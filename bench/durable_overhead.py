"""Durable vs in-memory: the cost per step of checkpointing every model call (DBOS on
SQLite WAL), on a three-call chain with a scripted model that answers at once.

Both runs happen in this process, one after the other, on the same items.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from llmflow import durable
from llmflow.durable.batch import RunSpec, fingerprint, keys_digest, run_durable
from llmflow.patterns.chain import chain
from llmflow.runtime.runner import Item, Workflow, run_batch
from llmflow.steps.llm import llm
from llmflow.testing import ScriptedModel, scripted_gateway

ITEMS, STEPS = 200, 3


def workflow() -> Workflow:
    steps = [llm(f"s{i}", instructions="Echo.", prompt="{{ input }}") for i in range(STEPS)]
    return Workflow(name="bench", step=chain("bench", *steps))


async def main() -> None:
    items = [Item(f"{i}", f"item {i}") for i in range(ITEMS)]
    wf = workflow()
    gateway = scripted_gateway(ScriptedModel(lambda r: "ok"))
    t0 = time.perf_counter()
    await run_batch(wf, items, gateway=gateway, concurrency=4)
    memory = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as home:
        durable.launch(durable.DurableSettings(home=Path(home)))
        spec = RunSpec(run_id="bench", workflow="bench", source=None, items_total=ITEMS,
                       keys_digest=keys_digest(items), code=fingerprint(wf.step),
                       concurrency=4, cache=False)  # fmt: skip
        t0 = time.perf_counter()
        await run_durable(wf, items, spec=spec, gateway=gateway)
        dur = time.perf_counter() - t0
        durable.shutdown()
    steps = ITEMS * STEPS
    print(f"{ITEMS} items x {STEPS} model calls, concurrency 4, scripted model (no latency)")
    print(f"in-memory: {memory:.3f} s ({memory / steps * 1e3:.3f} ms/step)")
    print(f"durable (SQLite WAL): {dur:.3f} s ({dur / steps * 1e3:.3f} ms/step)")
    print(f"overhead per step: {(dur - memory) / steps * 1e3:.2f} ms; ratio {dur / memory:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
