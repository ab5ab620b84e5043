"""Does email triage tell the truth? Field accuracy and grounding violations per tier.

The gold facts (`sample_inbox/gold-facts.jsonl`: the request, deadline, order and invoice
ids, amounts and needs_reply of 16 sample mails, written by hand) are compared with three
tiers, field by field:

- `code`: the reader's text, regexes, the date reader, extractive sentences, a reply
  template (`apps/email_triage/truth.py`);
- `embedded raw`: the embedded SmolLM2-135M's own answers (the workflow's summarise, extract
  and draft steps, unchecked) - what the triage showed before issue 13;
- `embedded checked`: the same answers after the grounding gate, code answering where the
  gate refused the model's (what a run with `tiers=MODEL_TIERS` shows).

A *violation* is a fact in a field that the mail does not state (a number, amount, date,
id, address or name; for `request`, also a copy of the instructions; for `deadline`, a value
that is not a date the mail gives). A request is right when it is grounded, is not an
instruction, and names what the gold request is about (one of its `request_terms`).

    .venv/bin/python bench/triage_truth.py [N]    # the embedded tiers on the first N mails
    .venv/bin/python bench/triage_truth.py --inbox hard [N]    # the hard mails

The code tier is scored on every gold mail; the embedded tiers (three model calls a mail) on
the first N (all by default). Set LLMFLOW_HOME to keep the response cache between runs.

`--inbox hard` reads `hard_inbox/` (issue 13's test set; results in
RESULTS-triage-truth-hard.md). Its gold covers every mail; fields are scored on the mails the
triage extracts facts for (kind "message", not spam). The mails it files by their headers
get no field; spam stops after its summary, so a spam mail's summary is checked for
violations (in the summary row) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from llmflow import Gateway, Settings
from llmflow.apps.email_triage import SAMPLE_INBOX, parse_email, truth
from llmflow.apps.email_triage.workflow import (
    INVOICE_ID,
    ORDER_ID,
    Classification,
    Extraction,
    Triage,
    _text_problems,
    model_steps,
)
from llmflow.errors import OutputValidationError
from llmflow.runtime.runner import run
from llmflow.steps.grounding import ungrounded

RESULTS = Path(__file__).with_name("RESULTS-triage-truth.md")
INBOXES = {"sample": SAMPLE_INBOX, "hard": SAMPLE_INBOX.parent / "hard_inbox"}
FIELDS = (
    "summary",
    "request",
    "deadline",
    "order_numbers",
    "invoice_numbers",
    "amounts",
    "needs_reply",
    "reply",
)


def labels(inbox: Path = SAMPLE_INBOX) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (inbox / "labels.jsonl").read_text().splitlines()]
    return {r["file"]: r for r in rows}


def ids(text: str, pattern: Any, found: list[str] | None = None) -> list[str]:
    kept = [i for i in found or [] if i and i in text]
    return sorted(dict.fromkeys([*kept, *pattern.findall(text)]))


def score(field: str, value: Any, gold: dict[str, Any], t: Triage) -> tuple[bool | None, int]:
    """(right, violations) of one field's value; right is None where there is no gold."""
    email = t.email
    src = truth.source_of(email)
    if field == "summary":
        bad = ungrounded(str(value), src, allowed=[truth.SIGNATURE], ref=truth.mail_date(email))
        return None, int(bool(bad) or bool(_text_problems(str(value), t, "summarise")))
    if field == "request":
        text = str(value or "")
        problem = _text_problems(text, t, "extract") if text else None
        named = any(term.lower() in text.lower() for term in gold["request_terms"])
        return problem is None and named, int(problem is not None)
    if field == "deadline":
        if value is None:
            return gold["deadline"] is None, 0
        parsed, problem = truth.deadline_of_model(str(value), email)
        return parsed is not None and parsed.isoformat() == gold["deadline"], int(bool(problem))
    if field in ("order_numbers", "invoice_numbers"):
        text = f"{email.subject}\n{email.body}"
        return sorted(value) == sorted(gold[field]), sum(1 for i in value if i not in text)
    if field == "amounts":
        return sorted(value) == sorted(gold["amounts"]), 0  # code only: normalised from the mail
    if field == "needs_reply":
        return bool(value) == gold["needs_reply"], 0
    problems = truth.reply_problems(str(value or ""), email) if value else ["no reply"]
    return not problems, int(any(p.startswith("ungrounded") for p in problems))


async def main(inbox_name: str, limit: int | None) -> None:
    inbox = INBOXES[inbox_name]
    rows = [json.loads(line) for line in (inbox / "gold-facts.jsonl").read_text().splitlines()]
    label = labels(inbox)
    # Fields are scored on the mails the triage extracts facts for; a spam mail only has a
    # summary (the sample's gold holds neither spam nor mail filed by its headers).
    filed = [r for r in rows if label[r["file"]].get("kind", "message") != "message"]
    spam = [r for r in rows if r not in filed and label[r["file"]]["category"] == "spam"]
    gold = [r for r in rows if r not in filed and r not in spam]
    started = time.perf_counter()
    tiers: dict[str, dict[str, list[tuple[bool | None, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    seconds = 0.0
    calls = 0
    cut_off = 0
    limit = len(gold) + len(spam) if limit is None else limit
    languages: list[tuple[str, str | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = os.environ.get("LLMFLOW_HOME", tmp)
        # No repair rounds: a cut-off draft is counted as one (the workflow retries it once
        # with twice the tokens, then answers with the template).
        gateway = Gateway(Settings(model="local", home=Path(home), output_repairs=0))
        summarise, extract, draft = model_steps("local")
        mails = [*gold, *spam]
        for phase, row in [("code", r) for r in mails] + [("model", r) for r in mails[:limit]]:
            email = parse_email(inbox / row["file"])
            c = Classification(
                category=label[row["file"]]["category"], priority=label[row["file"]]["priority"]
            )
            t = Triage(email=email, classification=c)
            text = f"{email.subject}\n{email.body}"
            # code
            code_request = truth.request_by_code(email)
            code_deadline = truth.deadline_by_code(email)
            code: dict[str, Any] = {
                "summary": truth.summary_by_code(email),
                "request": code_request,
                "deadline": code_deadline.isoformat() if code_deadline else None,
                "order_numbers": ids(text, ORDER_ID),
                "invoice_numbers": ids(text, INVOICE_ID),
                "amounts": truth.amounts_by_code(email),
                "needs_reply": truth.needs_reply_by_code(email, c.category),
            }
            code_ids = [*code["order_numbers"], *code["invoice_numbers"]]
            code["reply"] = truth.reply_by_code(email, c.category, code_ids)
            if row in spam:  # the triage stops after the summary
                if phase == "code":
                    tiers["code"]["summary"].append(score("summary", code["summary"], row, t))
                    continue
                summary = await run(summarise, t, gateway=gateway, model="local")
                calls += 1
                for tier in ("embedded raw", "checked"):
                    value = summary
                    if tier == "checked" and _text_problems(summary, t, "summarise"):
                        value = code["summary"]
                    tiers[tier]["summary"].append(score("summary", value, row, t))
                continue
            if phase == "code":
                languages.append((truth.language(email.excerpt), row["language"]))
                for field in FIELDS:
                    tiers["code"][field].append(score(field, code[field], row, t))
                continue
            # embedded, raw
            t0 = time.perf_counter()
            summary = await run(summarise, t, gateway=gateway, model="local")
            x: Extraction = await run(extract, t, gateway=gateway, model="local")
            try:
                reply: str | None = await run(
                    draft, t.model_copy(update={"extraction": x}), gateway=gateway, model="local"
                )
            except OutputValidationError:
                reply, cut_off = None, cut_off + 1
            seconds += time.perf_counter() - t0
            calls += 3
            raw = {
                "summary": summary,
                "request": x.request,
                "deadline": x.deadline,
                "order_numbers": [i for i in x.order_numbers if i],
                "invoice_numbers": [i for i in x.invoice_numbers if i],
                "amounts": code["amounts"],
                "needs_reply": x.needs_reply,
                "reply": reply,
            }
            # embedded, checked (the workflow's gates; code where they refuse)
            deadline, _ = truth.deadline_of_model(x.deadline, email)
            checked = {
                "summary": summary
                if _text_problems(summary, t, "summarise") is None
                else code["summary"],
                "request": x.request
                if x.request.strip() and _text_problems(x.request, t, "extract") is None
                else code_request,
                "deadline": deadline.isoformat() if deadline else code["deadline"],
                "order_numbers": ids(text, ORDER_ID, x.order_numbers),
                "invoice_numbers": ids(text, INVOICE_ID, x.invoice_numbers),
                "amounts": code["amounts"],
                "needs_reply": x.needs_reply,
                "reply": reply
                if reply and not truth.reply_problems(reply, email)
                else code["reply"],
            }
            for name, values in (("embedded raw", raw), ("checked", checked)):
                for field in FIELDS:
                    tiers[name][field].append(score(field, values[field], row, t))
            print(row["file"], "raw:", json.dumps({k: raw[k] for k in ("request", "deadline")}))
            # Written after every mail: a run stopped early still leaves its results.
            extra = Extra(inbox_name, len(filed), len(spam), languages)
            report(tiers, len(gold), calls, seconds, cut_off, time.perf_counter() - started, extra)
    extra = Extra(inbox_name, len(filed), len(spam), languages)
    report(tiers, len(gold), calls, seconds, cut_off, time.perf_counter() - started, extra)


class Extra(NamedTuple):
    """What the hard inbox's report says besides the table."""

    inbox: str
    filed: int
    spam: int
    languages: list[tuple[str, str | None]]


def report(
    tiers: dict[str, dict[str, list[tuple[bool | None, int]]]],
    n: int,
    calls: int,
    seconds: float,
    cut_off: int,
    elapsed: float,
    extra: Extra | None = None,
) -> None:
    m = len(tiers["checked"]["request"])
    hard = extra is not None and extra.inbox == "hard"
    mails = (
        f"{n} hard mails with hand-written gold facts (`hard_inbox/gold-facts.jsonl`) that the "
        f"triage extracts facts for (of {n + extra.filed + extra.spam}: the {extra.filed} it "
        f"files by their headers are left out; the {extra.spam} spam mails stop after their "
        "summary, which the summary row checks too)"
        if hard and extra is not None
        else f"{n} sample mails with hand-written gold facts (`sample_inbox/gold-facts.jsonl`)"
    )
    lines = [
        "# Email triage: does it tell the truth?" + (" (hard mails)" if hard else ""),
        "",
        f"`bench/triage_truth.py{' --inbox hard' if hard else ''}`, "
        f"{date.today().isoformat()}, {platform.machine()}, {mails}. "
        "Embedded model: SmolLM2-135M-Instruct (`local`), the workflow's own prompts. "
        f"The code tier on all {n} mails; the embedded tiers on the first {m} ({calls} calls, "
        f"{seconds / max(m, 1):.1f} s of model time per mail on shared, busy cores); "
        f"whole run {elapsed:.0f} s.",
        "",
        "Per field: right answers / mails (where there is gold), and **violations**: values "
        "stating something the mail does not (ungrounded numbers, amounts, dates, ids, names; "
        "a request that copies the instructions; a deadline that is not a date the mail "
        "gives). `checked` is the embedded answer after the grounding gate, code where the "
        "gate refused it. Replies: right = passes every check (signed by us, no placeholder, "
        f"not cut off, grounded); {cut_off} of {m} raw drafts were cut off at max_tokens.",
        "",
        f"| field | code right ({n}) | code violations | code right (first {m}) "
        f"| embedded raw right ({m}) | raw violations | checked right ({m}) | checked violations "
        "| tier for `local` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for field in FIELDS:
        cells = []
        best = ("", -1.0)
        for name in ("code", "code (first m)", "embedded raw", "checked"):
            results = tiers["code"][field][:m] if name == "code (first m)" else tiers[name][field]
            rights = [r for r, _ in results if r is not None]
            violations = sum(v for _, v in results)
            right = f"{sum(rights)}/{len(rights)}" if rights else "-"
            cells += [right] if name == "code (first m)" else [right, str(violations)]
            rate = (sum(rights) / len(rights) if rights else 1.0) - violations
            if name in ("code (first m)", "checked") and rate > best[1]:
                best = (name, rate)
        choice = "code" if best[0] == "code (first m)" else "llm (checked)"
        lines.append(f"| {field} | " + " | ".join(cells) + f" | {choice} |")
    lines += [
        "",
        "Where code and the checked model tie, code is chosen: it costs no model call. "
        "The chosen tiers are `truth.LOCAL_TIERS`; on any other model the workflow asks the "
        "model and checks every answer (`truth.MODEL_TIERS`).",
    ]
    if hard and extra is not None:
        same = sum(guess == want for guess, want in extra.languages)
        lines += [
            "",
            f"Language by code (`truth.language`: by script for zh, ja, ko, ar, he, else by "
            f"common words for en, de, fr, es): {same}/{len(extra.languages)} equal to the "
            "gold language.",
        ]
    out = RESULTS.with_name("RESULTS-triage-truth-hard.md") if hard else RESULTS
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("limit", nargs="?", type=int, help="the embedded tiers on the first N")
    parser.add_argument("--inbox", choices=INBOXES, default="sample")
    args = parser.parse_args()
    asyncio.run(main(args.inbox, args.limit))
