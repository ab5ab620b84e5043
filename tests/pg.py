"""A throwaway PostgreSQL cluster for tests: initdb in a temporary folder, on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("LLMFLOW_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return (PG_BIN / "initdb").exists()


MISSING = (
    f"PostgreSQL server binaries not found in {PG_BIN} (set LLMFLOW_PG_BIN, or install "
    "postgresql: .ci/run does)"
)


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yields its base URL (no database)."""
    root = Path(tempfile.mkdtemp(prefix="llmflow-pg-"))
    data, run = root / "data", root / "run"
    run.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the postgres user
        shutil.chown(root, "postgres")
        shutil.chown(run, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "llmflow", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    port = _free_port()
    options = f"-p {port} -k {run} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(root / "log")
    subprocess.run([*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", log, "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://llmflow@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def new_database(base_url: str) -> str:
    """A fresh, empty database in the cluster at `base_url`."""
    import psycopg

    name = f"t{os.urandom(6).hex()}"
    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url}/{name}"
