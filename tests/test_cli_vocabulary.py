"""One vocabulary in the CLI: money is `cost_usd` in every `--json` output, help reads
naturally and lists the commands in a sensible order, `runs list` stays readable in a pipe,
no pydantic prefix reaches the user, and a bad budget, endpoint or output folder is refused
(exit 2) before any model call."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.cli import main
from llmflow.errors import pydantic_message
from llmflow.models.gateway import Gateway
from llmflow.testing import ScriptedModel

NAME = "a-workflow-whose-name-is-long-enough-to-fold-at-eighty-columns"

WORKFLOW = f"""\
name: {NAME}
input: {{type: jsonl}}
steps:
  - id: say
    kind: llm
    instructions: "Answer in one word."
    prompt: "{{{{ input.text }}}}"
result: {{said: steps.say}}
"""


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    """The scripted model stands in for the embedded one (`local`, the default model)."""
    scripted = ScriptedModel(lambda request: "fine")
    monkeypatch.setattr(Gateway, "_make_local", lambda self: scripted)
    return scripted


@pytest.fixture
def flow(tmp_path: Path) -> tuple[str, str]:
    """A one-step workflow file and two inputs."""
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "workflow.yaml").write_text(WORKFLOW)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "hello"}\n{"text": "again"}\n')
    return str(tmp_path / "wf"), str(inputs)


def _json(capsys: pytest.CaptureFixture[str], args: list[str]) -> Any:
    assert main(args) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_money_is_cost_usd_in_every_json_output(
    model: ScriptedModel, flow: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ran = _json(capsys, ["run", *flow, "--no-durable", "--json"])
    assert len(model.requests) == 2
    run_id = ran["run_id"]
    listed = _json(capsys, ["runs", "list", "--json"])
    shown = _json(capsys, ["runs", "show", run_id, "--json"])
    by_step = _json(capsys, ["cost", "--by", "step", "--json"])
    forecast = _json(capsys, ["estimate", flow[0], "--run", run_id, "--json"])

    assert ran["usage"]["cost_usd"] == "0" and ran["usage"]["calls"] == 2
    assert ran["usage"]["compare"]["cost_usd"] is not None
    assert listed[0]["cost_usd"] == "0"
    assert shown["usage"]["cost_usd"] == "0"
    assert [c["cost_usd"] for c in shown["model_calls"]] == ["0", "0"]
    assert by_step["groups"][f"{NAME}/say"]["cost_usd"] == "0"
    assert by_step["total"]["cost_usd"] == "0"
    assert {"cost_usd", "cost_usd_low", "cost_usd_high"} <= set(forecast["models"][0])
    for output in (ran, listed, shown, by_step, forecast):
        money = {k for k in _keys(output) if "usd" in k or k == "cost"}
        assert money and all(k.startswith("cost_usd") for k in money), money


def test_help_reads_naturally_in_a_sensible_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    names = re.findall(r"^│ (\w+) ", text, flags=re.MULTILINE)
    commands = [n for n in names if not n.startswith("-")]
    expected = ["run", "resume", "runs", "cost", "estimate", "validate", "graph", "templates",
                "new", "chat", "eval", "calibrate", "distill", "correct", "approvals",
                "approve", "reject", "worker"]  # fmt: skip
    assert [c for c in commands if c in expected] == expected
    assert "─ Run ─" in text and "─ Classifiers ─" in text  # grouped in panels
    assert "--install-completion" in text
    for args in (["--help"], ["run", "--help"], ["runs", "list", "--help"]):
        assert main(args) == 0
        assert "<bool>" not in capsys.readouterr().out


def test_shell_completion_is_enabled(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shell named, not detected: detection (shellingham) fails where no shell started
    # the tests (nohup, some CI runners), and then `bash` is read as a stray argument.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    assert main(["--show-completion", "bash"]) == 0
    assert "complete" in capsys.readouterr().out


def test_runs_list_in_a_pipe_keeps_each_run_on_one_line_with_labelled_counts(
    model: ScriptedModel, flow: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ran = _json(capsys, ["run", *flow, "--no-durable", "--json"])
    assert main(["runs", "list"]) == 0  # stdout is captured: not a terminal
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if ran["run_id"][:12] in line)
    assert NAME in line and "ok 2 · failed 0 of 2" in line
    assert len(line) > 80


def test_no_pydantic_prefix_reaches_the_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(WORKFLOW.replace("id: say", "id: 1say"))
    assert main(["validate", str(bad)]) == 2
    message = capsys.readouterr().err
    assert "a step id is letters" in message and "Value error" not in message

    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000/v1")
    assert main(["runs", "list"]) == 2
    message = capsys.readouterr().err
    assert "OPENAI_BASE_URL" in message and "http://localhost:8000/v1" in message
    assert "Value error" not in message and "Traceback" not in message

    assert pydantic_message({"msg": "Value error, no good"}) == "no good"
    assert pydantic_message({"msg": "Input should be a valid integer"}) == (
        "Input should be a valid integer"
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-cost", "-1"], "Invalid value for '--max-cost'"),
        (["--max-cost-per-item", "-0.01"], "Invalid value for '--max-cost-per-item'"),
        (["--max-cost", "nan"], "Invalid value for '--max-cost'"),
        (["--max-tokens", "0"], "Invalid value for '--max-tokens'"),
        (["--max-requests", "0"], "Invalid value for '--max-requests'"),
        (["--base-url", "localhost:8000/v1"], "http://localhost:8000/v1"),
        (["--base-url", "ftp://example.com"], "not an http:// or https:// URL"),
    ],
)
def test_a_bad_budget_or_endpoint_is_a_usage_error(
    flags: list[str],
    expected: str,
    model: ScriptedModel,
    flow: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", *flow, "--no-durable", *flags]) == 2
    assert expected in capsys.readouterr().err
    assert model.requests == []


def test_an_unwritable_out_is_refused_before_any_model_call(
    model: ScriptedModel, flow: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    folders = [a_file / "out"] + ([Path("/proc/nope")] if sys.platform == "linux" else [])
    for folder in folders:
        for durable in ("--durable", "--no-durable"):
            assert main(["run", *flow, durable, "--out", str(folder)]) == 2
            message = capsys.readouterr().err
            assert f"the folder {folder}" in message and "--out" in message
            assert "Traceback" not in message
    assert model.requests == []
    assert main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # no run was even started


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "email-triage", "--step", "category", "--data", "x.jsonl",
         "--base-url", "localhost:8000/v1"],
        ["calibrate", "email-triage", "category", "--data", "x.jsonl",
         "--base-url", "localhost:8000/v1"],
        ["chat", "agent.md", "--base-url", "localhost:8000/v1"],
    ],
)  # fmt: skip
def test_other_commands_refuse_an_endpoint_without_a_scheme(
    args: list[str], model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert "http://localhost:8000/v1" in capsys.readouterr().err
    assert model.requests == []


def test_eval_refuses_an_unwritable_plot_before_any_model_call(
    model: ScriptedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    data = SAMPLE_INBOX / "eval-category.jsonl"
    args = ["eval", "email-triage", "--step", "category", "--data", str(data),
            "--plot", str(a_file / "plot.png")]  # fmt: skip
    assert main(args) == 2
    assert f"the folder {a_file}" in capsys.readouterr().err
    assert model.requests == []
