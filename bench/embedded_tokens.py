"""Embedded generation speed: tokens/s through llmflow vs raw llama-cpp-python.

llmflow runs the embedded model (SmolLM2-135M, llama.cpp in-process) behind the gateway:
a worker thread, a lock, and the provider's concurrency limit and timeout. This checks
that all of it costs next to nothing next to generation itself. Both sides use the same
`Llama` instance (`load_llama()`), the same prompt, max_tokens=128 and temperature 0, and
start from a reset KV cache, so they generate the same tokens; the rounds alternate
(llmflow, raw, llmflow, ...) so that machine noise hits both alike. Tokens/s is each
response's completion tokens over the call's wall time (prompt evaluation included).

Run: .venv/bin/python bench/embedded_tokens.py  (rewrites bench/RESULTS-embedded.md)
"""

from __future__ import annotations

import asyncio
import datetime
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Nothing imports llama_cpp before llmflow.models.embedded, which sets OMP_WAIT_POLICY=PASSIVE
# (without it, llama.cpp's threads spin and speed collapses when anything else is busy).
from llmflow.models.client import Message, ModelRequest, Sampling
from llmflow.models.embedded import (
    REPEAT_PENALTY,
    EmbeddedClient,
    default_model_path,
    load_llama,
)
from llmflow.models.gateway import Gateway

PROMPT = "Write a short paragraph about hiking boots."
MAX_TOKENS, ROUNDS = 128, 5
RESULTS = Path(__file__).with_name("RESULTS-embedded.md")


async def through_llmflow(gateway: Gateway) -> tuple[int, float, str]:
    """Completion tokens, wall seconds and text of one call through `Gateway.complete`."""
    request = ModelRequest(
        messages=[Message("user", PROMPT)],
        sampling=Sampling(temperature=0.0, max_tokens=MAX_TOKENS),
    )
    t0 = time.perf_counter()
    response = await gateway.complete(request, model="local")
    return response.usage.output_tokens, time.perf_counter() - t0, response.text or ""


def raw(llama: Any) -> tuple[int, float, str]:
    """Completion tokens, wall seconds and text of one direct llama-cpp-python call."""
    t0 = time.perf_counter()
    llama.reset()
    result = llama.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        repeat_penalty=REPEAT_PENALTY,  # the sampling llmflow sends, so both do the same work
    )
    seconds = time.perf_counter() - t0
    text = result["choices"][0]["message"]["content"] or ""
    return result["usage"]["completion_tokens"], seconds, text


async def measure() -> dict[str, list[float]]:
    llama, gateway = load_llama(), Gateway()
    # Like for like: the raw side resets before each call, so llmflow's client does too
    # (with prefix reuse it would skip evaluating the repeated prompt).
    gateway.register("local", EmbeddedClient(prefix_reuse=False))
    client, _ = gateway.resolve("local")
    assert isinstance(client, EmbeddedClient)
    assert client.llama is llama, "llmflow and the raw side must share one Llama"
    ours, theirs = await through_llmflow(gateway), raw(llama)  # warm-up, not counted
    assert ours[2] == theirs[2], "at temperature 0 both sides must generate the same text"
    speeds: dict[str, list[float]] = {"llmflow": [], "raw": []}
    for i in range(ROUNDS):
        for name in ("llmflow", "raw"):
            tokens, seconds, _ = await through_llmflow(gateway) if name == "llmflow" else raw(llama)
            speeds[name].append(tokens / seconds)
            print(f"round {i + 1} {name:<8} {tokens} tokens in {seconds:.3f} s: "
                  f"{tokens / seconds:.1f} tokens/s")  # fmt: skip
    await gateway.aclose()
    return speeds


def main() -> None:
    speeds = asyncio.run(measure())
    rows = []
    for label, pick in (("median", statistics.median), ("best", max)):
        ours, base = pick(speeds["llmflow"]), pick(speeds["raw"])
        met = "yes" if ours / base >= 0.9 else "no"
        rows.append(f"| tokens/s, {label} of {ROUNDS} | {ours:.1f} | {base:.1f} | "
                    f"{ours / base:.3f} | ≥ 0.90 | {met} |")  # fmt: skip
    table = "\n".join(
        ["| measure | llmflow | raw llama-cpp-python | ratio | target | met |",
         "|---|---:|---:|---:|---|---|", *rows]
    )  # fmt: skip
    print(table)
    RESULTS.write_text(
        f"# Embedded generation speed\n\n"
        f"Measured {datetime.date.today()} by `bench/embedded_tokens.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, {platform.system()}), "
        f"llama-cpp-python {version('llama-cpp-python')}, model `{default_model_path().name}`. "
        f"Prompt {PROMPT!r}, max_tokens={MAX_TOKENS}, temperature 0; {ROUNDS} rounds of each, "
        f"alternated, on the same `Llama` instance in the same process. llmflow's side is "
        f"`Gateway.complete(..., model='local')`; the raw side is `llama.reset()` then "
        f"`llama.create_chat_completion(...)` with the same sampling (repeat_penalty="
        f"{REPEAT_PENALTY}, as llmflow sends). Tokens/s is completion tokens / wall seconds "
        f"of the call.\n\n{table}\n\n"
        f"The ratio is llmflow / raw (1.0: llmflow costs nothing on top of llama.cpp).\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
