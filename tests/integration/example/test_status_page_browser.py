"""The status page in a real browser (headless Chromium from Debian, through selenium): break
the LLM from the page, chat, see the stale answer flagged and the llm row open; clear the
faults and see it close. A screenshot is written for a person to look at (not committed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.agent_backend import Settings, create_app
from tests.servers import serving_in_thread

WAIT = 5.0  # the bound for the page to show a change


def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing: scripts/test installs them")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    return chromium, driver


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'status.db'}",
        redis_url="memory://",
        demo_mode=True,
        llm_timeout=0.3,
        breaker_seconds=0.5,
        breaker_window=2.0,
        retry_delay=0.01,
    )
    with serving_in_thread(create_app(settings), timeout=15) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1200,900"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_break_the_llm_from_the_page_and_watch_it_open_and_close(
    backend: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )

    def breaker_of(name: str) -> str:
        # Read in one script: the page redraws its rows on every snapshot.
        script = "const r=document.getElementById(arguments[0]); return r ? r.dataset.breaker: ''"
        return str(browser.execute_script(script, f"dep-{name}"))

    def send_until(done: Any) -> None:
        """Chat (one turn at a time) until ``done()``: the page's view of a real server."""

        def check(_: Any) -> bool:
            if done():
                return True
            if browser.find_element(By.ID, "answer").text != "…":  # no turn in flight
                browser.find_element(By.ID, "send").click()
            return False

        wait.until(check)

    def flags() -> str:
        return str(browser.find_element(By.ID, "flags").text)

    browser.get(f"{backend}/status")
    wait.until(lambda _: breaker_of("llm") == "closed")
    wait.until(lambda _: browser.find_element(By.ID, "break-llm").is_displayed())
    browser.find_element(By.ID, "send").click()  # a healthy answer, cached for this user
    wait.until(lambda _: browser.find_element(By.ID, "run-status").text == "ok")

    browser.find_element(By.ID, "break-llm").click()
    send_until(lambda: "llm=stale_cache" in flags())
    assert browser.find_element(By.ID, "answer").text  # the last good answer, served stale
    events = browser.find_element(By.ID, "events").text
    assert "agent_started" in events and "agent_completed" in events
    send_until(lambda: breaker_of("llm") == "open")  # enough failures: the row turns open
    assert "llm=stale_cache" in browser.find_element(By.ID, "degraded").text
    browser.save_screenshot(str(tmp_path / "status-page-llm-open.png"))

    browser.find_element(By.ID, "clear-faults").click()
    # The break (breaker_seconds) elapses on the server's clock; the next turn probes.
    send_until(lambda: breaker_of("llm") == "closed")
    browser.save_screenshot(str(tmp_path / "status-page-recovered.png"))
    assert (tmp_path / "status-page-llm-open.png").stat().st_size > 10_000
