"""The templates' own code (each folder's tools.py), against real data: the support-chat
SQLite database, the data-analysis CSV, the sample notes, inboxes and style guide."""

from __future__ import annotations

import csv
import importlib.util
import sqlite3
import threading
from datetime import date
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import llmflow
from llmflow import ConfigError, Evaluation, InputError

TEMPLATES = Path(llmflow.__file__).parent / "templates"


def load_tools(template: str) -> ModuleType:
    """A template's tools.py, loaded by path under a name of its own (as the loader does)."""
    path = TEMPLATES / template / "tools.py"
    spec = importlib.util.spec_from_file_location(f"template_tools_{template}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- support-chat: a real SQLite database, built from seed.sql in the state directory --------


@pytest.fixture
def shop() -> ModuleType:
    return load_tools("support-chat")


def refund_rows(path: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT order_id, amount_eur FROM refunds ORDER BY id").fetchall()


def test_the_database_is_built_in_the_state_directory_on_first_use(
    shop: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "home" / "support-chat" / "shop.db"  # LLMFLOW_HOME is tmp_path/home
    assert shop.database_path() == path
    assert not path.exists()
    assert shop.look_up_order("NW-1042").startswith("NW-1042: Ridgeline 2P tent, 249.00 EUR")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (6,)
        assert db.execute("SELECT count(*) FROM refunds").fetchone() == (0,)
    assert not list(path.parent.glob("*.partial"))


def test_support_db_location_can_be_set(
    shop: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORT_CHAT_DB", str(tmp_path / "elsewhere" / "my.db"))
    shop.look_up_customer("C-102")
    assert (tmp_path / "elsewhere" / "my.db").exists()


def test_look_ups_accept_what_people_write_and_refuse_the_rest(shop: ModuleType) -> None:
    customer = shop.look_up_customer("Anna.Berg@Example.com")
    assert customer.startswith("C-101: Anna Berg")
    assert "NW-1042 Ridgeline 2P tent (delivered)" in customer
    assert "NW-1043 Summit 45 backpack (shipped)" in customer
    assert shop.look_up_customer("c101") == customer
    for written in ("nw1042", "#1042", "order 1042", " NW-1042 "):
        assert shop.look_up_order(written).startswith("NW-1042:")
    invoice = shop.look_up_invoice("NW-1060")
    assert (
        invoice == "INV-2026-0377 for NW-1060: net 274.17 EUR + VAT 54.83 EUR = 329.00 EUR, "
        "paid by invoice"
    )
    with pytest.raises(ValueError, match="order ids look like NW-1042"):
        shop.look_up_order("my tent")
    with pytest.raises(ValueError, match="there is no order NW-9999"):
        shop.look_up_order("NW-9999")
    with pytest.raises(ValueError, match=r"no customer nobody@example\.com"):
        shop.look_up_customer("nobody@example.com")
    with pytest.raises(ValueError, match="neither an email address nor a customer id"):
        shop.look_up_customer("Anna")
    with pytest.raises(ValueError, match="give the customer's email"):
        shop.look_up_customer("  ")


def test_an_order_is_refunded_once(shop: ModuleType) -> None:
    confirmation = shop.request_refund("nw-1042", "broken pole")
    assert confirmation == "Refund of 249.00 EUR for NW-1042 recorded (broken pole)."
    with pytest.raises(ValueError, match=r"NW-1042 was already refunded .* do not refund it again"):
        shop.request_refund("NW-1042", "asking again")
    assert refund_rows(shop.database_path()) == [("NW-1042", 249.0)]
    assert "refunded 249.00 EUR" in shop.look_up_order("NW-1042")
    assert [r["order_id"] for r in shop.refunds_of_customer("anna.berg@example.com")] == ["NW-1042"]
    assert shop.refunds_of_customer("luis.ortega@example.com") == []


def test_only_delivered_orders_are_refunded(shop: ModuleType) -> None:
    for order, status in (("NW-1043", "shipped"), ("NW-1061", "cancelled"), ("NW-1070", "paid")):
        with pytest.raises(ValueError, match=f"{order} is {status}, not delivered"):
            shop.request_refund(order, "changed my mind")
    with pytest.raises(ValueError, match="give the reason"):
        shop.request_refund("NW-1051", " ")
    assert refund_rows(shop.database_path()) == []


def test_concurrent_refunds_of_one_order_make_one_row(shop: ModuleType) -> None:
    assert not shop.database_path().exists()  # the threads race to build it, too
    outcomes: list[str] = []

    def refund() -> None:
        try:
            outcomes.append(shop.request_refund("NW-1051", "too small"))
        except ValueError as e:
            outcomes.append(f"refused: {e}")

    threads = [threading.Thread(target=refund) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not o.startswith("refused") for o in outcomes) == 1
    assert refund_rows(shop.database_path()) == [("NW-1051", 119.9)]
    assert not list(shop.database_path().parent.glob("*.partial"))


# -- data-analysis: pandas over the sample CSV, checked against the csv module -------------------


@pytest.fixture
def analysis() -> ModuleType:
    return load_tools("data-analysis")


def sample_rows() -> list[dict[str, str]]:
    with (TEMPLATES / "data-analysis" / "sample" / "sales.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_describe_lists_every_column(analysis: ModuleType) -> None:
    rows = sample_rows()
    text = analysis.describe_data()
    assert text.startswith(f"{len(rows)} rows from sales.csv")
    for column in rows[0]:
        assert f"- {column} (" in text
    assert "- region (text, 4 values): North, South, East, West" in text


def test_aggregates_are_the_sums_of_the_rows(analysis: ModuleType) -> None:
    rows = sample_rows()
    by_region: dict[str, float] = {}
    for r in rows:
        by_region[r["region"]] = by_region.get(r["region"], 0.0) + float(r["revenue_eur"])
    text = analysis.group_and_aggregate("revenue_eur", "sum", "region")
    lines = text.splitlines()
    assert lines[0] == "sum of revenue_eur by region:"
    expected = sorted(by_region.items(), key=lambda kv: -kv[1])
    assert lines[1:] == [f"{region}: {total:,.2f}" for region, total in expected]
    units = sum(int(r["units"]) for r in rows)
    assert analysis.group_and_aggregate("Units", "sum") == f"sum of units:\nall rows: {units:,}"
    tents = [r for r in rows if r["category"] == "tents"]
    assert analysis.filter_rows("category", "==", "Tents").startswith(
        f"{len(tents)} rows where category == Tents:"
    )
    big = [r for r in rows if int(r["units"]) > 35]
    assert analysis.filter_rows("units", ">", "35").startswith(f"{len(big)} rows where units > 35")
    assert analysis.filter_rows("region", "==", "Mars") == "No rows where region == Mars."


def test_bad_analysis_arguments_name_the_fix(analysis: ModuleType) -> None:
    with pytest.raises(ValueError, match="no column 'revenue' \\(did you mean 'revenue_eur'\\?\\)"):
        analysis.group_and_aggregate("revenue", "sum", "region")
    with pytest.raises(ValueError, match="sum needs a numeric column and 'product' holds text"):
        analysis.group_and_aggregate("product", "sum")
    with pytest.raises(ValueError, match="'units' holds numbers: compare it with a number"):
        analysis.filter_rows("units", ">", "many")
    with pytest.raises(ValueError, match="'region' holds text: use == or !="):
        analysis.filter_rows("region", ">", "North")
    with pytest.raises(ValueError, match="Input should be 'sum', 'mean'"):
        analysis.group_and_aggregate("units", "median")


def test_another_csv_and_a_missing_one(
    analysis: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "trips.csv"
    data.write_text("guide,km\nAda,12.5\nBo,7\nAda,3\n", encoding="utf-8")
    monkeypatch.setenv("DATA_ANALYSIS_CSV", str(data))
    assert analysis.group_and_aggregate("km", "sum", "guide") == (
        "sum of km by guide:\nAda: 15.50\nBo: 7.00"
    )
    monkeypatch.setenv("DATA_ANALYSIS_CSV", str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match=r"cannot read the CSV .*missing\.csv.*DATA_ANALYSIS_CSV"):
        analysis.describe_data()


def test_a_chart_is_drawn_as_png(analysis: ModuleType, tmp_path: Path) -> None:
    ctx = SimpleNamespace(out_dir=tmp_path / "out")
    chart = {"column": "revenue_eur", "agg": "sum", "group_by": "month", "kind": "line"}
    result = analysis.chart_for(
        {"name": "by month?", "answer": {"answer": "x", "chart": chart}}, ctx
    )
    assert result.path == "charts/by-month.png" and result.error is None
    png = (ctx.out_dir / result.path).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (600, 350)

    text_sum = {"column": "product", "agg": "sum", "group_by": "region"}
    refused = analysis.chart_for({"name": "q", "answer": {"answer": "x", "chart": text_sum}}, ctx)
    assert refused.path is None
    assert "sum needs a numeric column" in (refused.error or "")
    none = analysis.chart_for({"name": "q", "answer": {"answer": "x", "chart": None}}, ctx)
    assert none.error == "the analyst suggested no chart"


# -- tasks: due dates resolved relative to the note, owners grounded ----------------------------


@pytest.fixture
def tasks() -> ModuleType:
    return load_tools("tasks")


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        ("by Wednesday", date(2026, 11, 25)),
        ("Friday", date(2026, 11, 27)),
        ("Monday", date(2026, 11, 30)),  # written on a Monday: the next one
        ("next Tuesday", date(2026, 12, 1)),
        ("tomorrow", date(2026, 11, 24)),
        ("end of the week", date(2026, 11, 27)),
        ("end of month", date(2026, 11, 30)),
        ("before 28 November", date(2026, 11, 28)),
        ("by 2 December", date(2026, 12, 2)),
        ("2 January", date(2027, 1, 2)),
        ("2026-12-15", date(2026, 12, 15)),
        ("next quarter", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_due_dates_resolve_relative_to_the_note(
    tasks: ModuleType, due: str | None, expected: date | None
) -> None:
    assert tasks.resolve_due(due, date(2026, 11, 23)) == expected


def test_notes_are_grounded_into_tasks(tasks: ModuleType) -> None:
    text = (TEMPLATES / "tasks" / "sample" / "2026-11-23-ops-weekly.md").read_text()
    note = tasks.parse_note(text)
    assert note.written_on == "2026-11-23"
    extracted = {
        "items": [
            {"task": "Reorder 200 backpacks", "owner": "Jonas", "due": "by Wednesday"},
            {"task": "reorder 200  backpacks", "owner": "Jonas", "due": None},  # a repeat
            {"task": "Send late orders to the carrier", "owner": "Elena", "due": "Friday"},
            {"task": "Update the returns page", "owner": "Bob", "due": "next quarter"},
        ]
    }
    result = tasks.to_tasks({"note": note, "extracted": extracted})
    assert [t.model_dump() for t in result] == [
        {
            "task": "Reorder 200 backpacks",
            "owner": "Jonas",
            "due": "by Wednesday",
            "due_date": "2026-11-25",
        },
        {
            "task": "Send late orders to the carrier",
            "owner": "Elena",
            "due": "Friday",
            "due_date": "2026-11-27",
        },
        {
            "task": "Update the returns page",
            "owner": None,
            "due": "next quarter",
            "due_date": None,
        },  # Bob is not in the note
    ]
    with pytest.raises(InputError, match="the note is empty"):
        tasks.parse_note("  \n")
    assert tasks.parse_note("No date line here.").written_on is None


# -- content: the style guide's measurable rules -------------------------------------------------


@pytest.fixture
def content() -> ModuleType:
    return load_tools("content")


def test_style_rules_come_from_the_guide(content: ModuleType) -> None:
    rules = content.style_rules(content.style_guide())
    assert rules.max_words == {"product description": 80, "blog post": 150}
    assert "revolutionary" in rules.banned and "unleash" in rules.banned
    with pytest.raises(ConfigError, match="'blog: short' is not '<kind>: at most <n> words'"):
        content.style_rules("## Length\n\n- blog: short\n")


def test_code_checks_overrule_the_critique(content: ModuleType) -> None:
    brief = {"kind": "product description", "subject": "Ridgeline 2P tent"}
    good = content.check_style(
        {"text": "The Ridgeline 2P tent sets up in minutes.", "brief": brief}
    )
    assert good.ok and good.issues == [] and good.words == 8
    long_text = "The Ridgeline 2P tent is a revolutionary shelter. " + "word " * 80
    bad = content.check_style({"text": long_text, "brief": brief})
    assert not bad.ok
    assert bad.banned_used == ["revolutionary"]
    assert bad.issues[0] == f"{bad.words} words: cut it to at most 80"
    unnamed = content.check_style({"text": "A light tent.", "brief": brief})
    assert unnamed.issues == ["name the product, 'Ridgeline 2P tent'"]
    titled = content.check_style({"text": "## Ridgeline 2P tent\nLight.", "brief": brief})
    assert titled.issues == ["remove the headings: give the text only"]

    praise = {"passed": True, "score": 9.0, "feedback": "Lovely."}
    overruled = content.verdict({"critique": praise, "check": bad.model_dump()})
    assert overruled.passed is False and overruled.score == 5.0
    assert overruled.feedback.startswith(bad.issues[0])
    assert overruled.feedback.endswith("Also: Lovely.")
    kept = content.verdict({"critique": praise, "check": good.model_dump()})
    assert kept == Evaluation(passed=True, score=9.0, feedback="Lovely.")


# -- decision: ballots and the vote count --------------------------------------------------------


@pytest.fixture
def decision() -> ModuleType:
    return load_tools("decision")


def vote(choice: str, reason: str = "r") -> dict[str, str]:
    return {"choice": choice, "reason": reason}


def test_ballots_label_options_and_refuse_bad_decisions(decision: ModuleType) -> None:
    ballot = decision.ballot({"question": "Q?", "options": ["x", "y", "z"], "criteria": ["cost"]})
    assert ballot.options == {"A": "x", "B": "y", "C": "z"}
    with pytest.raises(InputError, match="options: List should have at least 2 items"):
        decision.ballot({"question": "Q?", "options": ["x"], "criteria": ["cost"]})
    with pytest.raises(InputError, match="criteria: Field required"):
        decision.ballot({"question": "Q?", "options": ["x", "y"]})


def test_votes_are_counted_on_the_options_that_exist(decision: ModuleType) -> None:
    ballot = decision.ballot({"question": "Q?", "options": ["x", "y", "z"], "criteria": ["c"]})
    votes = [vote("B", "cheap"), vote("D"), vote("B", "fast"), vote("A")]
    outcome = decision.count_votes({"ballot": ballot, "vote": {"votes": votes}})
    assert (outcome.letter, outcome.option) == ("B", "y")
    assert outcome.tally == {"x": 1, "y": 2, "z": 0}
    assert outcome.agreement == pytest.approx(2 / 3)
    assert outcome.reasons == ["cheap", "fast"]
    assert outcome.invalid_votes == 1  # D names no option
    tie = decision.count_votes({"ballot": ballot, "vote": {"votes": [vote("C"), vote("A")]}})
    assert tie.option == "x"  # a tie goes to the option listed first
    with pytest.raises(ValueError, match="none of the 1 votes chose one of the options"):
        decision.count_votes({"ballot": ballot, "vote": {"votes": [vote("D")]}})


# -- email-triage and email-digest: ids grounded, emails filed, the inbox read -------------------


def test_triage_grounds_ids_and_files_the_email(tmp_path: Path) -> None:
    triage = load_tools("email-triage")
    email = SimpleNamespace(
        source="010-tent-pole-broken.eml",
        sender="Anna <anna@example.com>",
        subject="Broken pole, order NW-10482",
        body="The pole snapped. Order NW-10482, invoice INV-2026-0193.",
        excerpt="The pole snapped.",
        attachments=[SimpleNamespace(filename="photo.jpg")],
        raw=b"From: anna@example.com\r\n\r\nThe pole snapped.",
    )
    facts = triage.ground_ids(
        {
            "email": email,
            "extraction": {
                "request": "a new pole",
                "order_numbers": ["NW-99999", "NW-10482"],
                "invoice_numbers": [],
                "needs_reply": True,
            },
        }
    )
    assert facts["order_numbers"] == ["NW-10482"]  # the invented id is dropped
    assert facts["invoice_numbers"] == ["INV-2026-0193"]  # the missed id is added
    assert triage.email_text(email) == (
        "From: Anna <anna@example.com>\nSubject: Broken pole, order NW-10482\n"
        "Attachments: photo.jpg\n\nThe pole snapped."
    )
    ctx = SimpleNamespace(out_dir=tmp_path)
    filed = triage.file_email({"email": email, "category": "support"}, ctx)
    assert filed == {"filed_as": "support/010-tent-pole-broken.eml"}
    assert (tmp_path / "support" / "010-tent-pole-broken.eml").read_bytes() == email.raw
    with pytest.raises(ValueError, match=r"cannot file under '\.\./x'"):
        triage.file_email({"email": email, "category": "../x"}, ctx)


def test_digest_reads_the_inbox_and_ranks_summaries(tmp_path: Path) -> None:
    digest = load_tools("email-digest")
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    for mail in sorted((TEMPLATES / "email-digest" / "sample_inbox").glob("*.eml"))[:2]:
        (inbox_dir / mail.name).write_bytes(mail.read_bytes())
    (inbox_dir / "zz-broken.eml").write_bytes(b"\x00\x01 not an email")
    inbox = digest.read_inbox(str(inbox_dir))
    assert [m.source for m in inbox.emails] == [
        "001-invoice-overdue.eml",
        "009-where-is-my-order.eml",
    ]
    assert len(inbox.unreadable) == 1 and inbox.unreadable[0].startswith("zz-broken.eml: ")
    assert all(len(m.text) <= digest.EXCERPT_CHARS for m in inbox.emails)
    plan = digest.one_subtask_per_email(inbox)
    assert [s.title for s in plan.subtasks] == [f"{m.sender}: {m.subject}" for m in inbox.emails]
    assert plan.subtasks[0].instructions == inbox.emails[0].text

    results: list[Any] = [
        {"task": {"title": "a"}, "output": {"priority": "low", "summary": "FYI"}, "error": None},
        {"task": {"title": "b"}, "output": None, "error": "timed out"},
        {
            "task": {"title": "c"},
            "output": {"priority": "urgent", "summary": " Pay\nnow "},
            "error": None,
        },
    ]
    ranked = digest.rank(results)
    assert [(r.title, r.priority, r.summary) for r in ranked] == [
        ("c", "urgent", "Pay now"),
        ("a", "low", "FYI"),
        ("b", "unknown", "(failed: timed out)"),
    ]
    with pytest.raises(InputError, match="no such file or folder"):
        digest.read_inbox(str(tmp_path / "nowhere"))
