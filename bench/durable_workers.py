"""Runs per second with 1, 2 and 3 `llmflow worker` processes on one PostgreSQL queue.

A throwaway PostgreSQL 15 cluster (tests/pg.py) and a fake model server answering after
20 ms (tests/fake_openai_server.py); 120 two-call runs (`tests.durable_flows`) per setting,
submitted by `llmflow run`; each worker runs 4 at once. The baseline is 1 worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import pg  # noqa: E402
from tests.fake_openai_server import serve  # noqa: E402

LLMFLOW = str(Path(sys.executable).parent / "llmflow")
RUNS = 120


def answer(body: dict[str, Any]) -> str:
    time.sleep(0.02)
    return body["messages"][-1]["content"].split("|")[0] + "|x"


def one(base: str, workers: int, tmp: Path, url: str) -> float:
    folder = tmp / f"in{workers}"
    folder.mkdir()
    for i in range(RUNS):
        (folder / f"{i:03d}.txt").write_text(f"i{i}|refund")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMFLOW_HOME": str(tmp / f"home{workers}"),
           "LLMFLOW_DATABASE_URL": pg.new_database(base),
           "LLMFLOW_TEST_EFFECTS": str(tmp / f"ledger{workers}")}  # fmt: skip
    procs = [subprocess.Popen([LLMFLOW, "worker", "--concurrency", "4"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]  # fmt: skip
    try:
        time.sleep(4)  # let the workers start
        t0 = time.perf_counter()
        subprocess.run([LLMFLOW, "run", "tests.durable_flows:build", str(folder), "--base-url",
                        url, "--model", "m", "--out", str(tmp / f"out{workers}"), "--json"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()


def main() -> None:
    with pg.cluster() as base, serve(answer) as (url, _), tempfile.TemporaryDirectory() as d:
        times = {n: one(base, n, Path(d), url) for n in (1, 2, 3)}
    print(f"{RUNS} runs of 2 model calls (20 ms each), 4 per worker, PostgreSQL 15, 2 cores")
    for n, t in times.items():
        print(f"{n} worker(s): {t:.1f} s, {RUNS / t:.1f} runs/s, {times[1] / t:.2f}x of 1 worker")


if __name__ == "__main__":
    main()
