"""`llmflow doctor` and `python -m llmflow.doctor`: each check's ok, warn and fail, with its fix.

The child-crash path runs for real: a child process that kills itself with SIGSEGV or SIGILL
stands in for a llama.cpp built with another machine's CPU flags.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llmflow import doctor
from llmflow.cli import main
from llmflow.doctor import Check
from llmflow.settings import Settings
from llmflow.store.sqlite import RunStore

from . import pg
from .fake_openai_server import serve

SEGFAULT = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
ILLEGAL = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
LLAMA_INSTALLED = importlib.util.find_spec("llama_cpp") is not None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def json_checks(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    value = json.loads(capsys.readouterr().out)
    assert isinstance(value, list)
    return value


# -- the child process: a crash is reported, not suffered --------------------------------------


def test_a_child_killed_by_sigsegv_is_reported_with_the_signal_and_the_fix(
    tmp_path: Path,
) -> None:
    check = doctor.check_embedded(code=SEGFAULT, model_path=tmp_path / "model.gguf")
    assert check.status == "fail"
    assert "SIGSEGV" in check.detail
    assert "segmentation fault" in check.detail
    assert check.fix is not None
    assert "rm -rf ~/.cache/llmflow/wheels/llama-cpp-python-* && make setup" in check.fix
    assert "-DGGML_NATIVE=OFF" in check.fix
    assert "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python" in check.fix
    assert "pip cache remove llama_cpp_python" in check.fix


def test_a_child_killed_by_sigill_is_reported_as_an_illegal_instruction() -> None:
    child = doctor.run_child(ILLEGAL)
    assert child.signal_name == "SIGILL"
    death = doctor.describe_death(child, "the test decode")
    assert death is not None
    detail, fix = death
    assert "SIGILL (illegal instruction)" in detail
    assert "CPU" in detail
    assert "make setup" in fix


def test_a_hung_child_is_killed_after_the_timeout(tmp_path: Path) -> None:
    check = doctor.check_embedded(
        timeout=1, code="import time; time.sleep(60)", model_path=tmp_path / "model.gguf"
    )
    assert check.status == "fail"
    assert "did not finish within" in check.detail
    assert check.fix is not None
    assert "--timeout" in check.fix


def test_a_child_that_fails_reports_its_last_words(tmp_path: Path) -> None:
    check = doctor.check_embedded(
        code="raise SystemExit('no such model file')", model_path=tmp_path / "model.gguf"
    )
    assert check.status == "fail"
    assert "exit 1" in check.detail
    assert "no such model file" in check.detail


def test_a_child_that_decodes_is_ok(tmp_path: Path) -> None:
    script = (
        "import json, sys; assert sys.argv[1].endswith('model.gguf'); "
        "print(json.dumps({'tokens': 8, 'load_s': 0.5, 'decode_s': 0.25}))"
    )
    check = doctor.check_embedded(code=script, model_path=tmp_path / "model.gguf")
    assert check.status == "ok", check
    assert "decoded 8 tokens in 0.2 s, loaded in 0.5 s" in check.detail


def test_the_module_entry_point_exits_1_with_the_message_when_the_decode_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crashing(timeout: float) -> list[Check]:
        return [doctor.check_embedded(timeout, code=SEGFAULT, model_path=tmp_path / "m.gguf")]

    monkeypatch.setattr(doctor, "embedded_checks", crashing)
    assert doctor.main(["--embedded"]) == 1
    printed = capsys.readouterr().out
    assert "fail  embedded model:" in printed
    assert "SIGSEGV" in printed
    assert "fix: rebuild llama-cpp-python portably" in printed


# -- the llama.cpp build against this CPU -------------------------------------------------------

NATIVE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "  # noqa: E501
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "  # noqa: E501
V3_CPU = {"pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2"}


def test_a_build_with_features_this_cpu_lacks_fails_before_any_decode() -> None:
    check = doctor.assess_build("0.3.36", NATIVE, V3_CPU)
    assert check.status == "fail"
    assert "lacks AVX512 AVX512_VNNI AMX_INT8" in check.detail
    assert check.fix is not None
    assert "make setup" in check.fix


def test_a_portable_build_is_ok_and_shows_its_cpu_features() -> None:
    check = doctor.assess_build("0.3.36", PORTABLE, V3_CPU | {"avx512f"})
    assert check.status == "ok"
    assert "compiled for SSE3 SSSE3 AVX AVX2 F16C FMA BMI2" in check.detail
    assert "OPENMP" in check.detail


def test_a_native_build_on_its_own_cpu_is_ok_but_says_it_is_not_portable() -> None:
    check = doctor.assess_build("0.3.36", NATIVE, V3_CPU | {"avx512f", "avx512_vnni", "amx_int8"})
    assert check.status == "ok"
    assert "crashes on CPUs without AVX512" in check.detail


def test_a_cpu_without_avx2_is_told_to_build_for_x86_64_v2() -> None:
    fix = doctor.rebuild_fix("x86_64", {"pni", "ssse3", "sse4_2"})
    assert "make setup LLAMA_LEVEL=x86-64-v2" in fix
    assert "-DGGML_AVX2=OFF" in fix
    assert doctor.rebuild_fix("x86_64", V3_CPU) == doctor.REBUILD_FIX
    assert "-DGGML_AVX2" not in doctor.rebuild_fix("aarch64", None)


# -- Python, settings, the state directory, the stores ---------------------------------------


def test_python_version() -> None:
    assert doctor.check_python().status == "ok"
    old = doctor.check_python((3, 10, 12))
    assert old.status == "fail"
    assert "3.11" in old.detail


def test_invalid_settings_fail_with_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLOW_TIMEOUT", "soon")
    settings, check = doctor.load_settings()
    assert settings is None
    assert check.status == "fail"
    assert "LLMFLOW_TIMEOUT" in check.detail


def test_a_bad_dotenv_line_fails_with_its_line_and_no_pydantic_prefix() -> None:
    Path(".env").write_text("LLMFLOW_TIMEOUT 5\n")  # the tests run in an empty folder
    settings, check = doctor.load_settings()
    assert settings is None and check.status == "fail"
    assert check.detail.startswith(".env:1: cannot read the line starting 'LLMFLOW_TIMEOUT'")


def test_a_state_dir_to_be_created_or_writable_is_ok(tmp_path: Path) -> None:
    assert doctor.check_state_dir(tmp_path / "new" / "home").status == "ok"
    assert doctor.check_state_dir(tmp_path).status == "ok"


def test_a_state_dir_that_is_a_file_fails_with_a_fix(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    for home in (file, file / "home"):
        check = doctor.check_state_dir(home)
        assert check.status == "fail"
        assert "not a directory" in check.detail
        assert check.fix is not None
        assert "LLMFLOW_HOME" in check.fix


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_an_unwritable_state_dir_fails_with_a_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    try:
        for path in (home, home / "sub"):
            check = doctor.check_state_dir(path)
            assert check.status == "fail"
            assert "writable" in check.detail
            assert check.fix is not None
            assert "LLMFLOW_HOME" in check.fix
    finally:
        home.chmod(0o700)


def test_the_run_store(tmp_path: Path) -> None:
    path = tmp_path / "llmflow.db"
    missing = doctor.check_run_store(path)
    assert missing.status == "ok"
    assert "not created yet" in missing.detail
    assert not path.exists()  # the doctor does not create it
    RunStore(path).close()
    assert "schema current" in doctor.check_run_store(path).detail
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    newer = doctor.check_run_store(path)
    assert newer.status == "warn"
    assert "m999_from_the_future" in newer.detail


def test_a_damaged_run_store_fails_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "llmflow.db"
    path.write_bytes(b"this is not a database" * 100)
    check = doctor.check_run_store(path)
    assert check.status == "fail"
    assert check.fix is not None
    assert "move it aside" in check.fix


def test_the_durable_sqlite_database(tmp_path: Path) -> None:
    assert "created on the first durable run" in doctor.check_durable_db(tmp_path, None).detail
    sqlite3.connect(tmp_path / "durable.sqlite").execute("CREATE TABLE t (x)").connection.close()
    assert doctor.check_durable_db(tmp_path, None).status == "ok"
    (tmp_path / "durable.sqlite").write_bytes(b"garbage" * 1000)
    assert doctor.check_durable_db(tmp_path, None).status == "fail"


def test_a_database_url_that_is_not_postgresql_fails(tmp_path: Path) -> None:
    check = doctor.check_durable_db(tmp_path, "mysql://db/llmflow")
    assert check.status == "fail"
    assert "postgresql://" in check.detail


def test_postgresql_on_a_closed_port_fails_naming_the_url_without_its_password(
    tmp_path: Path,
) -> None:
    port = closed_port()
    check = doctor.check_durable_db(tmp_path, f"postgresql://me:s3cret@127.0.0.1:{port}/llmflow")
    assert check.status == "fail"
    assert f"postgresql://me:***@127.0.0.1:{port}/llmflow" in check.detail
    assert "s3cret" not in check.detail
    assert check.fix is not None
    assert "LLMFLOW_DATABASE_URL" in check.fix


@pytest.mark.skipif(not pg.available(), reason=pg.MISSING)
def test_a_reachable_postgresql_is_ok(tmp_path: Path) -> None:
    with pg.cluster() as url:
        check = doctor.check_durable_db(tmp_path, f"{url}/postgres")
    assert check.status == "ok", check
    assert "PostgreSQL" in check.detail


# -- the provider -------------------------------------------------------------------------------


def test_the_local_model_needs_nothing_more() -> None:
    assert [c.status for c in doctor.check_provider(Settings())] == ["ok"]


def test_a_missing_key_is_reported() -> None:
    checks = by_name(doctor.check_provider(Settings(model="openai:gpt-4.1-mini")))
    assert checks["api key"].status == "fail"
    assert "OPENAI_API_KEY is not set" in checks["api key"].detail
    assert checks["api key"].fix is not None
    assert "endpoint" not in checks  # not tried without a key


def test_a_base_url_to_a_closed_port_fails_naming_the_url() -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    checks = by_name(doctor.check_provider(Settings(model="llama3.2", base_url=base)))
    endpoint = checks["endpoint"]
    assert endpoint.status == "fail"
    assert base in endpoint.detail
    assert endpoint.fix is not None
    assert "OPENAI_BASE_URL" in endpoint.fix


def test_a_base_url_without_a_scheme_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = doctor.check_endpoint("localhost:11434/v1", "m", None)
    assert check.status == "fail"
    assert "http://" in check.detail
    # From the environment: the settings or the endpoint check reject it, with the fix.
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:11434/v1")
    monkeypatch.setenv("LLMFLOW_MODEL", "m")
    assert main(["doctor", "--no-model", "--json"]) == 1
    failed = [c for c in json_checks(capsys) if c["status"] == "fail"]
    assert any("http://localhost:11434/v1" in f"{c['detail']} {c['fix']}" for c in failed)


def test_a_base_url_to_a_running_server_is_ok_and_the_model_listed() -> None:
    with serve(lambda body: "hi", models=["llama3.2", "qwen3"]) as (base, _):
        settings = Settings(model="llama3.2", base_url=base, openai_api_key="sk-secret-123")
        checks = by_name(doctor.check_provider(settings))
        assert [c.status for c in checks.values()] == ["ok", "ok", "ok", "ok"], checks
        assert "serves llama3.2" in checks["endpoint"].detail
        assert "$0" in checks["price"].detail
        other = by_name(doctor.check_provider(settings.model_copy(update={"model": "mistral"})))
    assert other["endpoint"].status == "warn"
    assert "does not list mistral" in other["endpoint"].detail
    assert "llama3.2, qwen3" in other["endpoint"].detail
    assert all("sk-secret-123" not in f"{c.detail} {c.fix}" for c in checks.values())


def test_the_price_of_an_openai_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmflow.models.gateway import Gateway

    gateway = Gateway(Settings(openai_api_key="sk-x"))
    known = doctor.check_price(gateway, "openai", "openai:gpt-4.1-mini", "gpt-4.1-mini")
    assert known.status == "ok"
    assert "per million tokens" in known.detail
    unknown = doctor.check_price(gateway, "openai", "openai:no-such-model", "no-such-model")
    assert unknown.status == "warn"
    assert "no price known" in unknown.detail


# -- the command --------------------------------------------------------------------------------


def test_doctor_on_a_fresh_home_passes_and_its_json_parses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--no-model", "--json"])
    checks = json_checks(capsys)
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in checks)
    statuses = {c["name"]: c["status"] for c in checks}
    assert "embedded model" not in statuses  # --no-model
    for name in ("python", "settings", "state directory", "run store", "durable database"):
        assert statuses[name] == "ok", checks
    assert statuses["model"] == "ok"
    if LLAMA_INSTALLED:
        assert code == 0, checks
    else:
        assert statuses["llama-cpp-python"] == "fail"
        assert code == 1
    assert not (tmp_path / "home").exists()  # diagnosing creates nothing


def test_doctor_fails_and_prints_the_fix_for_a_bad_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("LLMFLOW_HOME", str(tmp_path / "file"))
    assert main(["doctor", "--no-model"]) == 1
    printed = capsys.readouterr().out
    assert "fail  state directory:" in printed
    assert "fix: set LLMFLOW_HOME to a writable folder" in printed


def test_doctor_against_an_openai_compatible_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    monkeypatch.setenv("LLMFLOW_MODEL", "fake-model")
    with serve(lambda body: "hi") as (base, _):
        monkeypatch.setenv("OPENAI_BASE_URL", base)
        main(["doctor", "--no-model", "--json"])
    text = capsys.readouterr().out
    assert "sk-secret-123" not in text
    checks = {c["name"]: c for c in json.loads(text)}
    assert checks["api key"]["status"] == "ok"
    assert checks["endpoint"]["status"] == "ok"
    assert base in checks["endpoint"]["detail"]


@pytest.mark.embedded
def test_doctor_with_the_real_embedded_model_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json_checks(capsys)}
    assert checks["llama-cpp-python"]["status"] == "ok"
    assert checks["embedded model"]["status"] == "ok"
    assert "decoded" in checks["embedded model"]["detail"]


@pytest.mark.embedded
def test_the_make_setup_smoke_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.main(["--embedded"]) == 0
    printed = capsys.readouterr().out
    assert "ok    llama-cpp-python:" in printed
    assert "ok    embedded model:" in printed
