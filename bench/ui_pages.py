"""How fast `llmflow ui`'s pages answer on a run store holding a run of 100,000 items.

The store is filled with one run of ITEMS items (each: 3 steps, 2 model calls, one of them a
cache hit on every tenth item) and 40 small runs, written straight through `RunStore` as the
recorder writes them. A real uvicorn server serves the viewer in a thread of this process and
each page is fetched over loopback HTTP (urllib), REPS times; the figure is the median.

The baseline, timed in the same process on the same store, is what the CLI read before the
paged queries: `runs show`'s reads (every item, step and model call of the run, summed in
Python by `analysis.costs.summarise`) and `runs list`'s (the newest 20 runs, each run's calls
summed in Python). The ratio is page time / baseline time. Also timed: the sums the pages
ran on every view before the run totals (GROUP BY over the big run's rows, as the store's
queries were before migration m010), for the same page content read from the totals.

Run: .venv/bin/python bench/ui_pages.py [ITEMS]  (rewrites bench/RESULTS-ui.md)
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from llmflow.analysis.costs import summarise
from llmflow.store.base import CallRecord
from llmflow.store.sqlite import RunStore

ITEMS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
REPS = 7
BASE_REPS = 3
"""The baselines take seconds to minutes each: median of 3."""
RESULTS = Path(__file__).with_name("RESULTS-ui.md")
TARGET_S = 0.5


def fill(path: Path) -> tuple[str, str, str]:
    """The big run's id, one of its item ids and one of its call ids."""
    store = RunStore(path)
    t0 = time.time() - 3600
    for r in range(40):
        run_id = f"small{r:02d}"
        store.start_run(run_id, workflow=f"wf{r % 4}", model="openai:gpt-4.1-mini",
                        source="in/", out_dir=None, items_total=5)  # fmt: skip
        for i in range(5):
            _item(store, run_id, i, t0 + r * 10 + i)
        store.end_run(run_id, status="ok", items_ok=5, items_failed=0, error=None)
    run_id = "big"
    store.start_run(run_id, workflow="email-triage", model="openai:gpt-4.1-mini",
                    source="inbox/", out_dir=None, items_total=ITEMS)  # fmt: skip
    for i in range(ITEMS):
        _item(store, run_id, i, t0 + 600 + i * 0.01)
        if i % 2000 == 0:
            store.flush()
    store.end_run(run_id, status="partial", items_ok=ITEMS - ITEMS // 50,
                  items_failed=ITEMS // 50, error=None)  # fmt: skip
    store.close()
    return run_id, f"{run_id}.{ITEMS // 2}", f"{run_id}.{ITEMS // 2}.c0"


def _item(store: RunStore, run_id: str, i: int, at: float) -> None:
    item_id = f"{run_id}.{i}"
    store.start_item(item_id, run_id=run_id, key=f"{i:06d}.eml")
    text = f"Mail {i}: please send the invoice for order {i * 7} " * 8
    for n, (path, kind) in enumerate([("classify", "llm"), ("summary", "llm"), ("act", "code")]):
        store.add_step(run_id=run_id, item_id=item_id, path=f"email-triage/{path}", kind=kind,
                       input={"text": text}, output={"label": "billing", "n": n},
                       error=None if (i % 50 or n < 2) else ValueError("x"),
                       started_at=at + n * 0.001, latency_s=0.2)  # fmt: skip
    for n in range(2):
        step_path = f"email-triage/{['classify', 'summary'][n]}"
        store.add_call(CallRecord(
            id=f"{item_id}.c{n}", model="openai:gpt-4.1-mini", provider="openai",
            prompt=f'{{"messages": [{{"role": "user", "content": "{text}"}}]}}',
            response='{"label": "billing"}', finish_reason="stop", input_tokens=120,
            output_tokens=12, latency_ms=180.0, attempts=1, status="ok", error=None,
            started_at=at + n * 0.001, cost=None if n and i % 10 == 0 else "0.0000672",
            cached=bool(n and i % 10 == 0),
        ), run_id=run_id, item_id=item_id, step_path=step_path)  # fmt: skip
    store.end_item(item_id, status="failed" if i % 50 == 0 else "ok",
                   output={"label": "billing"}, error=None)  # fmt: skip


def median_s(fn: Callable[[], object], reps: int = REPS) -> float:
    fn()  # warm (SQLite's page cache, the templates)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import uvicorn

    from llmflow.ui.app import create_app

    load_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="llmflow-ui-bench-"))
    db = folder / "llmflow.db"
    t = time.perf_counter()
    run_id, item_id, call_id = fill(db)
    fill_s = time.perf_counter() - t
    size_mb = db.stat().st_size / 1e6

    app = create_app(db, approvals=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]

    def get(path: str) -> Callable[[], object]:
        def fetch() -> object:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
                assert r.status == 200
                return r.read()

        return fetch

    store = RunStore(db)

    def show_baseline() -> object:  # `runs show`: every row of the run, summed in Python
        run = store.find_run(run_id)
        calls = store.rows("model_calls", run["id"])
        return run, store.rows("items", run["id"]), store.rows("steps", run["id"]), summarise(calls)

    def list_baseline() -> object:  # `runs list`: 20 runs, each run's calls summed in Python
        return [summarise(store.call_costs(r["id"])) for r in store.runs(20)]

    def summed_on_read() -> object:  # the run page's and /cost's sums before the totals
        db = store.db
        usage = db.execute(f"SELECT {OLD_USAGE.format(p='')} FROM model_calls WHERE run_id = ?",
                           (run_id,)).fetchall()  # fmt: skip
        steps = db.execute(
            "SELECT path, count(*), sum(status <> 'ok'), avg(latency_ms), max(latency_ms) "
            "FROM steps WHERE run_id = ? GROUP BY path", (run_id,)).fetchall()  # fmt: skip
        counts = db.execute("SELECT status, count(*) FROM items WHERE run_id = ? GROUP BY 1",
                            (run_id,)).fetchall()  # fmt: skip
        by_model = db.execute(f"SELECT model, {OLD_USAGE.format(p='')} FROM model_calls "
                              "GROUP BY 1").fetchall()  # fmt: skip
        return usage, steps, counts, by_model

    show_s = median_s(show_baseline, BASE_REPS)
    list_s = median_s(list_baseline, BASE_REPS)
    summed_s = median_s(summed_on_read, BASE_REPS)
    totals_s = median_s(lambda: (store.usage([run_id]), store.step_usage(run_id),
                                 store.item_counts(run_id), store.cost_by("model")))  # fmt: skip
    print(f"summed on read {summed_s * 1000:.1f} ms, from the totals {totals_s * 1000:.1f} ms")
    pages = [
        ("runs (newest 50, with usage)", "/", list_s, "`runs list` reads"),
        ("runs, filtered by workflow and status", "/?workflow=email-triage&status=partial",
         list_s, "`runs list` reads"),
        ("a run: step usage, first 50 items", f"/runs/{run_id}", show_s, "`runs show` reads"),
        ("a run: items page 1,000", f"/runs/{run_id}?page=1000", show_s, "`runs show` reads"),
        ("a run: failed items", f"/runs/{run_id}?status=failed", show_s, "`runs show` reads"),
        ("an item's timeline", f"/items/{item_id}", show_s, "`runs show` reads"),
        ("a model call", f"/calls/{call_id}", show_s, "`runs show` reads"),
        ("cost charts (4 groupings, all calls)", "/cost", show_s, "`runs show` reads"),
    ]  # fmt: skip
    rows = []
    for name, path, base, base_name in pages:
        s = median_s(get(path))
        rows.append((name, path, s, base, base_name))
        print(f"{name:45s} {s * 1000:8.1f} ms   baseline {base * 1000:8.1f} ms  "
              f"ratio {s / base:.3f}")  # fmt: skip
    server.should_exit = True
    thread.join()
    store.close()
    load_end = os.getloadavg()

    calls = ITEMS * 2 + 200
    lines = [
        "# `llmflow ui` pages on a run of 100,000 items",
        "",
        f"Written by `bench/ui_pages.py` on {datetime.date.today()}, Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} shared cores, load "
        f"average (1 min, `uptime`) {load_start[0]:.1f} at the start and {load_end[0]:.1f} at "
        "the end. The store holds "
        f"one run of {ITEMS:,} items ({ITEMS * 3:,} steps, {calls - 200:,} model calls) and 40 "
        f"small runs: {size_mb:,.0f} MB, filled in {fill_s:.0f} s. Each page is fetched over "
        f"loopback HTTP from a uvicorn server in the same process; median of {REPS}, after one "
        "warm-up fetch. The fill time includes the triggers that keep the run totals.",
        "",
        "Baseline, timed in the same process on the same store: what the CLI read before the "
        f"paged queries. `runs show` reads: every item, step and model call of the big run, "
        f"summed in Python: **{show_s * 1000:,.0f} ms**. `runs list` reads: the newest 20 runs, "
        f"each run's calls summed in Python: **{list_s * 1000:,.0f} ms** (baselines: median of "
        f"{BASE_REPS}).",
        "",
        "| page | path | page ms | baseline | baseline ms | ratio | under "
        f"{TARGET_S * 1000:.0f} ms |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for name, path, s, base, base_name in rows:
        lines.append(f"| {name} | `{path}` | {s * 1000:,.1f} | {base_name} | {base * 1000:,.0f} "
                     f"| {s / base:.3f} | {'yes' if s < TARGET_S else 'no'} |")  # fmt: skip
    lines += [
        "",
        "No page sums a run's rows: a run's totals (items by status; per step; per step, "
        "model and day of its model calls) are kept in `run_item_totals`, `run_step_totals` "
        "and `run_call_totals` by triggers as the rows are written (migration m010), and the "
        "runs list, the run page and `/cost` read those. Items are paged in an index alone "
        "(`items_run_started`, or `items_run_status_started` for a status) and only the "
        "page's rows are read; an item's timeline reads only its own rows (`steps_item`, "
        "`model_calls_item`).",
        "",
        "The same content summed on read, as every view did before the totals (the big run's "
        "calls, steps and items, and all calls by model, GROUP BY): "
        f"**{summed_s * 1000:,.0f} ms**; read from the totals: **{totals_s * 1000:,.2f} ms** "
        f"(ratio {totals_s / summed_s:.5f}).",
        "",
    ]
    if ITEMS == 100_000:
        RESULTS.write_text("\n".join(lines))
        print(f"wrote {RESULTS}")


OLD_USAGE = """count(*) AS calls, sum({p}cached) AS cached,
    sum(CASE WHEN {p}cached THEN 0 ELSE coalesce({p}input_tokens, 0) END) AS input_tokens,
    sum(CASE WHEN {p}cached THEN 0 ELSE coalesce({p}output_tokens, 0) END) AS output_tokens,
    sum(CASE WHEN {p}cached THEN 0 ELSE CAST({p}cost AS REAL) END) AS cost,
    sum(CASE WHEN NOT {p}cached AND {p}cost IS NULL THEN 1 ELSE 0 END) AS unpriced,
    sum({p}status <> 'ok') AS failed, avg({p}latency_ms) AS latency_ms"""
"""The store's sums of model calls before the run totals (for the figure summed on read)."""


if __name__ == "__main__":
    main()
