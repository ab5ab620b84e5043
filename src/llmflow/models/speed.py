"""How fast a local model runs on this machine: prompt and generation tokens per second.

`measure` times llama.cpp itself on a loaded model: a fixed English prompt evaluated from an
empty context, then greedy decoding one token at a time (no sampler, no grammar), the
medians of a few rounds after a warm-up. `llmflow models --measure` runs it once per model
file in a child process (a llama.cpp that crashes cannot take the CLI down, and the model's
memory is freed when it ends) and keeps the result in the state directory.

    python -m llmflow.models.speed <model.gguf> [context tokens]   # prints the JSON
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROMPT_TOKENS = 256
GENERATED_TOKENS = 48
ROUNDS = 3
_PASSAGE = (
    "Dear support team, I ordered a pair of hiking boots three weeks ago and they have still "
    "not arrived. The tracking page has said 'in transit' for ten days. Could you tell me "
    "where the parcel is, and whether you can send a replacement before my trip on the "
    "twelfth? My order number is 48213. Kind regards, Maria. "
)


def measure(
    llama: Any,
    *,
    prompt_tokens: int = PROMPT_TOKENS,
    generated: int = GENERATED_TOKENS,
    rounds: int = ROUNDS,
) -> dict[str, float]:
    """Prompt and generation tokens per second of `llama` (a loaded `llama_cpp.Llama`)."""
    import numpy as np

    tokens: list[int] = []
    while len(tokens) < prompt_tokens:
        tokens += llama.tokenize(_PASSAGE.encode(), add_bos=False)
    tokens = tokens[:prompt_tokens]
    n_vocab = llama.n_vocab()

    def next_token() -> int:
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(n_vocab,))
        return int(logits.argmax())

    llama.reset()
    llama.eval(tokens[:16])  # warm-up: first-call allocations are not speed
    prompt_s: list[float] = []
    generate_s: list[float] = []
    for _ in range(rounds):
        llama.reset()
        t0 = time.perf_counter()
        llama.eval(tokens)
        prompt_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(generated):
            llama.eval([next_token()])
        generate_s.append(time.perf_counter() - t0)
    llama.reset()
    return {
        "prompt_tokens_per_s": round(prompt_tokens / statistics.median(prompt_s), 1),
        "generation_tokens_per_s": round(generated / statistics.median(generate_s), 1),
    }


def _cache_key(path: Path) -> str:
    from importlib.metadata import version

    stat = path.stat()
    return (
        f"{path}|{stat.st_size}|{stat.st_mtime_ns}|llama-cpp-python {version('llama_cpp_python')}"
    )


def cached_speed(cache: Path, path: Path) -> dict[str, Any] | None:
    """The speed measured before for this file (and llama.cpp version), if any."""
    try:
        found = json.loads(cache.read_text(encoding="utf-8")).get(_cache_key(path))
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def measure_in_child(
    cache: Path, path: Path, context_tokens: int, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Measure `path` in a child process and keep the result in `cache` (a JSON file).
    Raises RuntimeError with the child's error when it fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "llmflow.models.speed", str(path), str(context_tokens)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"measuring {path.name} took over {timeout_s:g} s") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"measuring {path.name} failed: {tail}")
    speed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    speed["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[_cache_key(path)] = speed
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")
    return speed


def main(argv: list[str]) -> int:
    from .embedded import load_llama

    path = Path(argv[0])
    context = int(argv[1]) if len(argv) > 1 else 4096
    print(json.dumps(measure(load_llama(path, context))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
