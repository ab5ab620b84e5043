"""`llmflow calibrate | distill | eval | correct`: tuning a workflow's classifier cascades.

calibrate  thresholds per tier from labelled data, to reach a target accuracy at least cost
distill    the ml tier retrained from the LLM's recorded decisions (and people's corrections)
eval       accuracy, macro-F1, cost, latency and share per tier of each variant, and a plot
correct    record the right label of a decision, for the next distillation

Each writes a new classifier version in the state directory, which the workflow uses the
next time it is built.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError, LLMFlowError
from ..models.pricing import format_cost
from .app import EXIT_OK, fail, out, usd
from .calibrate import calibrate
from .cascade_inputs import Json, find_workflow_cascade, refuse_file_history
from .evaluate import evaluate

if TYPE_CHECKING:
    from ..store.sqlite import RunStore


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("distill")(distill_command)
    app.command("eval")(evaluate)
    app.command("correct")(correct)


def distill_command(
    workflow: Annotated[str, typer.Argument(help="A registered workflow or a workflow file.")],
    step: Annotated[str, typer.Argument(help="The cascade whose ml tier learns from history.")],
    target_agreement: Annotated[
        float, typer.Option(min=0, max=1, help="Agreement with the LLM the ml tier must keep.")
    ] = 0.97,
    min_examples: Annotated[int, typer.Option(min=2, help="Fewest decisions to learn from.")] = 20,
    as_json: Json = False,
) -> int:
    """Train the ml tier from the LLM's recorded decisions (corrections take precedence)."""
    from ..analysis.tuning import distill
    from ..settings import Settings
    from ..store.sqlite import RunStore

    try:
        settings = Settings()
        name, cascade = find_workflow_cascade(workflow, step)
        refuse_file_history(cascade, "distill")
        store = RunStore(settings.db_path)
        try:
            result = distill(
                cascade,
                store,
                workflow=name,
                home=settings.home,
                target_agreement=target_agreement,
                min_examples=min_examples,
            )
        finally:
            store.close()
    except LLMFlowError as e:
        raise fail(str(e)) from None
    if as_json:
        data = asdict(result)
        del data["llm_cost_per_item"]
        data.update(
            llm_cost_usd_per_item=usd(result.llm_cost_per_item),
            saving_usd_per_1000=usd(result.saving_per_1000),
            version=str(result.version),
        )
        out.print_json(json.dumps(data))
        return EXIT_OK
    out.print(
        f"learned from {result.examples} decisions ({result.corrections} corrected by people).\n"
        f"On held-out decisions the ml tier answers {result.share:.0%} of items at "
        f"confidence ≥ {result.threshold:.3f}, agreeing with the LLM on {result.agreement:.1%} "
        f"of them; the filter agrees with the LLM alone on {result.filter_agreement:.1%}.\n"
        f"Expected saving: {format_cost(result.saving_per_1000)} per 1,000 items "
        f"(an LLM decision cost {format_cost(result.llm_cost_per_item)}).\n"
        f"Saved as {result.version}; the next run of {name} uses it."
    )
    return EXIT_OK


def correct(
    run_id: Annotated[str, typer.Argument(help="The run (an id or a unique prefix).")],
    item: Annotated[str, typer.Argument(help="The item's key, e.g. the file name.")],
    step: Annotated[str, typer.Option("--step", help="The classifier step, e.g. category.")],
    label: Annotated[str, typer.Option("--label", help="The right label.")],
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    new_label: Annotated[
        bool,
        typer.Option(
            "--new-label",
            help="The label is one the step has not answered yet (else such a label is refused "
            "as a typo).",
        ),
    ] = False,
) -> int:
    """Record the right label for a decision; `distill` learns it over the model's."""
    from ..settings import Settings
    from ..store.sqlite import RunStore

    if not label.strip():
        raise fail("--label is empty: give the right label")
    try:
        store = RunStore(Settings().db_path)
        try:
            run = store.find_run(run_id)
            row = store.find_item(run["id"], item)
            known, before = _labels_of(store, row, run["workflow"], step)
            if label not in known and known and not new_label:
                alike = [k for k in known if k.casefold() == label.casefold()]
                raise ConfigError(
                    f"step {step!r} has not answered {label!r} (its labels so far: "
                    f"{', '.join(sorted(known))}): "
                    + (f"did you mean {alike[0]!r}?" if alike else "check the spelling, or pass "
                       "--new-label if it is a label the step does not know yet")
                )  # fmt: skip
            store.correct(row["id"], step, label, note)
        finally:
            store.close()
    except LLMFlowError as e:
        raise fail(str(e)) from None
    replaced = f" (it replaces the correction {before!r})" if before not in (None, label) else ""
    out.print(f"recorded: {item} is {label!r} for step {step!r}{replaced}")
    return EXIT_OK


def _labels_of(store: RunStore, item: Any, workflow: str, step: str) -> tuple[set[str], str | None]:
    """The labels cascade `step` of `workflow` is known to answer (its recorded decisions'
    and the choices its LLM tier was given on `item`), and `item`'s correction so far.
    Refuses a step that is not a cascade `item` went through."""
    ran = {r["path"] for r in store.item_rows("steps", item["id"]) if r["kind"] == "cascade"}
    paths = [path for path in ran if path.rsplit("/", 1)[-1] == step]
    if not paths:
        names = sorted({path.rsplit("/", 1)[-1] for path in ran})
        raise ConfigError(
            f"item {item['key']!r} has no decision of a cascade {step!r} to correct: "
            + (f"give --step {' or '.join(names)}" if names else "it went through no cascade")
        )
    known: set[str] = set()
    before = None
    for decision in store.cascade_decisions(step, workflow):
        known.add(decision["label"])
        known.update(a["label"] for a in json.loads(decision["attempts"]) if a.get("label"))
        if decision["audit_label"]:
            known.add(decision["audit_label"])
        if decision["item_id"] == item["id"]:
            before = decision["correction"]
    for call in store.item_rows("model_calls", item["id"]):
        if any(str(call["step_path"] or "").startswith(f"{path}/") for path in paths):
            try:
                known.update(json.loads(call["prompt"] or "{}").get("choices") or [])
            except (ValueError, AttributeError):
                continue
    return known, before
