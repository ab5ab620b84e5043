"""Scoring a language step on gold data: per-field accuracy, grounded rate, output checks.

A gold row is `{"input": <the workflow's item>, "gold": {<field>: <value>, ...}}` (and
optionally `"source"`: the text the output must be grounded in; default: the input as text).
The whole workflow runs on each row's input and the named step's output is read; then, by
code:

- **per-field accuracy** for each gold field, compared by meaning: dates as dates
  (`2026-12-04` = `4 December 2026`), amounts by value (`1250 EUR` = `1 250,00 €`), numbers by
  value, lists as sets, other text case- and space-insensitively; a null in the gold wants an
  empty answer (nothing invented);
- **grounded rate**: the share of outputs that state no number, amount, date, id, email
  address, URL or name absent from the source (`steps.grounding.ungrounded`; for an object
  output, over the gold's fields); an answer the step's own `grounded:` check refused counts
  as ungrounded;
- **output checks**: no placeholder (`[Your Name]`), not empty, not refused, the step did not
  fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError
from ..models.gateway import Gateway
from ..patterns.chain import Assign
from ..patterns.grounded import Grounding, text_of
from ..runtime.runner import run
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from ..steps.grounding import Source, find_dates, ungrounded

PLACEHOLDER = re.compile(r"\[(?:your|insert|name|address|company|date|customer)[^\]]*\]", re.I)
CURRENCY = re.compile(
    r"[€$£¥元]|\b(?:usd|eur|gbp|chf|jpy|cny|rmb|cad|aud|sek|euros?|dollars?)\b", re.I
)
SYMBOLS = {"€": "eur", "$": "usd", "£": "gbp", "¥": "jpy", "元": "cny", "rmb": "cny",
           "euro": "eur", "euros": "eur", "dollar": "usd", "dollars": "usd"}  # fmt: skip


@dataclass(frozen=True)
class GoldRow:
    input: Any
    gold: Any
    source: str


@dataclass(frozen=True)
class Answer:
    """What the step did on one row."""

    output: Any
    error: str | None = None
    refused: list[str] | None = None
    """What the step's own `grounded:` check refused (None: it has none, or it passed)."""


@dataclass
class FieldScore:
    field: str
    correct: int = 0
    rows: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0


@dataclass
class RowResult:
    output: Any
    error: str | None
    ungrounded: list[str]
    wrong: dict[str, Any]
    """Each gold field answered wrongly: what the step said."""
    problems: list[str]
    """Failed output checks."""


@dataclass
class LanguageScore:
    step: str
    rows: int
    fields: list[FieldScore] = field(default_factory=list)
    grounded: int = 0
    """Outputs stating nothing the source does not (failed steps are not counted)."""
    answered: int = 0
    """Rows on which the model stated something (kept, or refused by the step's own check)."""
    checks_passed: int = 0
    results: list[RowResult] = field(default_factory=list)

    @property
    def grounded_rate(self) -> float:
        return self.grounded / self.answered if self.answered else 0.0

    @property
    def checks_rate(self) -> float:
        return self.checks_passed / self.rows if self.rows else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rows": self.rows,
            "fields": {
                f.field: {"accuracy": round(f.accuracy, 4), "correct": f.correct, "rows": f.rows}
                for f in self.fields
            },
            "grounded_rate": round(self.grounded_rate, 4),
            "grounded": self.grounded,
            "answered": self.answered,
            "checks_rate": round(self.checks_rate, 4),
            "results": [
                {
                    "output": _plain(r.output),
                    "error": r.error,
                    "ungrounded": r.ungrounded,
                    "wrong": _plain(r.wrong),
                    "problems": r.problems,
                }
                for r in self.results
            ],
        }


def read_gold(path: Path) -> list[GoldRow]:
    """The rows of a gold JSONL file; ConfigError naming the line of a bad one."""
    rows: list[GoldRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{number}: not JSON: {e.msg}") from None
        if not isinstance(row, dict) or "input" not in row or "gold" not in row:
            raise ConfigError(
                f'{path}:{number}: a gold row is {{"input": ..., "gold": {{field: value}}}}'
            )
        source = row.get("source")
        text = text_of(row["input"] if source is None else source)
        rows.append(GoldRow(row["input"], row["gold"], text))
    if not rows:
        raise ConfigError(f"{path} has no gold rows")
    return rows


class _Capture(RunHooks):
    """The output (or error) of the first run of the step called `name`, and what its own
    grounding check (`grounded:`, recorded as its child `grounded`) refused."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran = False
        self.output: Any = None
        self.error: BaseException | None = None
        self.refused: list[str] | None = None

    def on_step_end(self, ctx: RunContext, **kwargs: Any) -> None:
        parts = ctx.path.split("/")
        if self.ran:
            return
        step, output = kwargs["step"], kwargs["output"]
        if parts[-1] == self.name and step.name == self.name:
            if isinstance(step, Assign):  # a chain's step: its output is stored in the state
                output = output.get(step.field) if isinstance(output, dict) else None
            self.ran = True
            self.output, self.error = output, kwargs["error"]
        elif parts[-2:] == [self.name, "grounded"] and isinstance(kwargs["output"], Grounding):
            self.refused = kwargs["output"].ungrounded


async def step_outputs(
    root: Step[Any, Any],
    name: str,
    rows: Sequence[GoldRow],
    gateway: Gateway,
    concurrency: int = 16,
) -> list[Answer]:
    """The output of step `name` (or why it has none) when `root` runs on each row's input."""
    gate = asyncio.Semaphore(concurrency)

    async def one(row: GoldRow) -> Answer:
        capture = _Capture(name)
        async with gate:
            try:
                await run(root, row.input, gateway=gateway, hooks=[capture])
            except Exception as e:  # the step's own error is read below; another one is said
                if not capture.ran:
                    return Answer(None, f"{type(e).__name__}: {e}", capture.refused)
        if capture.error is not None:
            return Answer(None, str(capture.error), capture.refused)
        if not capture.ran:
            return Answer(None, f"step {name!r} did not run (a gate stopped before it)")
        return Answer(capture.output, None, capture.refused)

    return list(await asyncio.gather(*(one(row) for row in rows)))


def score(
    name: str, rows: Sequence[GoldRow], answers: Sequence[Answer], *, text: bool = False
) -> LanguageScore:
    """Per-field accuracy, grounded rate and output checks of `answers` against `rows`.
    For a step answering `text`, only a gold `output` (or a gold that is not a mapping) is
    compared; other gold fields are the source's facts, checked by grounding only."""
    result = LanguageScore(step=name, rows=len(rows))
    fields: dict[str, FieldScore] = {}
    for row, answered in zip(rows, answers, strict=True):
        error = answered.error
        got = _plain(answered.output)
        gold = (
            row.gold
            if isinstance(row.gold, dict)
            else {}
            if row.gold is None
            else {"output": row.gold}
        )
        if text:
            gold = {k: v for k, v in gold.items() if k == "output"}
        answer = got if isinstance(got, dict) else {"output": got}
        wrong: dict[str, Any] = {}
        for key, want in gold.items():
            scored = fields.setdefault(key, FieldScore(key))
            scored.rows += 1
            if error is None and same(want, answer.get(key)):
                scored.correct += 1
            else:
                wrong[key] = answer.get(key)
        checked = text_of(got, list(gold) if isinstance(got, dict) and gold else None)
        refused = answered.refused or ungrounded(checked, row.source)
        problems = [] if error is None else [f"failed: {error}"]
        if answered.refused:
            problems.append(f"refused as ungrounded: {', '.join(answered.refused)}")
        elif error is None and not text_of(got).strip() and (text or not _wants_nothing(gold)):
            problems.append("empty")
        problems += [f"placeholder {m.group(0)}" for m in PLACEHOLDER.finditer(text_of(got))]
        if answered.refused or (error is None and checked.strip()):
            result.answered += 1  # the model answered something (its step may refuse it)
            result.grounded += not refused
        result.checks_passed += not problems
        result.results.append(RowResult(got, error, refused, wrong, problems))
    result.fields = list(fields.values())
    return result


def same(gold: Any, got: Any) -> bool:
    """Whether an answer means the gold value (see the module's doc)."""
    if gold is None or gold == "" or gold == []:
        return got is None or text_of(got).strip() == ""
    if got is None:
        return False
    if isinstance(gold, bool):
        return str(got).strip().lower() in ({"true", "yes", "1"} if gold else {"false", "no", "0"})
    if isinstance(gold, list):
        items = got if isinstance(got, list) else [got]
        unmatched = list(items)
        for want in gold:
            match = next((g for g in unmatched if same(want, g)), None)
            if match is None:
                return False
            unmatched.remove(match)
        return not unmatched
    if isinstance(gold, int | float):
        return _number(gold) in Source.of(text_of(got)).numbers
    want, said = _words(str(gold)), _words(text_of(got))
    if want == said:
        return True
    gold_date = _only_date(str(gold))
    if gold_date is not None:
        dates = find_dates(text_of(got))
        return len(dates) == 1 and _same_day(gold_date, dates[0].value)
    if CURRENCY.search(str(gold)) or re.fullmatch(r"[\d\s.,'\u00a0]+", str(gold)):
        (want_values, want_currency), (said_values, said_currency) = (
            _amount(str(gold)),
            _amount(text_of(got)),
        )
        return bool(want_values & said_values) and want_currency <= said_currency
    return False


def _wants_nothing(gold: dict[str, Any]) -> bool:
    """Whether the gold says the source states none of the fields (an empty answer is right)."""
    return bool(gold) and all(v is None or v == "" or v == [] for v in gold.values())


def _words(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .,;:!")


def _only_date(text: str) -> dt.date | None:
    """The date `text` is (a date and little else), or None."""
    found = find_dates(text)
    if len(found) == 1 and len(found[0].text) >= len(text.strip()) - 2:
        return found[0].value
    return None


def _same_day(gold: dt.date, got: dt.date) -> bool:
    return (gold.month, gold.day) == (got.month, got.day) and got.year in (gold.year, 1)


def _number(value: int | float) -> Decimal:
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:  # pragma: no cover - a JSON number always reads
        return Decimal(0)


def _amount(text: str) -> tuple[frozenset[Decimal], frozenset[str]]:
    """An amount's possible values and its currency (symbols as codes)."""
    currencies = frozenset(
        SYMBOLS.get(m.group(0).lower(), m.group(0).lower()) for m in CURRENCY.finditer(text)
    )
    return Source.of(CURRENCY.sub(" ", text)).numbers, currencies


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
