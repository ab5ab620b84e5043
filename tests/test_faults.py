"""Runs against a provider that fails: every transient fault is retried and every item
completes; a provider that is down stops the run fast, naming its URL; invalid outputs are
never cached; and no API key reaches anything llmflow stores or prints.

The server is `fault_server`: a real OpenAI-compatible HTTP server on loopback that injects
malformed JSON, HTML and plain-text pages with status 200, truncated bodies, connection
resets, 500s, 429s with Retry-After and invalid structured outputs into 20 % of requests,
chosen by a fixed seed.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llmflow.cli import main
from llmflow.store.sqlite import RunStore

from .fault_server import closed_port, serve_faults

WORKFLOW = """\
name: numbers
input: {type: jsonl, key: id}
steps:
  - id: parse
    kind: llm
    instructions: "Read the number."
    prompt: "Item {{ input.n }}"
    output: {type: object, properties: {n: {type: integer}}, required: [n]}
  - id: double
    kind: llm
    instructions: "Double the number."
    prompt: "Number {{ steps.parse.n }}"
    output: {type: object, properties: {value: {type: integer}}, required: [value]}
  - id: say
    kind: llm
    instructions: "Say the number."
    prompt: "Say {{ steps.double.value }}"
result: {n: steps.parse.n, double: steps.double.value, said: steps.say}
"""


def answer(body: dict[str, Any]) -> str:
    """The right answer to each step, from the request's first user message (a repair
    request carries the original one first)."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    word, number = prompt.split()
    if word == "Item":
        return json.dumps({"n": int(number)})
    if word == "Number":
        return json.dumps({"value": 2 * int(number)})
    return f"said {number}"


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    folder = tmp_path / "numbers"
    folder.mkdir()
    (folder / "workflow.yaml").write_text(WORKFLOW)
    return folder


def items(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"id": f"i{k:03d}", "n": k}) + "\n" for k in range(n)))
    return path


def run_cli(workflow: Path, inputs: Path, url: str, out: Path, *flags: str) -> int:
    return main(
        ["run", str(workflow), str(inputs), "--base-url", url, "--model", "fake-model",
         "--out", str(out), "--json", *flags]
    )  # fmt: skip


def check_answers(result: dict[str, Any], n: int) -> None:
    outputs = {item["key"]: item["output"] for item in result["items"] if item["ok"]}
    assert len(outputs) == n, [i["error"] for i in result["items"] if not i["ok"]][:3]
    for k in range(n):
        assert outputs[f"i{k:03d}"] == {"n": k, "double": 2 * k, "said": f"said {2 * k}"}


@pytest.mark.parametrize("durable", [False, True], ids=["no-durable", "durable"])
def test_every_item_completes_through_20_percent_of_faulted_requests(
    durable: bool, workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 100
    with serve_faults(answer, rate=0.2, seed=14) as log:
        code = run_cli(workflow, items(tmp_path, n), log.url, tmp_path / "out",
                       "--concurrency", "8", *([] if durable else ["--no-durable"]))  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok"
    check_answers(result, n)
    # Every fault kind happened, and still no call was made again once it had succeeded.
    assert len(log.faults) == 8 and sum(log.faults.values()) >= 0.15 * log.requests
    assert log.repeated() == {}
    assert log.successes == 3 * n  # one good answer per call (an invalid one is a fault)
    rows = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(r)["ok"] for r in rows] == [True] * n


@pytest.mark.parametrize("durable", [False, True], ids=["no-durable", "durable"])
def test_a_closed_port_stops_the_run_fast_naming_the_url(
    durable: bool, workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port()
    code = run_cli(workflow, items(tmp_path, 20), url, tmp_path / "out",
                   *([] if durable else ["--no-durable"]))  # fmt: skip
    assert code not in (0, 2)
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert f"provider {url} is down: cannot connect" in shown
    assert "Fix: start the server, or correct --base-url / OPENAI_BASE_URL" in shown
    store = RunStore(tmp_path / "home" / "llmflow.db")
    (run,) = store.runs()
    assert run["status"] == "stopped"  # the whole run, not item by item
    attempts = sum(c["attempts"] for c in store.rows("model_calls", run["id"]))
    store.close()
    assert attempts <= 4 + 3  # a few requests, not 20 items x 5 attempts


def test_a_server_answering_500_to_everything_stops_the_run_early(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_faults(answer, status=500) as log:
        code = run_cli(workflow, items(tmp_path, 100), log.url, tmp_path / "out", "--no-durable")
    assert code == 1
    shown = "".join(capsys.readouterr())
    assert f"provider {log.url} is down: 16 of its last 16 requests failed" in shown
    assert log.requests <= 16 + 4  # was 5 attempts for every call of every item


def test_invalid_outputs_are_not_cached_and_a_rerun_on_a_healthy_server_recovers(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def sloppy(body: dict[str, Any]) -> str:
        said = answer(body)
        return said.replace("value", "valeur") if '"value": 1' in said else said  # 10..19 x2

    inputs = items(tmp_path, 10)
    with serve_faults(sloppy, rate=0.0) as log:
        code = run_cli(workflow, inputs, log.url, tmp_path / "out1", "--no-durable")
    assert code == 3  # items 5..9 double to 10..18: their answer never fits, after 2 repairs
    failed = [i["key"] for i in json.loads(capsys.readouterr().out)["items"] if not i["ok"]]
    assert failed == ["i005", "i006", "i007", "i008", "i009"]
    with serve_faults(answer, rate=0.0) as healthy:
        code = run_cli(workflow, inputs, healthy.url, tmp_path / "out2", "--no-durable")
    assert code == 0
    check_answers(json.loads(capsys.readouterr().out), 10)
    # Only the calls whose answer was invalid are made again: the valid ones come from the
    # cache (10 parse calls, 5 double calls and 5 say calls).
    assert healthy.requests == 5 + 5


CANARY_KEY = "sk-canary-4f1d9e27b6c84a0d"
CANARY_PASSWORD = "pw-canary-73a19c"


@pytest.mark.parametrize("durable", [False, True], ids=["no-durable", "durable"])
def test_no_key_is_stored_or_printed_when_the_provider_echoes_it(
    durable: bool,
    workflow: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    basic = base64.b64encode(f"user:{CANARY_PASSWORD}".encode()).decode()
    with serve_faults(answer, status=401) as log:
        # The key as a bearer token, then credentials in the base URL (sent as basic auth):
        # the server says each back in its 401 body.
        for n, url in enumerate(
            [log.url, log.url.replace("http://", f"http://user:{CANARY_PASSWORD}@")]
        ):
            code = main(
                ["run", str(workflow), str(items(tmp_path, 6)), "--base-url", url, "--model",
                 "fake-model", "--out", str(tmp_path / f"out{n}"),
                 *([] if durable else ["--no-durable"])]
            )  # fmt: skip
            assert code not in (0, 2)
    auth = {b["_auth"] for b in log.bodies}
    assert auth == {f"Bearer {CANARY_KEY}", f"Basic {basic}"}  # what was echoed
    store = RunStore(tmp_path / "home" / "llmflow.db")
    run_ids = [r["id"] for r in store.runs()]
    store.close()
    assert main(["runs", "list"]) == 0
    for run_id in run_ids:
        assert main(["runs", "show", run_id]) == 0
    captured = capsys.readouterr()
    canaries = [CANARY_KEY, CANARY_PASSWORD, basic]
    shown = captured.out + captured.err
    assert "HTTP 401 (the key was refused)" in shown
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "items.jsonl" not in p.name)
    # A durable run's own state (its spec, its checkpoints) is in the run store, read below.
    with sqlite3.connect(tmp_path / "home" / "llmflow.db") as db:
        (specs,) = db.execute("SELECT count(*) FROM call_checkpoints WHERE key = 'spec'").fetchone()
    assert (specs > 0) == durable
    for path in written:
        data = path.read_bytes()
        for canary in canaries:
            assert canary.encode() not in data, f"{canary} in {path}"
    for canary in canaries:
        assert canary not in shown
    assert re.search(r"127\.0\.0\.1:\d+/v1", shown)  # the endpoint is named, without its user
