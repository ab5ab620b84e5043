"""Three `llmflow worker` processes share one PostgreSQL queue: 300 runs, none run twice,
the global concurrency limit holds; and what is stored is JSON (never pickle), encrypted
when a key is set."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmflow.durable.serialization import JsonSerializer, RecordedError, new_encryption_key

from . import pg
from .fake_openai_server import serve
from .test_durable import LLMFLOW, _env, _ledger


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not pg.available():
        pytest.skip(pg.MISSING)
    with pg.cluster() as url:
        yield pg.new_database(url)


class Counting:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.replied: Counter[tuple[str, str]] = Counter()

    def answer(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        item, step = user.split("|")[0], "a" if "Step a." in system else "b"
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.02)
        with self.lock:
            self.in_flight -= 1
            self.replied[(item, step)] += 1
        return f"{item}|{step}"


def test_three_workers_share_a_queue_without_duplicates(postgres_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:03d}.txt").write_text(f"i{i}|refund")
    model = Counting()
    env = _env(tmp_path, LLMFLOW_DATABASE_URL=postgres_url)
    limits = ["--concurrency", "2", "--global-concurrency", "4", "--rate", "1000", "--period", "1"]
    workers = [
        subprocess.Popen(
            [*LLMFLOW, "worker", *limits],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        with serve(model.answer) as (url, _):
            run = subprocess.run(
                [*LLMFLOW, "run", "tests.durable_flows:build", str(folder), "--base-url", url,
                 "--model", "m", "--out", str(tmp_path / "out"), "--json"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert len(result["items"]) == 300 and result["status"] == "ok"
    assert set(model.replied.values()) == {1} and len(model.replied) == 600  # no call twice
    ledger = _ledger(tmp_path)
    assert len(ledger) == 300 and len({r["item"] for r in ledger}) == 300  # no refund twice
    assert model.max_in_flight <= 4  # the global concurrency limit held

    import psycopg

    with psycopg.connect(postgres_url) as db:
        executors = db.execute(
            "SELECT executor_id, count(*) FROM dbos.workflow_status "
            "WHERE name = 'llmflow.item' GROUP BY executor_id"
        ).fetchall()
        formats = {r[0] for r in db.execute("SELECT DISTINCT serialization FROM "
                                            "dbos.workflow_status").fetchall()}  # fmt: skip
    assert len(executors) == 3, executors  # every worker took a share
    assert formats == {"llmflow_json"}  # no pickle anywhere


def test_stored_values_are_tagged_json_and_encrypted_with_a_key() -> None:
    plain = JsonSerializer()
    value = {"path": Path("/x"), "n": (1, 2), "err": ValueError("bad")}
    text = plain.serialize(value)
    assert json.loads(text)["path"] == {"$t": "path", "v": "/x"}
    back = plain.deserialize(text)
    assert back["path"] == Path("/x") and back["n"] == (1, 2)
    assert isinstance(back["err"], RecordedError) and str(back["err"]) == "ValueError: bad"

    key = new_encryption_key()
    secret = JsonSerializer(key).serialize({"prompt": "my card number"})
    assert "my card number" not in secret and secret.startswith("fernet:")
    assert JsonSerializer(key).deserialize(secret) == {"prompt": "my card number"}
    with pytest.raises(Exception, match="LLMFLOW_ENCRYPTION_KEY"):
        plain.deserialize(secret)
    with pytest.raises(TypeError, match="cannot store a object"):
        plain.serialize(object())


def test_stored_data_cannot_name_arbitrary_classes() -> None:
    evil = json.dumps({"$t": "obj", "cls": "os:system", "v": "echo hi"})
    with pytest.raises(Exception, match="not a pydantic model or dataclass"):
        JsonSerializer().deserialize(evil)
