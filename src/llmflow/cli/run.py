"""`llmflow run`: run a workflow on a batch of inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ConfigError
from ..ids import new_id
from ..models.gateway import Gateway
from ..runtime.runner import BatchResult, ItemResult, RunInterrupted, Workflow, run_batch
from ..settings import Settings
from ..store.sqlite import RunStore, to_json
from ..workflows import load_workflow
from .app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, err, fail, out


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    workflow: Annotated[
        str, typer.Argument(help="A registered workflow (email-triage) or module:attr.")
    ],
    inputs: Annotated[
        Path, typer.Argument(help="The input: a file or a folder (e.g. of .eml files).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: local, openai:<model>, or a model at --base-url. \\[env: LLMFLOW_MODEL]"
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp). \\[env: OPENAI_BASE_URL]"
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Items in flight at once. \\[default: 1 on the embedded model, which computes "
            "one call at a time, so that items finish in order; 4 elsewhere]",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder. \\[default: llmflow-out/<workflow>/<run id>]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> int:
    """Run a workflow on a batch of inputs and record it."""
    try:
        overrides: dict[str, Any] = {}
        if model:
            overrides["model"] = model
        if base_url:
            overrides["base_url"] = base_url
        settings = Settings().model_copy(update=overrides)
        gateway = Gateway(settings)
        client, _ = gateway.resolve()  # a missing key fails now, before any work
        if concurrency is None:
            concurrency = 1 if client.provider == "local" else 4
        wf = load_workflow(workflow)
        if wf.load is None:
            raise ConfigError(f"workflow {wf.name!r} does not read inputs from files")
        items = wf.load(inputs)
        store = RunStore(settings.db_path)
    except ConfigError as e:
        raise fail(str(e)) from None
    run_id = new_id()
    target = out_dir or Path("llmflow-out") / wf.name / run_id
    try:
        batch = asyncio.run(
            _run_with_progress(
                wf,
                items,
                gateway,
                store,
                settings.model,
                concurrency,
                target,
                run_id,
                str(inputs),
                quiet=as_json,
            )
        )
    finally:
        store.close()
    if batch.status == "interrupted":
        err.print(
            f"[yellow]interrupted[/]: {len(batch.results)} of {len(items)} items finished and "
            f"are recorded in run {run_id}"
        )
    _report(batch, wf, as_json)
    return {
        "ok": EXIT_OK,
        "partial": EXIT_PARTIAL,
        "interrupted": EXIT_INTERRUPTED,
    }.get(batch.status, EXIT_FAILED)


async def _run_with_progress(
    wf: Workflow,
    items: list[Any],
    gateway: Gateway,
    store: RunStore,
    model: str,
    concurrency: int,
    out_dir: Path,
    run_id: str,
    source: str,
    *,
    quiet: bool,
) -> BatchResult:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[failed]}"),
        console=err,
        disable=quiet,
        transient=False,
    )
    failed = 0

    def done(result: ItemResult) -> None:
        nonlocal failed
        failed += not result.ok
        progress.update(task, advance=1, failed=f"[red]{failed} failed" if failed else "")

    with progress:
        task = progress.add_task(f"{wf.name} on {model}", total=len(items), failed="")
        try:
            return await run_batch(
                wf,
                items,
                gateway=gateway,
                concurrency=concurrency,
                store=store,
                source=source,
                out_dir=out_dir,
                run_id=run_id,
                on_item_done=done,
            )
        except RunInterrupted as e:
            # Ctrl-C: end normally with what finished, so asyncio.run returns it.
            return e.batch
        finally:
            await gateway.aclose()


def _cell(value: str, limit: int = 160) -> str:
    """One table cell: a single line, cut at `limit` characters (the full text is in --json)."""
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _report(batch: BatchResult, wf: Workflow, as_json: bool) -> None:
    if as_json:
        payload = {
            "run_id": batch.run_id,
            "workflow": batch.workflow,
            "status": batch.status,
            "out_dir": str(batch.out_dir) if batch.out_dir else None,
            "artifacts": {k: str(v) for k, v in batch.artifacts.items()},
            "items": [
                {
                    "key": r.key,
                    "ok": r.ok,
                    "output": json.loads(to_json(r.output) or "null"),
                    "error": str(r.error) if r.error else None,
                }
                for r in batch.results
            ],
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{batch.workflow} · run {batch.run_id}", title_justify="left")
    table.add_column("item", overflow="fold")
    columns = wf.columns or (lambda o: {"output": str(o)})
    first_ok = next((r for r in batch.results if r.ok), None)
    names = list(columns(first_ok.output)) if first_ok else ["result"]
    for name in names:
        table.add_column(name, overflow="fold", ratio=3 if name == names[-1] else None)
    for r in batch.results:
        if r.ok:
            cells = [_cell(v) for v in columns(r.output).values()]
        else:  # the reason goes in the widest column
            cells = [""] * (len(names) - 1) + [f"[red]failed: {r.error}[/]"]
        table.add_row(r.key if r.ok else f"[red]{r.key}[/]", *cells)
    out.print(table)
    ok = sum(r.ok for r in batch.results)
    out.print(f"{ok} ok, {len(batch.results) - ok} failed · status [bold]{batch.status}[/]")
    for name, path in batch.artifacts.items():
        out.print(f"{name}: {path}")
    out.print(f"details: llmflow runs show {batch.run_id}")
