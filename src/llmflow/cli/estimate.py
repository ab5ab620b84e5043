"""`llmflow estimate`: forecast a workflow's cost on N inputs, on several models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from ..analysis.forecast import Profile, estimate, learn
from ..errors import ConfigError
from ..models.pricing import Pricing, format_cost
from .app import EXIT_FAILED, EXIT_OK, err, fail, out, usd, writable_folder
from .run import execute, prepare

if TYPE_CHECKING:
    from ..store.sqlite import RunStore


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_cmd)


def estimate_cmd(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or module:attr.")],
    inputs: Annotated[
        Path | None, typer.Argument(help="Sample inputs to run (not needed with --run).")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many inputs to forecast.")] = 1000,
    models: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model to price (repeat for several)."),
    ] = None,
    sample_model: Annotated[
        str | None, typer.Option(help="The model the sample runs on. \\[default: LLMFLOW_MODEL]")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Learn from this recorded run instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Forecast the cost of a workflow on N inputs, from a sample run, on several models."""
    from ..settings import Settings  # here, not at import: `llmflow --help` starts fast
    from ..store.sqlite import RunStore

    targets = models or ["openai:gpt-4.1-mini", "openai:gpt-4.1"]
    settings = Settings()
    for target in targets:  # before the sample run: a name priced by nothing is a mistake
        provider, colon, model_id = target.partition(":")
        served = not colon and settings.base_url is not None  # a model at OPENAI_BASE_URL
        if target != "local" and not served and not (provider in ("local", "openai") and model_id):
            raise fail(
                f"--model {target}: a forecast prices 'openai:<model>' (e.g. "
                "openai:gpt-4.1-mini), 'local' or 'local:<name>' (at LLMFLOW_LOCAL_PRICE_PER_MTOK "
                "or LLMFLOW_LOCAL_PRICE_PER_HOUR, else $0), or a model served at OPENAI_BASE_URL"
            )
    if run_id is None:
        if inputs is None:
            raise fail("give sample inputs to run, or --run <id> to learn from a recorded run")
        job = prepare(
            workflow, inputs, model=sample_model, base_url=None, concurrency=None, cache=True
        )
        writable_folder(
            Path("llmflow-out"), "the sample run writes there: run from a folder you can write"
        )
        batch = execute(job, out_dir=None, quiet=as_json)
        if batch.status in ("failed", "interrupted", "stopped"):
            err.print(f"[red]the sample run {batch.status}: no forecast[/]")
            return EXIT_FAILED
        run_id, settings = batch.run_id, job.settings
    try:
        store = RunStore(settings.db_path)
        try:
            run = store.find_run(run_id)
            profile = learn(store.rows("model_calls", run["id"]), run["items_total"])
            recorded = _recorded(store, run["workflow"], targets)
        finally:
            store.close()
    except ConfigError as error:
        raise fail(str(error)) from None
    rows = estimate(
        profile, n, targets, Pricing(settings), sample_model=run["model"], recorded=recorded
    )
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workflow": run["workflow"],
                    "sample_run": run["id"],
                    "sample_items": profile.items,
                    "n": n,
                    "steps": [
                        {
                            "path": s.path,
                            "calls_per_item": s.calls_per_item,
                            "input_tokens": s.input_tokens,
                            "output_tokens": s.output_tokens,
                        }
                        for s in profile.steps
                    ],
                    "models": [
                        {
                            "model": e.model,
                            "input_tokens": round(e.input_tokens),
                            "output_tokens": round(e.output_tokens),
                            "cost_usd": usd(e.cost),
                            "cost_usd_low": usd(e.cost_low),
                            "cost_usd_high": usd(e.cost_high),
                            "basis": e.basis,
                        }
                        for e in rows
                    ],
                }
            )
        )
        return EXIT_OK
    steps = Table(
        title=f"{run['workflow']}: per item, from {profile.items} sample items "
        f"(run {run['id'][:12]})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("step", "calls/item", "in tok/call", "out tok/call"):
        steps.add_column(name, justify="left" if name == "step" else "right")
    for s in profile.steps:
        steps.add_row(
            s.path, f"{s.calls_per_item:.2f}", f"{s.input_tokens:,.0f}", f"{s.output_tokens:,.0f}"
        )
    out.print(steps)
    table = Table(title=f"forecast for {n:,} inputs", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("model", "in tokens", "out tokens", "cost", "range (95%)", "tokens from"):
        table.add_column(name, justify="right" if "tok" in name or "cost" in name else "left",
                         overflow="fold")  # fmt: skip
    for f in rows:
        table.add_row(
            f.model, f"{f.input_tokens:,.0f}", f"{f.output_tokens:,.0f}", format_cost(f.cost),
            f"{format_cost(f.cost_low)} – {format_cost(f.cost_high)}", f.basis,
        )  # fmt: skip
    out.print(table)
    return EXIT_OK


def _recorded(store: RunStore, workflow: str, models: list[str]) -> dict[str, Profile]:
    """Profiles from the latest finished run of `workflow` on each target model, if any."""
    found = {}
    for model in models:
        row = store.latest_run(workflow, model)
        if row is not None:
            found[model] = learn(store.rows("model_calls", row["id"]), row["items_total"])
    return found
