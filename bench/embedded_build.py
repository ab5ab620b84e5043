"""What the portable llama.cpp build costs against a native one, on this machine.

`make setup` builds llama-cpp-python for x86-64-v3 (`-DGGML_NATIVE=OFF` with AVX2, FMA, F16C,
BMI2), never `-march=native`: a native build on a CPU with AMX and AVX-512 FP16 segfaulted on
another machine of the same kind. This measures the price of that choice. Each build's wheel
is unpacked into a folder of its own and loaded in a child process of its own (a build that
cannot run here crashes its child, which is reported, not this benchmark); both decode the
same prompt with the embedded SmolLM2-135M at temperature 0, rounds alternating portable,
native, portable, ... so that machine noise hits both alike. Prompt and generation speeds are
llama.cpp's own timings of each call; the ratio is native over portable, per round, median.

Build the native wheel first (about 9 min on two cores), then run:

    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON" pip wheel --no-cache-dir --no-deps \\
        llama-cpp-python==0.3.36 -w /tmp/native-wheel
    .venv/bin/python bench/embedded_build.py ~/.cache/llmflow/wheels/<portable folder> \\
        /tmp/native-wheel                       (rewrites bench/RESULTS-embedded-build.md)
"""

from __future__ import annotations

import datetime
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROUNDS = 5
RESULTS = Path(__file__).with_name("RESULTS-embedded-build.md")
PROMPT = "Write a short paragraph about hiking boots, their soles and their laces."

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, sys.argv[1])
import llama_cpp
from llmflow.models.embedded import default_model_path
info = llama_cpp.llama_print_system_info().decode()
llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=2048, verbose=False, seed=0)
tokens = llm.tokenize(sys.argv[2].encode()) * 8
out = []
for _ in range(2):  # the first call warms up; the second is measured
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    n = 0
    for tok in llm.generate(tokens, temp=0.0, reset=False):
        n += 1
        if n == 96:
            break
    t2 = time.perf_counter()
    out.append({"prompt_tps": len(tokens) / (t1 - t0), "gen_tps": n / (t2 - t1)})
print(json.dumps({"info": info, **out[-1]}))
"""


def unpack(wheels: Path, into: Path) -> Path:
    (wheel,) = sorted(wheels.glob("llama_cpp_python-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into)
    return into


def measure(site: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(site), PROMPT],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if proc.returncode < 0:
        return {"crashed": signal.Signals(-proc.returncode).name}
    if proc.returncode != 0:
        return {"crashed": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    portable_wheels, native_wheels = Path(sys.argv[1]), Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        sites = {
            "portable": unpack(portable_wheels, Path(tmp) / "portable"),
            "native": unpack(native_wheels, Path(tmp) / "native"),
        }
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in sites}
        for _ in range(ROUNDS):
            for name, site in sites.items():
                runs[name].append(measure(site))
    lines = [
        "# Portable vs native llama.cpp build (bench/embedded_build.py)",
        "",
        f"{datetime.date.today()} · {platform.machine()} · "
        f"{_cpu()} · llama-cpp-python 0.3.36 · SmolLM2-135M Q4_1 · {ROUNDS} alternating rounds,"
        " one child process per build and round",
        "",
    ]
    crashed = {n: r[0]["crashed"] for n, r in runs.items() if "crashed" in r[0]}
    ok = {n: r for n, r in runs.items() if n not in crashed}
    for name, reason in crashed.items():
        lines.append(f"- **{name} build crashed on this machine: {reason}**")
    for name, r in ok.items():
        lines.append(f"- {name} build: `{str(r[0]['info']).strip()}`")
    lines.append("")
    if ok:
        lines += [
            "| build | prompt tok/s (median) | generation tok/s (median) |",
            "|---|---:|---:|",
        ]
        for name, r in ok.items():
            p = statistics.median(float(x["prompt_tps"]) for x in r)  # type: ignore[arg-type]
            g = statistics.median(float(x["gen_tps"]) for x in r)  # type: ignore[arg-type]
            lines.append(f"| {name} | {p:,.0f} | {g:,.1f} |")
    if len(ok) == 2:
        ratios_p = [float(n["prompt_tps"]) / float(p["prompt_tps"])  # type: ignore[arg-type]
                    for p, n in zip(runs["portable"], runs["native"], strict=True)]  # fmt: skip
        ratios_g = [float(n["gen_tps"]) / float(p["gen_tps"])  # type: ignore[arg-type]
                    for p, n in zip(runs["portable"], runs["native"], strict=True)]  # fmt: skip
        lines += [
            "",
            f"native / portable, median of per-round ratios: prompt "
            f"**{statistics.median(ratios_p):.2f}×**, generation "
            f"**{statistics.median(ratios_g):.2f}×**.",
        ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _cpu() -> str:
    flags = Path("/proc/cpuinfo").read_text().split()
    shown = [f for f in ("avx2", "avx512f", "avx512_fp16", "amx_tile") if f in flags]
    return "CPU flags " + " ".join(shown)


if __name__ == "__main__":
    main()
