"""Durable runs, for real: the CLI is killed with SIGKILL at step boundaries and mid-step,
then `llmflow resume` finishes the batch on SQLite and on PostgreSQL. Model calls go to a
real HTTP server in the test process, which counts them across the processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import pg
from .fake_openai_server import serve

ROOT = Path(__file__).resolve().parents[1]
LLMFLOW = [str(Path(sys.executable).parent / "llmflow")]


class Model:
    """The fake model's side: every request and reply, and a kill switch for the CLI."""

    def __init__(self) -> None:
        self.requested: list[tuple[str, str]] = []
        self.replied: list[tuple[str, str]] = []
        self.kill_at: int | None = None
        """Kill the CLI when this request (1-based) arrives, before answering it."""
        self.kill_signal = signal.SIGKILL
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None
        """Answer only once this is set (a run kept busy)."""

    def answer(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        item = user.split("|")[0]
        step = "a" if "Step a." in system else "b"
        if self.hold is not None:
            self.hold.wait(60)
        with self.lock:
            self.requested.append((item, step))
            if self.kill_at == len(self.requested) and self.proc is not None:
                os.kill(self.proc.pid, self.kill_signal)
                time.sleep(0.5)  # the reply goes nowhere: the client is dead (or stopping)
            else:
                self.replied.append((item, step))
        return f"{item}|{step}"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """A real PostgreSQL server for the session (initdb in a temporary folder)."""
    if not pg.available():
        pytest.skip(pg.MISSING)
    with pg.cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_cluster: str) -> str:
    return pg.new_database(postgres_cluster)


@pytest.fixture
def model() -> Iterator[tuple[str, Model]]:
    m = Model()
    with serve(m.answer) as (url, _):
        yield url, m


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"i{i}|please refund")
    return folder


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMFLOW_TEST_EFFECTS": str(tmp_path / "ledger")}
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str], model: Model | None = None) -> tuple[int, str]:
    proc = subprocess.Popen(
        [*LLMFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if model is not None:
        model.proc = proc
    out, errs = proc.communicate(timeout=120)
    return proc.returncode, out + errs


def _run_args(url: str, inputs: Path, tmp_path: Path) -> list[str]:
    return ["run", "tests.durable_flows:build", str(inputs), "--base-url", url, "--model", "m",
            "--out", str(tmp_path / "out"), "--concurrency", "1", "--json"]  # fmt: skip


def _ledger(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "ledger"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_finished(output: str, tmp_path: Path, model: Model, in_flight: int) -> None:
    result = json.loads(output[: output.rindex("}") + 1])
    assert result["status"] == "ok", output
    assert [i["output"] for i in result["items"]] == [f"refunded i{n}" for n in range(3)]
    # Every model call answered before the kill is made exactly once in all; the one in
    # flight (whose answer never arrived) is made again.
    wanted = {(f"i{n}", s) for n in range(3) for s in "ab"}
    assert sorted(model.replied) == sorted(wanted)
    assert len(model.requested) == 6 + in_flight
    # Every refund exactly once, whatever the attempts.
    ledger = _ledger(tmp_path)
    assert sorted(r["item"] for r in ledger) == ["i0", "i1", "i2"]
    assert len({r["_idempotency_key"] for r in ledger}) == 3


KILLS = [
    pytest.param({"kill_at": 1}, 1, id="mid-step, first call"),
    pytest.param({"kill_at": 4}, 1, id="mid-step, second item's second call"),
    pytest.param({"LLMFLOW_TEST_KILL": "boundary:i1"}, 0, id="between two steps"),
    pytest.param(
        {"LLMFLOW_TEST_KILL": "effect:i0"}, 0, id="after the effect, before its checkpoint"
    ),
    pytest.param({"LLMFLOW_TEST_KILL": "effect:i2"}, 0, id="last effect of the batch"),
]


def _kill_and_resume(
    kill: dict[str, Any],
    in_flight: int,
    url: str,
    model: Model,
    inputs: Path,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    if "kill_at" in kill:
        model.kill_at = kill["kill_at"]
    else:
        env = {**env, **kill}
    code, output = _cli(_run_args(url, inputs, tmp_path), env, model)
    assert code == -signal.SIGKILL, output
    # Killed: the store says so (not `running` forever), with the items done so far.
    killed = _runs_list(env)[0]
    assert killed["status"] == "interrupted", killed
    model.kill_at = None
    code, output = _cli(["resume", "--json"], env)
    assert code == 0, output
    _check_finished(output, tmp_path, model, in_flight)
    _check_recorded(env, model, killed["id"])


def test_sigterm_ends_a_run_recorded_and_says_how_to_resume(
    model: tuple[str, Model], inputs: Path, tmp_path: Path
) -> None:
    url, m = model
    m.kill_at, m.kill_signal = 3, signal.SIGTERM
    env = _env(tmp_path)
    code, output = _cli(_run_args(url, inputs, tmp_path), env, m)
    assert code == 128 + signal.SIGTERM, output
    run = _runs_list(env)[0]
    assert run["status"] == "interrupted", run
    assert f"llmflow resume {run['id']}" in output
    m.kill_at = None
    code, output = _cli(["resume", run["id"], "--json"], env)
    assert code == 0, output
    _check_finished(output, tmp_path, m, in_flight=1)
    _check_recorded(env, m, run["id"])
    # Resumed once more, the finished run says so and calls nothing again.
    calls = len(m.replied)
    code, output = _cli(["resume", run["id"][:10]], env)
    assert code == 0, output
    assert f"run {run['id']} had finished (ok): nothing runs again" in output
    assert len(m.replied) == calls


def test_resume_refuses_a_run_that_its_process_still_runs(
    model: tuple[str, Model], inputs: Path, tmp_path: Path
) -> None:
    url, m = model
    m.hold = threading.Event()
    env = _env(tmp_path)
    run = subprocess.Popen([*LLMFLOW, *_run_args(url, inputs, tmp_path)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        running = _wait_for(lambda: _runs_list(env), "recorded run")
        code, output = _cli(["resume", running[0]["id"]], env)
        assert code != 0, output
        assert "still running in another process" in output and str(run.pid) in output
    finally:
        m.hold.set()
        out, errs = run.communicate(timeout=120)
    assert run.returncode == 0, out + errs  # the run itself went on, untouched
    assert sorted(m.replied) == sorted((f"i{n}", s) for n in range(3) for s in "ab")


def _item_workflows(tmp_path: Path) -> int:
    """How many item workflows the durable (DBOS) database of the test's home holds."""
    with sqlite3.connect(tmp_path / "home" / "durable.sqlite") as db:
        (n,) = db.execute(
            "SELECT count(*) FROM workflow_status WHERE name = 'llmflow.item'"
        ).fetchone()
    return int(n)


def _runs_list(env: dict[str, str]) -> list[dict[str, Any]]:
    code, output = _cli(["runs", "list", "--json"], env)
    assert code == 0, output
    runs: list[dict[str, Any]] = json.loads(output)
    return runs


def _check_recorded(env: dict[str, str], model: Model, run_id: str) -> None:
    """The run store after a kill and a resume: the true status and counts, each item once,
    and a record of every call the provider saw (the one cut off as interrupted)."""
    (run,) = [r for r in _runs_list(env) if r["id"] == run_id]
    assert (run["status"], run["items_ok"], run["items_failed"]) == ("ok", 3, 0), run
    code, output = _cli(["runs", "show", run_id, "--json"], env)
    assert code == 0, output
    shown = json.loads(output)
    assert sorted(i["key"] for i in shown["items"]) == ["0.txt", "1.txt", "2.txt"]
    assert {i["status"] for i in shown["items"]} == {"ok"}
    calls = shown["model_calls"]
    assert len(calls) == len(model.requested), calls
    statuses = sorted(c["status"] for c in calls)
    cut_off = len(model.requested) - len(model.replied)
    assert statuses == ["interrupted"] * cut_off + ["ok"] * len(model.replied)


@pytest.mark.parametrize(("kill", "in_flight"), KILLS)
def test_a_killed_run_resumes_on_sqlite_without_repeating_calls_or_effects(
    kill: dict[str, Any], in_flight: int, model: tuple[str, Model], inputs: Path, tmp_path: Path
) -> None:
    url, m = model
    _kill_and_resume(kill, in_flight, url, m, inputs, tmp_path, _env(tmp_path))
    # No step of this workflow waits for a person: its items ran without DBOS workflows,
    # checkpointed in the run store alone (the default path's cost, issue 15).
    assert _item_workflows(tmp_path) == 0
    # The effect that was cut off ran twice with the same key, and took effect once.
    attempts = (tmp_path / "ledger.attempts").read_text().splitlines()
    assert len(attempts) == 3 + (kill.get("LLMFLOW_TEST_KILL", "").startswith("effect"))
    assert len({a.split()[1] for a in attempts}) == 3


@pytest.mark.parametrize(("kill", "in_flight"), [KILLS[1], KILLS[2], KILLS[3]])
def test_a_killed_run_resumes_on_postgres(
    kill: dict[str, Any],
    in_flight: int,
    model: tuple[str, Model],
    inputs: Path,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    url, m = model
    env = _env(tmp_path, LLMFLOW_DATABASE_URL=postgres_url)
    # On PostgreSQL the items go to the shared queue: a worker runs them, and is killed.
    _kill_and_resume_with_worker(kill, in_flight, url, m, inputs, tmp_path, env)


def _kill_and_resume_with_worker(
    kill: dict[str, Any],
    in_flight: int,
    url: str,
    model: Model,
    inputs: Path,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    env = {**env, **{k: v for k, v in kill.items() if k != "kill_at"}}
    worker = subprocess.Popen([*LLMFLOW, "worker", "--concurrency", "1", "--heartbeat-s", "0.5",
                               "--dead-after-s", "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    model.proc = worker  # type: ignore[assignment]
    model.kill_at = kill.get("kill_at")
    runner = subprocess.Popen(
        [*LLMFLOW, *_run_args(url, inputs, tmp_path)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert worker.wait(timeout=120) == -signal.SIGKILL, (
        worker.stdout.read() if worker.stdout else ""
    )
    model.kill_at = None
    # A second worker notices the first stopped heart-beating and takes its runs over.
    second = subprocess.Popen([*LLMFLOW, "worker", "--concurrency", "1", "--heartbeat-s", "0.5",
                               "--dead-after-s", "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        out, errs = runner.communicate(timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert runner.returncode == 0, out + errs
    _check_finished(out, tmp_path, model, in_flight)


def test_changed_code_cannot_resume_a_run_and_says_why(
    model: tuple[str, Model], inputs: Path, tmp_path: Path
) -> None:
    url, m = model
    env = _env(tmp_path, LLMFLOW_TEST_KILL="boundary:i1")
    code, output = _cli(_run_args(url, inputs, tmp_path), env, m)
    assert code == -signal.SIGKILL, output
    code, output = _cli(["resume"], {**env, "LLMFLOW_TEST_VARIANT": "2"})
    assert code == 2
    assert "was started with other code" in output and "start a new run" in output
    code, output = _cli(["resume", "--json"], env)  # the original code still resumes it
    assert code == 0, output


def test_an_approval_survives_a_restart_and_is_answered_from_another_process(
    model: tuple[str, Model], tmp_path: Path
) -> None:
    url, m = model
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "0.txt").write_text("i0|refund")
    env = _env(tmp_path, LLMFLOW_TEST_APPROVAL="86400")
    run = subprocess.Popen([*LLMFLOW, *_run_args(url, folder, tmp_path)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    waiting: list[dict[str, Any]] = []
    deadline = time.time() + 60
    while not waiting and time.time() < deadline:
        time.sleep(0.5)
        code, output = _cli(["approvals", "list", "--json"], env)
        assert code == 0, output
        waiting = json.loads(output[output.index("[") :])
    assert len(waiting) == 1 and waiting[0]["prompt"] == "Refund i0|b?"
    assert not _ledger(tmp_path)  # nothing refunded before the approval
    run.kill()  # SIGKILL while it waits
    run.wait()
    code, output = _cli(["approve", waiting[0]["run"], "--comment", "ok by me"], env)
    assert code == 0, output
    # Still listed until the run takes the answer; a second decision does not override it.
    code, output = _cli(["reject", waiting[0]["run"], "--comment", "changed my mind"], env)
    assert code == 0, output
    code, output = _cli(["resume", "--json"], env)
    assert code == 0, output
    assert json.loads(output[: output.rindex("}") + 1])["items"][0]["output"] == "refunded i0"
    assert [r["item"] for r in _ledger(tmp_path)] == ["i0"]
    assert sorted(m.replied) == [("i0", "a"), ("i0", "b")]  # not asked again after the restart
    assert _item_workflows(tmp_path) == 1  # an approval waits in the item's DBOS workflow
    # The second decision was dropped, not left queued for whatever asks at that path next.
    from llmflow.durable.engine import DurableSettings

    with sqlite3.connect(DurableSettings().sqlite_path) as db:
        queued = db.execute("SELECT count(*) FROM notifications WHERE consumed = 0").fetchone()
    assert queued == (0,)


def _worker(env: dict[str, str], *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*LLMFLOW, "worker", "--concurrency", "1", "--heartbeat-s", "0.5",
                             "--dead-after-s", "2", *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _wait_for(check: Any, what: str, timeout_s: float = 60) -> Any:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout_s:g}s")


def _sql(url: str, query: str) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as db:
            cursor = db.execute(query)
            return cursor.fetchall() if cursor.description else []
    except psycopg.errors.UndefinedTable:  # not made yet
        return []


def test_a_worker_keeps_its_concurrency_when_the_run_made_the_queue(
    model: tuple[str, Model], inputs: Path, tmp_path: Path, postgres_url: str
) -> None:
    """`llmflow run` enqueues before any worker exists: the worker that starts then runs one
    item at a time as asked (it once read the queue as the run had made it, without limits,
    and took every item at once)."""
    url, m = model
    env = _env(tmp_path, LLMFLOW_DATABASE_URL=postgres_url)
    runner = subprocess.Popen(
        [*LLMFLOW, *_run_args(url, inputs, tmp_path)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    enqueued = "select 1 from dbos.workflow_status"
    _wait_for(lambda: len(_sql(postgres_url, enqueued)) == 3, "items enqueued")
    worker = _worker(env)
    try:
        out, errs = runner.communicate(timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert runner.returncode == 0, out + errs
    # One item at a time: each item's two calls come one after the other.
    assert len(m.requested) == 6
    assert [i for i, _ in m.requested[0::2]] == [i for i, _ in m.requested[1::2]], m.requested


def test_a_worker_declared_dead_while_alive_stops(tmp_path: Path, postgres_url: str) -> None:
    """Fencing: a worker too busy to beat in time, whose runs another worker took over,
    stops instead of running them a second time."""
    env = _env(tmp_path, LLMFLOW_DATABASE_URL=postgres_url)
    worker = _worker(env)
    try:
        rows = _wait_for(lambda: _sql(postgres_url, "select executor_id from llmflow_workers"),
                         "heartbeat")  # fmt: skip
        # What a second worker's claim writes when this one looked silent too long.
        _sql(postgres_url, f"update llmflow_workers set recovered_by = 'worker:other' "
                           f"where executor_id = '{rows[0][0]}'")  # fmt: skip
        code = worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = worker.stdout.read() if worker.stdout else ""
    assert code == 1, output
    assert "worker:other took its runs over: stopping" in output


def test_a_worker_refuses_a_dead_after_shorter_than_three_heartbeats(
    tmp_path: Path, postgres_url: str
) -> None:
    env = _env(tmp_path, LLMFLOW_DATABASE_URL=postgres_url)
    code, output = _cli(["worker", "--heartbeat-s", "5", "--dead-after-s", "10"], env)
    assert code == 2, output
    assert "--dead-after-s 10 is too short for --heartbeat-s 5" in output
    assert "--dead-after-s 15" in output
