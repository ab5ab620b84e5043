"""`llmflow eval --step <llm step>`: a language step scored on gold data by code: per-field
accuracy (dates, ids, amounts normalised), grounded rate and output checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from ..errors import LLMFlowError

if TYPE_CHECKING:
    from ..analysis.language_eval import Answer
from .app import EXIT_OK, err, fail, out
from .cascade_inputs import settings_for


def language_step(workflow: str, step: str | None) -> Any:
    """The workflow when `step` names a step other than a cascade (scored on gold data),
    else None (a cascade: its variants are compared)."""
    if step is None:
        return None
    from ..analysis.cascade_versions import find_step
    from ..patterns.cascade import Cascade
    from ..workflows import load_workflow

    try:
        wf = load_workflow(workflow)
        target = find_step(wf.step, step)
    except LLMFlowError as e:
        raise fail(str(e)) from None
    return None if isinstance(target, Cascade) else wf


def evaluate_language(
    wf: Any, step: str, data: Path, model: str | None, base_url: str | None, as_json: bool
) -> int:
    """Run the workflow on each gold row's input, score step `step`'s outputs, print."""
    import asyncio

    from ..analysis.cascade_versions import find_step
    from ..analysis.language_eval import read_gold, score, step_outputs
    from ..models.cache import ResponseCache
    from ..models.gateway import Gateway
    from ..store.sqlite import RunStore

    try:
        settings = settings_for(model, base_url)
        rows = read_gold(data)
        gateway = Gateway(settings)
        gateway.resolve()  # a missing key fails before any work
        store = RunStore(settings.db_path)
        gateway.cache = ResponseCache(store)  # a second evaluation does not pay again
        err.print(f"running {wf.name} on {len(rows)} rows of {data} …")

        async def all_rows() -> list[Answer]:
            try:
                return await step_outputs(wf.step, step, rows, gateway)
            finally:
                await gateway.aclose()

        try:
            outputs = asyncio.run(all_rows())
        finally:
            store.close()
        target = find_step(wf.step, step)
        result = score(step, rows, outputs, text=getattr(target, "schema", {}) is None)
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        out.print_json(json.dumps({"workflow": wf.name, **result.as_json()}))
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, title=f"{wf.name} / {step} on {result.rows} rows")
    for column in ("measure", "score", "of"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for f in result.fields:
        table.add_row(f"{f.field} accuracy", f"{f.accuracy:.1%}", f"{f.correct}/{f.rows}")
    table.add_row("grounded", f"{result.grounded_rate:.1%}", f"{result.grounded}/{result.answered}")
    table.add_row(
        "output checks",
        f"{result.checks_rate:.1%}",
        f"{result.checks_passed}/{result.rows}",
    )
    out.print(table)
    for index, row in enumerate(result.results, start=1):
        if row.ungrounded and not any(p.startswith("refused") for p in row.problems):
            err.print(f"row {index}: ungrounded {', '.join(row.ungrounded)}")
        for problem in row.problems:
            err.print(f"row {index}: {problem}")
    return EXIT_OK
