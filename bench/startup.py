"""How long llmflow takes to start: `llmflow --help`, `llmflow runs list`, `import llmflow`, and
a whole `llmflow run` of a tiny workflow (3 text files, one code step), by default (durable)
and with `--no-durable`: the fixed cost of a command users run.

Each figure is the wall time of a fresh process, from spawn to exit, so it includes Python's
own start-up; the baseline is `python -c pass`, measured in the same rounds. The machine is
noisy (2 shared cores), so the rounds interleave the commands and each figure is the median
of REPS rounds; the process's CPU time (user + system) is shown too, as it depends less on
what else the machine is running. `runs list` reads an empty run store in a temporary
LLMFLOW_HOME (created by one untimed run first).

Run: .venv/bin/python bench/startup.py  (rewrites bench/RESULTS-startup.md)
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPS = 11
TARGET_S = 0.5
RESULTS = Path(__file__).with_name("RESULTS-startup.md")
REFERENCE = """\
| measure | before s | baseline s | ratio | before CPU s |
|---|---:|---:|---:|---:|
| `llmflow --help` | 3.744 | 0.018 | 204.7 | 2.636 |
| `llmflow runs list` (empty store) | 3.778 | 0.018 | 206.6 | 2.555 |
| `import llmflow` | 3.329 | 0.018 | 182.0 | 2.254 |
"""
HEAD = (
    "| measure | llmflow s | baseline s | ratio | llmflow CPU s | target | met |\n"
    "|---|---:|---:|---:|---:|---|---|\n"
)
Row = tuple[str, str, str, str, str, str, str]
Times = dict[str, tuple[float, float]]
"""Per command: the median wall seconds and the median CPU seconds."""


def llmflow_command() -> list[str]:
    """The console script next to this interpreter, else its entry point run by `-c`."""
    script = Path(sys.executable).with_name("llmflow")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from llmflow.cli import run_cli; run_cli()"]


def cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def wall(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds from spawning `command` to its exit (which must be 0)."""
    c0, t0 = cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    assert done.returncode == 0, (command, done.stderr.decode())
    return seconds, cpu_seconds


def tiny_workflow(home: Path) -> Path:
    """A workflow file with one code step, and a folder of 3 text files for it."""
    folder = home / "tiny"
    (folder / "in").mkdir(parents=True)
    for n in range(3):
        (folder / "in" / f"{n}.txt").write_text(f"hello {n}")
    (folder / "tools.py").write_text("def up(text):\n    return str(text).upper()\n")
    flow = folder / "tiny.yaml"
    flow.write_text("name: tiny\ninput:\n  type: text\nsteps:\n"
                    "  - id: up\n    kind: code\n    function: tools:up\n")  # fmt: skip
    return flow


def measure(home: str) -> Times:
    """The median wall and CPU time of each command over REPS interleaved rounds."""
    env = {**os.environ, "LLMFLOW_HOME": home}
    llmflow = llmflow_command()
    flow = tiny_workflow(Path(home))
    run = [*llmflow, "run", str(flow), str(flow.parent / "in"), "--out", str(Path(home) / "out")]
    commands = {
        "baseline": [sys.executable, "-c", "pass"],
        "help": [*llmflow, "--help"],
        "runs": [*llmflow, "runs", "list"],
        "import": [sys.executable, "-c", "import llmflow"],
        "run": run,
        "run-nod": [*run, "--no-durable"],
    }
    wall(commands["runs"], env)  # creates the run store, untimed
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(REPS):
        for name, command in commands.items():
            times[name].append(wall(command, env))
    return {
        name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for name, t in times.items()
    }


def rows(median: Times) -> list[Row]:
    base = median["baseline"][0]

    def row(name: str, key: str, target: bool) -> Row:
        ours, ours_cpu = median[key]
        met = ("yes" if ours < TARGET_S else "no") if target else "—"
        goal = f"< {TARGET_S} s" if target else "—"
        return (name, f"{ours:.3f}", f"{base:.3f}", f"{ours / base:,.1f}", f"{ours_cpu:.3f}",
                goal, met)  # fmt: skip

    return [
        row("`llmflow --help`", "help", True),
        row("`llmflow runs list` (empty store)", "runs", True),
        row("`import llmflow`", "import", False),
        row("`llmflow run`, 3 items, a code step (default: durable)", "run", False),
        row("`llmflow run --no-durable`, the same", "run-nod", False),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        table_rows = rows(measure(home))
    table = HEAD + "".join(f"| {' | '.join(r)} |\n" for r in table_rows)
    print(f"{'measure':<56} {'llmflow s':>9} {'baseline s':>10} {'ratio':>7} {'CPU s':>7}  "
          f"target    met")  # fmt: skip
    for r in table_rows:
        print(f"{r[0]:<56} {r[1]:>9} {r[2]:>10} {r[3]:>7} {r[4]:>7}  {r[5]:<9} {r[6]}")
    RESULTS.write_text(
        f"# Start-up time\n\n"
        f"Measured {datetime.date.today()} by `bench/startup.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, {platform.system()}, "
        f"{os.cpu_count()} CPUs, shared): the median of {REPS} fresh processes each, their "
        f"rounds interleaved; the baseline, `python -c pass`, is measured in the same rounds. "
        f"Times are wall seconds from spawn to exit, Python's own start-up included; the CPU "
        f"time (user + system) depends less on the machine's other load.\n\n"
        f"{table}\n"
        f"The ratio is llmflow / baseline. The heavy dependencies (the Agents SDK, DBOS, "
        f"scikit-learn, llama.cpp, genai-prices, jsonschema) load only in the commands and "
        f"steps that use them; what remains is typer, rich and, for `runs list`, pydantic "
        f"(settings) and the SQLite store. `tests/test_startup.py` checks what is loaded. "
        f"A durable `llmflow run` of a workflow no step of which waits for a person does not "
        f"load DBOS; before that change it did, and the same run took ~2.7 s against ~2.0 s "
        f"with `--no-durable` (timed by hand, 2 runs each, not by this script).\n\n"
        f"## Before, for context\n\n"
        f"Measured by this script's `measure` on this machine, on the code of commit 54411e0 "
        f"(when `import llmflow` loaded every dependency), the same day and under a similar "
        f"load; not re-measured by this script.\n\n"
        f"{REFERENCE}",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
