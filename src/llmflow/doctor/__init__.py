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
from collections.abc import Callable, Iterator, Sequence

from .check import Check, Status
from .environment import (
    DB_TIMEOUT_S,
    check_durable_db,
    check_graphviz,
    check_postgres,
    check_python,
    check_run_store,
    check_state_dir,
    load_settings,
    redact_dsn,
)
from .llama import (
    BUILD_CODE,
    GENERIC_CMAKE_ARGS,
    INSTALL_FIX,
    OLD_CPU_CMAKE_ARGS,
    PORTABLE_CMAKE_ARGS,
    REBUILD_FIX,
    REBUILD_PIP,
    REBUILD_REPO,
    SMOKE_CODE,
    SMOKE_TIMEOUT_S,
    ChildResult,
    assess_build,
    check_embedded,
    check_llama_build,
    compiled_features,
    describe_death,
    host_cpu_flags,
    rebuild_fix,
    run_child,
)
from .provider import (
    HTTP_TIMEOUT_S,
    OPENAI_URL,
    check_endpoint,
    check_local_model,
    check_price,
    check_provider,
)

# The checks live in modules by what they check; these are the names callers use.
__all__ = [
    "BUILD_CODE",
    "DB_TIMEOUT_S",
    "GENERIC_CMAKE_ARGS",
    "HTTP_TIMEOUT_S",
    "INSTALL_FIX",
    "OLD_CPU_CMAKE_ARGS",
    "OPENAI_URL",
    "PORTABLE_CMAKE_ARGS",
    "REBUILD_FIX",
    "REBUILD_PIP",
    "REBUILD_REPO",
    "SMOKE_CODE",
    "SMOKE_TIMEOUT_S",
    "Check",
    "ChildResult",
    "Status",
    "assess_build",
    "check_durable_db",
    "check_embedded",
    "check_endpoint",
    "check_graphviz",
    "check_llama_build",
    "check_local_model",
    "check_postgres",
    "check_price",
    "check_provider",
    "check_python",
    "check_run_store",
    "check_state_dir",
    "compiled_features",
    "describe_death",
    "embedded_checks",
    "host_cpu_flags",
    "load_settings",
    "main",
    "rebuild_fix",
    "redact_dsn",
    "report",
    "run_checks",
    "run_child",
]


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
