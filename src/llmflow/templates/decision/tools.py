"""Code steps of the decision template: lay out the ballot, count the votes.

The options of a decision differ from item to item, so the evaluators answer with a letter
(A, B, C, D) that the output schema constrains, and code maps the letters back to the
options, drops votes for letters that name no option, and tallies the rest.
"""

# No `from __future__ import annotations`: pydantic resolves these models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from llmflow import InputError

LETTERS = "ABCD"
"""The evaluators' answers: at most four options per decision (the schema's enum)."""


class Decision(BaseModel):
    """One decision to take: a question, its options, and the criteria to weigh them by."""

    question: str = Field(min_length=1, max_length=400)
    options: list[str] = Field(min_length=2, max_length=len(LETTERS))
    criteria: list[str] = Field(min_length=1, max_length=6)


class Ballot(BaseModel):
    """The decision, with each option labelled by its letter."""

    question: str
    options: dict[str, str]
    """Letter → option."""
    criteria: list[str]


def ballot(item: Any) -> Ballot:
    """The decision as a ballot (A: first option, B: second, ...); a decision with fewer than
    two or more than four options, or no criteria, is refused with the reason."""
    try:
        decision = Decision.model_validate(item)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}" for err in e.errors()
        )
        raise InputError(
            f"not a decision ({problems}): give question, 2 to 4 options and the criteria"
        ) from e
    return Ballot(
        question=decision.question,
        options=dict(zip(LETTERS, decision.options, strict=False)),
        criteria=decision.criteria,
    )


class Outcome(BaseModel):
    """The counted vote."""

    letter: str
    option: str
    tally: dict[str, int]
    """Option → votes, every option listed."""
    agreement: float
    """Share of the valid votes that went to the chosen option."""
    reasons: list[str]
    """The reasons given by the evaluators who chose it."""
    invalid_votes: int
    """Votes for a letter that names no option."""


def count_votes(payload: dict[str, Any]) -> Outcome:
    """Count the evaluators' votes (`vote`: the vote step's result) on the `ballot`. The
    most-voted option wins; a tie goes to the option listed first."""
    ballot_ = Ballot.model_validate(payload["ballot"])
    votes = _get(payload["vote"], "votes") or []
    valid = [v for v in votes if _get(v, "choice") in ballot_.options]
    if not valid:
        raise ValueError(
            f"none of the {len(votes)} votes chose one of the options"
            f" ({', '.join(ballot_.options)}): run again, or on a stronger model"
        )
    counts = Counter(str(_get(v, "choice")) for v in valid)
    letter = max(ballot_.options, key=lambda k: (counts[k], -LETTERS.index(k)))
    return Outcome(
        letter=letter,
        option=ballot_.options[letter],
        tally={ballot_.options[k]: counts[k] for k in ballot_.options},
        agreement=counts[letter] / len(valid),
        reasons=[str(_get(v, "reason")) for v in valid if _get(v, "choice") == letter],
        invalid_votes=len(votes) - len(valid),
    )


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)
