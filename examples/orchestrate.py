"""Orchestrator-workers: a planner decides the parts of a task at run time, workers do them.

Choose orchestrate when the parts are not known in advance and depend on the input (here: the
sections of a short report on a support team's month). The planner returns typed subtasks
(at most `max_subtasks`), a worker handles each one, concurrently under a bound, and a
synthesiser joins the results. Unlike `parallel`, whose sections are fixed when you build the
workflow, the plan is made per input; the price is one extra call and less predictability.

    python examples/orchestrate.py           # on the embedded model
    python examples/orchestrate.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pydantic import BaseModel

from llmflow import Gateway, Settings, Step, Synthesis, code, llm, orchestrate, run


class ReportRequest(BaseModel):
    topic: str
    facts: str


REQUEST = ReportRequest(
    topic="Customer support, October",
    facts="1240 tickets (+18 %), median first reply 3.1 h (target 2 h), refunds 9 % of "
    "tickets, top issue: late deliveries from the new warehouse, CSAT 4.2 of 5.",
)


def join(synthesis: Synthesis) -> str:
    """The synthesiser: plain code that lays the written sections out as Markdown."""
    parts = [f"# {synthesis.input.topic}"]
    for result in synthesis.results:
        body = result.output if result.error is None else f"(not written: {result.error})"
        parts.append(f"## {result.task.title}\n\n{body}")
    return "\n\n".join(parts)


def build() -> Step[Any, str]:
    writer = llm(
        "write",
        instructions="You write sections of short internal reports. Plain, factual prose.",
        prompt="Report: {{ input.topic }}\nFacts: {{ input.facts }}\n\nSection: {{ task.title }}"
        "\n{{ task.instructions }}\n\nWrite this section in at most three sentences:",
        max_tokens=120,
    )
    return orchestrate(
        "monthly-report",
        instructions="You plan short internal reports. Given a topic and facts, list two to "
        "four sections, each with a title and one sentence telling the writer what to cover.",
        workers=writer,
        synthesiser=code(join, name="join"),
        max_subtasks=4,
    )


async def main(model: str | None) -> str:
    report: str = await run(build(), REQUEST, gateway=Gateway(Settings()), model=model)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    print(asyncio.run(main(parser.parse_args().model)))
