"""Email triage, the main job: parse → classify → summarise → extract → draft a reply → act.

Each step uses the cheapest tier that does the job: parsing, id checks and filing are code;
classification is a cascade per label set (rules → a trained classifier → the LLM, see
`classifier.py`), so the LLM sees only the mails the cheaper tiers are unsure of.
Auto-replies, bulk mail and empty mails are recognised by the reader and filed by code.
Everything the model writes is checked by code before anyone sees it (`truth.py`): the
summary, request and reply must state no fact the mail does not state, the deadline must be a
date the mail gives, a reply must be signed by us, hold no placeholder and not be cut off.
A failed check falls back to the code tier (extractive summary and request, the date reader,
a reply template) and is recorded in `rejected`; `tiers` records who answered each field.
On the embedded model the code tier answers these fields directly (`LOCAL_TIERS`, measured).

Gates keep the cost down: spam is filed right after its summary, and no reply is
drafted for mail that needs none. Per email, `act` files the message under its category and
appends its result to `results.jsonl` - an action, done exactly once per run even when a
durable run is killed and resumed; after the batch, `digest.md` lists everything by
priority, failed items included. On a mailbox (`mailbox.py`), `act` also flags the message,
saves its drafted reply in Drafts and may file it on the server, and `send` sends the reply
only when the run was given an SMTP server and a person approved that exact message.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import OutputValidationError
from ...inputs.email import RawEmail, load_inbox, parse_email
from ...models.client import ModelResponse
from ...patterns.cascade import CascadeResult
from ...patterns.chain import Divert, assign, chain, gate
from ...patterns.parallel import parallel
from ...runtime.runner import Workflow
from ...settings import Settings
from ...steps.base import CodeStep
from ...steps.context import RunContext
from ...steps.llm import LLMStep, llm
from . import truth
from .classifier import cascades, classification_text, label_sets
from .ids import INVOICE_ID as INVOICE_ID
from .ids import ORDER_ID as ORDER_ID
from .ids import IdPattern
from .mailbox import act_on_server, send_reply, sends_replies
from .triage_digest import result_record as result_record
from .triage_digest import write_digest as write_digest
from .triage_types import PRIORITY_ORDER as PRIORITY_ORDER
from .triage_types import Category as Category
from .triage_types import Classification as Classification
from .triage_types import Extraction as Extraction
from .triage_types import Priority as Priority
from .triage_types import ShortId as ShortId
from .triage_types import Triage as Triage

INSTRUCTIONS = Path(__file__).parent / "instructions"
SAMPLE_INBOX = Path(__file__).parent / "sample_inbox"


# Every step's prompt is [one shared system prompt][the email][the step's task]: a mail's
# three or four calls share their prefix, which the embedded model evaluates once and reuses
# (see EmbeddedClient.prefix_reuse); and small models follow the instruction nearest the end.
SYSTEM = INSTRUCTIONS / "system.md"
EMAIL = """\
From: {{ email.sender }}
Subject: {{ email.subject }}
{% if email.attachments %}Attachments: {% for a in email.attachments %}{{ a.filename }} {% endfor %}
{% endif %}
{{ email.excerpt }}

"""


def task_prompt(task: str, cue: str) -> str:
    """The email, the step's task (from instructions/<task>.md), and the answer's cue."""
    return EMAIL + (INSTRUCTIONS / f"{task}.md").read_text(encoding="utf-8").strip() + f"\n\n{cue}"


def _start(raw: RawEmail | Path) -> Triage:
    return Triage(email=parse_email(raw))


def _classification(labels: dict[str, CascadeResult]) -> Classification:
    """Both labels and the tier that gave each. Spam is low priority by definition (no action
    is needed: `instructions/priority.md`), whatever the priority cascade says: 5-fold
    cross-validation on the training mails, priority 0.695 -> 0.702
    (bench/RESULTS-triage-priority-variants.md)."""
    said = {name: result.label for name, result in labels.items()}
    by = {name: result.tier for name, result in labels.items()}
    if said.get("category") == "spam" and said.get("priority") != "low":
        said["priority"], by["priority"] = "low", "rules"
    return Classification.model_validate({**said, "answered_by": by})


def _text(triage: Triage) -> str:
    return classification_text(triage.email.sender, triage.email.subject, triage.email.excerpt)


def _ground_ids(triage: Triage) -> Triage:
    """Code check on the LLM's extraction: keep only ids that occur in the email, and add the
    ids that the patterns find (a small model misses or invents some); not those only a
    paragraph that instructs the machine names."""
    x = triage.extraction
    if x is None:
        return triage
    text = f"{triage.email.subject}\n{truth.without_instructions(triage.email.body)}"

    def merge(found: list[str], pattern: IdPattern) -> list[str]:
        kept = [i.strip() for i in found if i.strip() and i.strip() in text]
        return list(dict.fromkeys([*kept, *pattern.findall(text)]))[:8]

    grounded = x.model_copy(
        update={
            "order_numbers": merge(x.order_numbers, ORDER_ID),
            "invoice_numbers": merge(x.invoice_numbers, INVOICE_ID),
        }
    )
    return triage.model_copy(update={"extraction": grounded})


def _act(triage: Triage, ctx: RunContext) -> Triage:
    """File the message under its category and append its result to results.jsonl.

    Runs as an action (exactly once per durable run): if the process dies inside it, the
    resumed run files the same copy again (an atomic rewrite) and appends nothing twice, as
    the line carries the action's idempotency key. A message read over IMAP is also
    flagged, its reply drafted and maybe moved on its server (`mailbox.act_on_server`).
    """
    triage = act_on_server(triage, ctx)
    if ctx.out_dir is None:
        return triage
    from ...durable.actions import append_line_once, write_once

    category: str = "unsorted"
    if triage.classification:
        category = triage.classification.category
    elif triage.email.kind != "message":  # auto-replies, bulk and empty mail, filed by code
        category = triage.email.kind
    name = Path(triage.email.source.replace("#", "-")).name
    if not name.endswith(".eml"):
        name += ".eml"
    write_once(ctx.out_dir / category / name, triage.email.raw)
    filed = triage.model_copy(update={"filed_as": f"{category}/{name}"})
    append_line_once(ctx.out_dir / "results.jsonl", result_record(filed))
    return filed


def _columns(triage: Triage) -> dict[str, str]:
    c = triage.classification
    return {
        # Mail filed by its headers (bulk, auto-reply, empty) has no label: say what it is.
        "category": c.category if c else triage.email.kind,
        "priority": c.priority if c else "",
        "summary": triage.summary or "",
    }


class CompleteText(LLMStep[Triage, str]):
    """An llm step whose free text must be finished: a generation cut off at `max_tokens` is
    invalid (retried with twice the tokens, then an `OutputValidationError`), never a reply."""

    def parse(self, response: ModelResponse) -> str:
        if response.finish_reason == "length":
            raise ValueError("the text was cut off at max_tokens")
        return super().parse(response)


def _instructions(task: str) -> list[str]:
    return [(INSTRUCTIONS / f"{task}.md").read_text(encoding="utf-8"), *_DESCRIPTIONS]


_DESCRIPTIONS = [
    "What the sender wants from us, in one short sentence.",
    "What the sender wants, in one sentence.",
    "the date or time by which they need it, as written in the email, or null.",
    "One-sentence summary of the email",
    "summarise the email in one plain sentence: who wrote, what they want, and any deadline",
]


def _record(triage: Triage, field: str, tier: str, rejected: str | None = None) -> Triage:
    update: dict[str, object] = {"tiers": {**triage.tiers, field: tier}}
    if rejected:
        update["rejected"] = {**triage.rejected, field: rejected}
    return triage.model_copy(update=update)


def _text_problems(text: str, triage: Triage, task: str) -> str | None:
    """Why a model's summary or request cannot be shown, or None."""
    return truth.text_problems(text, triage.email, _instructions(task))


def model_steps(
    model: str | None = None,
) -> tuple[LLMStep[Triage, str], LLMStep[Triage, Extraction], CompleteText]:
    """The triage's language steps, unchecked: summarise, extract, draft (a reply). The
    workflow checks each answer by code (`truth.py`); `bench/triage_truth.py` scores them
    raw and checked."""
    summarise: LLMStep[Triage, str] = llm(
        "summarise",
        instructions=SYSTEM,
        prompt=task_prompt("summarise", "One-sentence summary of the email:"),
        model=model,
        max_tokens=80,
    )
    extract: LLMStep[Triage, Extraction] = llm(
        "extract",
        instructions=SYSTEM,
        output=Extraction,
        prompt=task_prompt("extract", "Facts from the email:"),
        model=model,
        max_tokens=300,
    )
    draft = CompleteText(
        "draft",
        instructions=SYSTEM,
        prompt=task_prompt("reply", "They want: {{ extraction.request }}\nOur reply:"),
        model=model,
        max_tokens=200,
        output=str,
    )
    return summarise, extract, draft


def build(
    model: str | None = None,
    home: Path | None = None,
    *,
    tiers: dict[str, truth.Tier] | None = None,
    signature: str | None = None,
) -> Workflow:
    """The email-triage workflow; `model` overrides the run's model for its LLM steps, and
    `home` the state directory its classifiers are stored in. `tiers` says per field
    (summary, request, deadline, needs_reply, reply) whether the model answers (checked by
    code, code as the fallback) or code alone: by default `truth.LOCAL_TIERS` on the embedded
    model, the model everywhere else. Replies are signed `signature` (default: the
    LLMFLOW_REPLY_SIGNATURE setting)."""
    # Imported here: the durable engine (DBOS) loads only when a workflow is built.
    from ...durable.actions import action

    act: CodeStep[Triage, Triage] = action(_act, name="act")
    settings = Settings()
    category, priority = cascades(
        home or settings.home, label_sets(Category, Priority), model=model
    )

    def tiers_for(ctx: RunContext) -> dict[str, str]:
        """Which tier answers each field: chosen when the item runs, on the model it runs on
        (`--model` is applied after the workflow is built)."""
        if tiers is not None:
            return {**truth.MODEL_TIERS, **tiers}
        name = model or ctx.model or ctx.gateway.settings.model
        # LOCAL_TIERS were measured on SmolLM2; other local models (local:<name-or-path>)
        # write better, and every answer is checked by code with the code tier as fallback.
        local = name in ("local", "local:smollm2-135m")
        return {**truth.MODEL_TIERS, **(truth.LOCAL_TIERS if local else truth.MODEL_TIERS)}

    sign = signature or settings.reply_signature
    classify = chain(
        "classify",
        CodeStep("text", _text),
        parallel("tiers", [category, priority], merge=_classification),
    )
    summarise, extract, draft = model_steps(model)

    async def summary(t: Triage, ctx: RunContext) -> Triage:
        if tiers_for(ctx)["summary"] == "llm":
            text = await summarise(t, ctx)
            problem = _text_problems(text, t, "summarise")
            if problem is None:
                return _record(t.model_copy(update={"summary": text}), "summary", "llm")
            t = _record(t, "summary", "code", problem)
        return _record(
            t.model_copy(update={"summary": truth.summary_by_code(t.email)}), "summary", "code"
        )

    async def facts(t: Triage, ctx: RunContext) -> Triage:
        chosen = tiers_for(ctx)
        email = t.email
        category = t.classification.category if t.classification else None
        t = t.model_copy(update={"amounts": truth.amounts_by_code(email)})
        asked = None
        if any(chosen[f] == "llm" for f in ("request", "deadline", "needs_reply")):
            asked = await extract(t, ctx)
        request, deadline = truth.request_by_code(email), truth.deadline_by_code(email)
        needs_reply = truth.needs_reply_by_code(email, category)
        for field in ("request", "deadline", "needs_reply"):
            if chosen[field] != "llm" or asked is None:
                t = _record(t, field, "code")
                continue
            problem: str | None = None
            if field == "request":
                problem = (
                    _text_problems(asked.request, t, "extract")
                    if asked.request.strip()
                    else "empty"
                )
                request = asked.request.strip() if problem is None else request
            elif field == "deadline":
                value, problem = truth.deadline_of_model(asked.deadline, email)
                deadline = value if problem is None else deadline
            else:
                # the model may not know the sender cannot receive a reply (noreply@)
                needs_reply = asked.needs_reply and not truth.cannot_reply(email)
            t = _record(t, field, "llm" if problem is None else "code", problem)
        base = asked or Extraction(
            request="", deadline=None, order_numbers=[], invoice_numbers=[], needs_reply=False
        )
        final = base.model_copy(
            update={
                "request": request,
                "deadline": deadline.isoformat() if deadline else None,
                "needs_reply": needs_reply,
            }
        )
        return t.model_copy(update={"extraction": final})

    async def reply(t: Triage, ctx: RunContext) -> Triage:
        category = t.classification.category if t.classification else None
        ids = [*t.extraction.order_numbers, *t.extraction.invoice_numbers] if t.extraction else []
        if tiers_for(ctx)["reply"] == "llm":
            try:
                text = await draft(t, ctx)
                problems = truth.reply_problems(text, t.email, sign)
            except OutputValidationError as e:
                problems = [str(e)]
            if not problems:
                return _record(t.model_copy(update={"reply": text}), "reply", "llm")
            t = _record(t, "reply", "code", "; ".join(problems))
        text = truth.reply_by_code(t.email, category, ids, sign)
        return _record(t.model_copy(update={"reply": text}), "reply", "code")

    step = chain(
        "email-triage",
        CodeStep("parse", _start),
        gate(
            "by-headers",
            lambda t: t.email.kind == "message" or Divert(act, f"{t.email.kind}: filed by code"),
        ),
        assign("classification", classify),
        CodeStep("summary", summary),
        gate("not-spam", lambda t: t.classification.category != "spam" or Divert(act, "spam")),
        CodeStep("facts", facts),
        CodeStep("ground-ids", _ground_ids),
        gate("needs-reply", lambda t: t.extraction.needs_reply or Divert(act, "no reply needed")),
        CodeStep("reply", reply),
        act,
        CodeStep("send", send_reply, asks_approval=sends_replies),
    )
    return Workflow(
        name="email-triage",
        step=step,
        load=load_inbox,
        finish=write_digest,
        columns=_columns,
        description="Triage a folder of .eml files or an mbox: classify, extract, summarise, "
        "draft replies, file by category, write a digest.",
    )
