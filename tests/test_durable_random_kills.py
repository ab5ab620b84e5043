"""kill -9 at random moments across a 1,000-item durable run, then resume until it finishes:
every refund exactly once, no call answered before a crash made again (beyond those in
flight at each kill), and the run store's record of calls matches what the provider saw."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .fake_openai_server import serve

ROOT = Path(__file__).resolve().parents[1]
LLMFLOW = [str(Path(sys.executable).parent / "llmflow")]
ITEMS, CONCURRENCY, KILLS = 1000, 8, 3


class Provider:
    """Counts every request and every answer that went out, per (item, step)."""

    def __init__(self) -> None:
        self.requested: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        item, step = user.split("|")[0], "a" if "Step a." in system else "b"
        with self.lock:
            self.requested[(item, step)] += 1
        return f"{item}|{step}"


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*LLMFLOW, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_random_kills_across_a_big_run(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(ITEMS):
        (inputs / f"{i:04d}.txt").write_text(f"i{i}|refund")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "LLMFLOW_TEST_EFFECTS": str(tmp_path / "ledger")}
    provider = Provider()
    rng = random.Random(7)
    with serve(provider.answer) as (url, _):
        args = ["run", "tests.durable_flows:build", str(inputs), "--base-url", url, "--model",
                "m", "--out", str(tmp_path / "out"), "--concurrency", str(CONCURRENCY),
                "--no-cache", "--json"]  # fmt: skip
        proc = _start(args, env)
        kills = 0
        try:
            for _ in range(KILLS):
                # Kill once some calls were answered, at a random moment of the run.
                deadline = time.monotonic() + 120
                target = sum(provider.requested.values()) + rng.randint(40, 400)
                while sum(provider.requested.values()) < target and proc.poll() is None:
                    assert time.monotonic() < deadline, "the run made no progress"
                    time.sleep(0.01)
                if proc.poll() is not None:
                    break
                proc.kill()
                proc.wait()
                kills += 1
                proc = _start(["resume", "--json"], env)
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out + err
        result = json.loads(out[: out.rindex("}") + 1])
    assert result["status"] == "ok"
    assert kills >= 1
    # Every refund exactly once.
    ledger = [json.loads(line) for line in (tmp_path / "ledger").read_text().splitlines()]
    assert Counter(r["item"] for r in ledger) == Counter(f"i{i}" for i in range(ITEMS))
    # Calls: each made once, except those in flight at a kill (at most CONCURRENCY each).
    repeated = sum(n - 1 for n in provider.requested.values())
    assert len(provider.requested) == 2 * ITEMS
    assert repeated <= kills * CONCURRENCY, repeated
    # The store recorded every request the provider saw, those cut off as interrupted.
    code = subprocess.run([*LLMFLOW, "runs", "show", result["run_id"], "--json"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert code.returncode == 0, code.stderr
    shown = json.loads(code.stdout)
    calls = [c for c in shown["model_calls"] if not c["cached"]]
    sent = sum(provider.requested.values())
    assert sent <= len(calls) <= sent + kills * CONCURRENCY
    # A call answered just before a kill, whose checkpoint did not commit, ran (and was paid)
    # twice: both answers are on record.
    assert 2 * ITEMS <= sum(c["status"] == "ok" for c in calls) <= 2 * ITEMS + repeated
    assert sorted({i["key"] for i in shown["items"]}) == sorted(p.name for p in inputs.iterdir())
    assert len(shown["items"]) == ITEMS
