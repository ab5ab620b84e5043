"""`llmflow ui` in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): every page opened on a store filled by real runs, a click through run -> item ->
model call, and two approvals answered from the browser while a durable run waits on them,
which then goes on (one refund made, one refused with the reviewer's comment).

Screenshots of each page go to $LLMFLOW_ARTIFACTS/ui (default: the test's temporary folder).
Skipped, saying why, where Chromium, its driver or selenium is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .fake_openai_server import serve
from .test_durable import LLMFLOW, _env, _ledger
from .test_durable_effects import agent_reply
from .ui_runs import FAKE_KEY, fill

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip(
        "the browser tests need Chromium and its driver: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
By = pytest.importorskip("selenium.webdriver.common.by").By
StaleElementReferenceException = pytest.importorskip(
    "selenium.common.exceptions"
).StaleElementReferenceException


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    root = os.environ.get("LLMFLOW_ARTIFACTS")
    folder = Path(root) / "ui" if root else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions",
                 "--window-size=1360,900", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_page_load_timeout(180)
    try:
        yield driver
    finally:
        driver.quit()


def _ui(env: dict[str, str]) -> Iterator[str]:
    proc = subprocess.Popen(
        [*LLMFLOW, "ui", "--port", "0"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert found, line + (proc.stderr.read() if proc.stderr else "")
        yield found.group(1)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[str]:
    fill(Path(os.environ["LLMFLOW_HOME"]))
    yield from _ui(_env(tmp_path))


def _shot(driver: Any, folder: Path, name: str) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1360, min(max(900, height + 40), 2400))
    driver.save_screenshot(str(folder / f"{name}.png"))


def test_every_page_and_a_click_through_run_item_call(browser: Any, ui: str, shots: Path) -> None:
    browser.get(ui)
    assert browser.title == "runs · llmflow"
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert len(rows) == 2 and "support" in rows[0].text and "partial" in rows[0].text
    assert "ok 3 · failed 1 of 4" in rows[0].text
    _shot(browser, shots, "runs")

    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    assert browser.title.startswith("run ")
    steps = browser.find_element(By.ID, "steps").text
    assert "answer/lookup_order[1]" in steps and "classify" in steps
    _shot(browser, shots, "run")

    browser.find_element(By.LINK_TEXT, "xss.eml").click()
    assert browser.title == "item xss.eml · llmflow"
    # The mail's <script> is text on the page, never run (the title is still ours).
    timeline = browser.find_element(By.ID, "timeline")
    first = timeline.find_element(By.CSS_SELECTOR, "tr.step details summary")
    first.click()
    assert "<script>document.title='pwned'</script>" in timeline.text
    assert not browser.find_elements(By.CSS_SELECTOR, "main script")
    # A model call, opened in place: its messages and output.
    call = timeline.find_element(By.CSS_SELECTOR, "details.call")
    call.find_element(By.TAG_NAME, "summary").click()
    assert "Classify the mail" in call.text
    _shot(browser, shots, "item")

    call.find_element(By.LINK_TEXT, "the whole call").click()
    assert browser.title == "model call · llmflow"
    assert "Classify the mail" in browser.find_element(By.ID, "messages").text
    _shot(browser, shots, "call")

    browser.get(ui + "cost")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-model svg rect")
    _shot(browser, shots, "cost")

    # The agent's answer held a key-shaped text: no page shows it.
    browser.get(ui)
    browser.find_element(By.CSS_SELECTOR, "#runs tbody tr a").click()
    browser.find_element(By.LINK_TEXT, "order.eml").click()
    assert "[redacted]" in browser.page_source and FAKE_KEY not in browser.page_source
    assert browser.title == "item order.eml · llmflow"


def test_approve_one_refund_and_reject_another_from_the_browser(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.txt").write_text(f"i{i}|please refund")
    env = _env(tmp_path, LLMFLOW_TEST_TOOL_APPROVAL="1")
    with serve(agent_reply) as (url, _):
        args = ["run", "tests.durable_flows:build_agent", str(folder), "--base-url", url,
                "--model", "m", "--out", str(tmp_path / "out"), "--concurrency", "2",
                "--json"]  # fmt: skip
        run = subprocess.Popen([*LLMFLOW, *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            pages = _ui(env)
            base = next(pages)
            waiting: list[Any] = []
            deadline = time.time() + 240
            while len(waiting) < 2 and time.time() < deadline:
                time.sleep(0.5)
                browser.get(base + "approvals")
                waiting = browser.find_elements(By.CSS_SELECTOR, ".approval")
            assert len(waiting) == 2, browser.page_source
            text = browser.find_element(By.TAG_NAME, "main").text
            assert "refund(order='i0')" in text and "refund(order='i1')" in text
            assert '"tool": "refund"' in text  # the proposed action
            _shot(browser, shots, "approvals")

            def answer(order: str, button: str, comment: str) -> None:
                for box in browser.find_elements(By.CSS_SELECTOR, ".approval"):
                    if f"refund(order='{order}')" in box.text:
                        box.find_element(By.NAME, "comment").send_keys(comment)
                        box.find_element(By.CSS_SELECTOR, f"button.{button}").click()
                        return
                raise AssertionError(f"no approval for {order}")

            def done(expected: str) -> str:
                """What the page the decision led to says was done, once it says `expected`
                (after the redirect, which a busy machine may take a while to load: until then
                the page before it, whose #done may say something else or go stale)."""
                deadline, said = time.time() + 60, ""
                while time.time() < deadline:
                    try:
                        found = browser.find_elements(By.ID, "done")
                        said = str(found[0].text) if found else ""
                    except StaleElementReferenceException:  # the page changed under it
                        said = ""
                    if expected in said:
                        return said
                    time.sleep(0.2)
                raise AssertionError(
                    f"#done says {said!r}, not {expected!r}, on {browser.current_url}:\n"
                    f"{browser.page_source}"
                )

            answer("i0", "approve", "fine")
            assert "approved agent-refunds/support/refund[1]" in done("approved")
            answer("i1", "reject", "over the limit")
            assert "rejected" in done("rejected")
            stdout, stderr = run.communicate(timeout=240)
            assert run.returncode == 0, stdout + stderr
            result = json.loads(stdout[stdout.index("{") : stdout.rindex("}") + 1])
            approved, rejected = (i["output"] for i in result["items"])
            assert approved == "i0: refunded i0"
            assert rejected.startswith("i1: Not done: the call of refund was rejected by ")
            assert "(llmflow ui): over the limit" in rejected
            assert [r["item"] for r in _ledger(tmp_path)] == ["i0"]  # the rejected never ran

            browser.get(base + "approvals")
            assert browser.find_element(By.ID, "none").text == "no approvals waiting"
            browser.get(base)
            browser.find_element(By.CSS_SELECTOR, "#runs tbody tr a").click()
            browser.find_element(By.LINK_TEXT, "1.txt").click()
            assert "rejected" in browser.find_element(By.ID, "timeline").text
            _shot(browser, shots, "item-rejected")
            pages.close()
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
