"""How fast `llmflow runs show` answers on a run of 5,000 items, paged and streamed.

The store holds one run of ITEMS items (3 llm steps and 3 model calls each, prompts of ~1.5 KB,
every 50th item failed), written through `RunStore` as the recorder writes them. Each command
runs in this process (`llmflow.cli.main`, stdout to a file), median of REPS after a warm-up;
`runs show` also as a subprocess, what a user waits for (Python's start included), best of
BEST_OF (the machine is shared: its noise only adds time).

Baseline, in the same process on the same store, timed once (it takes tens of seconds): the
code before paging (`runs show` of commit
a619dc6, loaded from git): every item, step and call of the run read into lists, the whole call
table rendered, and `--json` built as one document and pretty-printed by rich. Ratio: new/old.

Run: .venv/bin/python bench/runs_show.py [ITEMS]  (rewrites bench/RESULTS-runs-show.md)
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

from llmflow.store.base import CallRecord
from llmflow.store.sqlite import RunStore

ITEMS = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
REPS = 3
BEST_OF = 5
BEFORE = "a619dc6"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("RESULTS-runs-show.md")


def fill(path: Path) -> None:
    store = RunStore(path)
    store.start_run("big", workflow="numbers", model="openai:gpt-4.1-mini", source="in/",
                    out_dir=None, items_total=ITEMS)  # fmt: skip
    t0 = time.time() - 3600
    text = "Please read this message and answer it. " * 36  # ~1.5 KB
    for i in range(ITEMS):
        item_id, at = f"big.{i}", t0 + i * 0.01
        store.start_item(item_id, run_id="big", key=f"{i:05d}.txt")
        for n, step in enumerate(("parse", "double", "say")):
            store.add_step(run_id="big", item_id=item_id, path=f"numbers/{step}", kind="llm",
                           input={"text": text, "n": i}, output={"value": i * n}, error=None,
                           started_at=at + n * 0.001, latency_s=0.05)  # fmt: skip
            store.add_call(CallRecord(
                id=f"{item_id}.{n}", model="openai:gpt-4.1-mini", provider="openai",
                prompt=f'{{"messages": [{{"role": "user", "content": "{text} {i}"}}]}}',
                response=f'{{"value": {i * n}}}', finish_reason="stop", input_tokens=380,
                output_tokens=12, latency_ms=50.0, attempts=1, status="ok", error=None,
                started_at=at + n * 0.001, cost="0.0001712", cached=False,
            ), run_id="big", item_id=item_id, step_path=f"numbers/{step}")  # fmt: skip
        failed = i % 50 == 0
        store.end_item(item_id, status="failed" if failed else "ok", output={"value": i},
                       error=ValueError("bad") if failed else None)  # fmt: skip
        if i % 1000 == 999:
            store.flush()
    store.end_run("big", status="partial", items_ok=ITEMS - ITEMS // 50,
                  items_failed=ITEMS // 50, error=None)  # fmt: skip
    store.close()


def old_show() -> Callable[..., int]:
    """`show_run` as it was before paging, loaded from git into this process."""
    source = subprocess.run(["git", "show", f"{BEFORE}:src/llmflow/cli/runs.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType("llmflow.cli.runs_before")
    module.__package__ = "llmflow.cli"
    exec(compile(source, "runs_before.py", "exec"), module.__dict__)
    show: Callable[..., int] = module.show_run
    return show


def timed(fn: Callable[[], object], sink: Path, reps: int = REPS) -> tuple[float, int]:
    """Median seconds of `fn` with stdout to `sink` (after a warm-up, when `reps` > 1), and
    the bytes it wrote."""
    times = []
    for rep in range(reps + (reps > 1)):
        with sink.open("w") as f, contextlib.redirect_stdout(f):
            t = time.perf_counter()
            fn()
            if rep or reps == 1:
                times.append(time.perf_counter() - t)
    return statistics.median(times), sink.stat().st_size


def main() -> None:
    from llmflow.cli import main as cli

    load = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="llmflow-runs-show-bench-"))
    os.environ["LLMFLOW_HOME"] = str(folder)
    os.environ["COLUMNS"] = "120"
    t = time.perf_counter()
    fill(folder / "llmflow.db")
    fill_s = time.perf_counter() - t
    size_mb = (folder / "llmflow.db").stat().st_size / 1e6
    sink = folder / "out.txt"
    before = old_show()
    old_table = lambda: before(run_id="big", as_json=False, item=None, full=False)  # noqa: E731
    old_json = lambda: before(run_id="big", as_json=True, item=None, full=False)  # noqa: E731
    base = {"table": timed(old_table, sink, reps=1), "json": timed(old_json, sink, reps=1)}
    cases = [
        ("`runs show big` (first 50 items, totals)", ["big"], "table"),
        (f"`runs show big --offset {ITEMS - 50}`", ["big", "--offset", str(ITEMS - 50)], "table"),
        ("`runs show big --status failed`", ["big", "--status", "failed"], "table"),
        ("`runs show big --json` (every item, step and call)", ["big", "--json"], "json"),
        ("`runs show big --json --limit 50`", ["big", "--json", "--limit", "50"], "json"),
    ]
    rows = []
    for name, args, kind in cases:
        s, size = timed(lambda args=args: cli(["runs", "show", *args]), sink)
        b, old_size = base[kind]
        rows.append((name, s, size, b, old_size))
        print(f"{name:55s} {s:7.3f} s {size / 1e6:6.1f} MB   before {b:7.3f} s "
              f"{old_size / 1e6:6.1f} MB  ratio {s / b:.3f}")  # fmt: skip
    walls, startups = [], []
    for _ in range(BEST_OF):  # interleaved, best of: the machine's noise only adds time
        t = time.perf_counter()
        subprocess.run([str(ROOT / ".venv/bin/llmflow"), "runs", "show", "big"], check=True,
                       capture_output=True, env=os.environ)  # fmt: skip
        walls.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([str(ROOT / ".venv/bin/llmflow"), "--help"], check=True,
                       capture_output=True)  # fmt: skip
        startups.append(time.perf_counter() - t)
    wall, startup = min(walls), min(startups)
    print(f"subprocess runs show: {wall:.3f} s (llmflow --help: {startup:.3f} s)")

    lines = [
        f"# `llmflow runs show` on a run of {ITEMS:,} items",
        "",
        f"Measured {datetime.date.today()} by `bench/runs_show.py` on Python "
        f"{platform.python_version()} ({platform.machine()}), 2 shared cores. The store holds one "
        f"run of {ITEMS:,} items ({3 * ITEMS:,} steps, {3 * ITEMS:,} model calls, prompts of "
        f"~1.5 KB, every 50th item failed): {size_mb:,.0f} MB, filled in {fill_s:.0f} s. Each "
        f"command runs in this process (`llmflow.cli.main`, stdout to a file), median of {REPS} "
        f"after a warm-up; load average {load:.1f} at the start. Baseline, in the same process "
        "on the same store, timed once (it takes tens of seconds): `runs show` before "
        f"paging (commit {BEFORE}, loaded from git): every row of the run read into lists, the "
        "whole call table rendered, `--json` built whole and pretty-printed by rich.",
        "",
        "| command | now s | now MB out | before s | before MB out | ratio | under 1 s |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, s, size, b, old_size in rows:
        lines.append(f"| {name} | {s:.3f} | {size / 1e6:.2f} | {b:.3f} | {old_size / 1e6:.1f} "
                     f"| {s / b:.3f} | {'yes' if s < 1 else 'no'} |")  # fmt: skip
    lines += [
        "",
        f"As a user runs it, `llmflow runs show big` in a subprocess: **{wall:.2f} s** "
        f"(best of {BEST_OF}, median {statistics.median(walls):.2f} s; `llmflow --help` alone: "
        f"best {startup:.2f} s, median {statistics.median(startups):.2f} s). Target "
        f"(issue 14: `runs show` on a 5,000-item run in under 1 s, `--json` streamed): "
        f"{'met' if wall < 1 and rows[0][1] < 1 else 'not met'} for the paged view; the whole "
        f"run as JSON ({rows[3][2] / 1e6:.0f} MB) streams in {rows[3][1]:.1f} s, against "
        f"{rows[3][3]:.0f} s before.",
        "",
        "`runs show` prints the run's totals (calls, tokens, cost summed over all its calls; "
        "items counted by status; the failed items, first 20) and one page of items, 50 by "
        "default (`--limit`, `--offset`, `--status`), each with its calls and tool calls read "
        "by item (`model_calls_item`, `steps_item`). `--json` is the same document as before, "
        "streamed: written row by row as read (one row a line), through the "
        "(run_id, started_at) indexes of migration m009, without a sort; with `--limit` it "
        "holds that page of items and their steps and calls.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
