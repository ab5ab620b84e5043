"""Starting fast: `import llmflow`, `import llmflow.cli`, `llmflow --help` and `llmflow runs
list` do not load the heavy dependencies (the Agents SDK, DBOS, scikit-learn, llama.cpp, ...);
each loads where it is used. Each check runs in a fresh interpreter, whose modules are its own.
(bench/startup.py measures the time; these tests check only what is loaded.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llmflow

HEAVY = (
    "agents",
    "dbos",
    "sklearn",
    "llama_cpp",
    "openai",
    "pandas",
    "matplotlib",
    "skops",
    "jsonschema",
    "genai_prices",
    "numpy",
    "opentelemetry",  # the export's SDK loads only when a run exports (LLMFLOW_OTEL)
)
"""Top-level packages no start-up path may import."""

REPORT = "import json, sys; print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"


def fresh(code: str, *args: str) -> tuple[int, str, set[str]]:
    """Run `code` then REPORT in a new interpreter: exit code, output, top-level modules."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    *output, modules = done.stdout.rstrip("\n").split("\n")
    return done.returncode, "\n".join(output), set(json.loads(modules))


@pytest.mark.parametrize("module", ["llmflow", "llmflow.cli"])
def test_importing_loads_no_heavy_dependency(module: str) -> None:
    code, _, modules = fresh(f"import {module}")
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_help_exits_0_without_heavy_dependencies() -> None:
    # The console script's entry point, with `--help` in sys.argv as the shell passes it.
    code, output, modules = fresh("from llmflow.cli import main\nassert main() == 0", "--help")
    assert code == 0
    assert "Usage" in output and "runs" in output
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_console_script_help_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from llmflow.cli import run_cli; run_cli()", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_runs_list_loads_no_heavy_dependency() -> None:
    # On the test's own empty state directory (conftest sets LLMFLOW_HOME).
    code, _, modules = fresh("from llmflow.cli import main\nassert main(['runs', 'list']) == 0")
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_public_names_load_on_first_use() -> None:
    _, _, before = fresh("import llmflow")
    assert "agents" not in before
    _, _, after = fresh("import llmflow\nllmflow.AgentStep")
    assert "agents" in after
    _, _, imported = fresh("from llmflow import AgentStep, Workflow, run")
    assert "agents" in imported
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        llmflow.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_a_durable_run_without_approvals_does_not_load_dbos(tmp_path: Path) -> None:
    """`llmflow run` is durable by default; a workflow no step of which waits for a person
    checkpoints in the run store alone, so the command never imports DBOS (~0.75 s). One that
    may wait for a person loads it, and its items wait in DBOS workflows."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("hello")
    (tmp_path / "flows.py").write_text(FLOWS)
    run = "import os, sys\nos.chdir({!r})\nsys.path.insert(0, '.')\n"
    run += "from llmflow.cli import main\nprint('exit', main({!r}))"
    for flow, loaded in (("flows:plain", False), ("flows:asking", True)):
        args = ["run", flow, "in", "--out", str(tmp_path / flow), "--json"]
        code, output, modules = fresh(run.format(str(tmp_path), args))
        assert code == 0 and "exit 0" in output and "HELLO" in output, output
        assert ("dbos" in modules) is loaded, (flow, output)


FLOWS = """
from pathlib import Path

from llmflow.patterns.chain import chain
from llmflow.runtime.runner import Item, Workflow
from llmflow.steps.base import CodeStep


def load(folder):
    return [Item(p.name, p.read_text()) for p in sorted(Path(folder).iterdir())]


def plain():
    return Workflow(name="plain", step=CodeStep("up", str.upper), load=load)


def asking():
    from llmflow.durable import approve  # approvals wait in DBOS: this loads it

    ok = approve("ok", prompt="Ok?", timeout_s=0.1, default="approve")
    return Workflow(name="asking", step=chain("asking", CodeStep("up", str.upper), ok), load=load)
"""
