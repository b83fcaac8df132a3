"""The web UI end to end: `pumpwatch demo` as a subprocess (real Mosquitto and InfluxDB) and Debian's
Chromium driven by Playwright (sync API, plain test functions).

Sign-ins are rate limited (10 a minute per address), so each account signs in once per module and its
session cookie is reused by the API helpers and by later browser contexts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.processes import running_demo
from tests.support.services import InfluxDB, Mosquitto
from tests.web.harness import Accounts, Browsers, Demo

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
         influxdb: InfluxDB) -> Iterator[Demo]:
    """`pumpwatch demo` on free ports against the session's Mosquitto and InfluxDB."""
    root = tmp_path_factory.mktemp("web-demo")
    with running_demo(root, mosquitto.url, influxdb.url, status_every=60) as (url, process):
        yield Demo(url, root / "state", process.log, mosquitto)
    log = process.log
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def accounts(demo: Demo) -> Iterator[Accounts]:
    """The demo's accounts."""
    acc = Accounts(demo.url)
    try:
        yield acc
    finally:
        acc.close()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's sync driver."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium (no browser download: `playwright install` is never run)."""
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    chromium = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def browsers(browser: Browser, demo: Demo, accounts: Accounts) -> Iterator[Browsers]:
    """Browser contexts for one test; a script error on any page fails it."""
    opened = Browsers(browser, demo, accounts)
    try:
        yield opened
    finally:
        opened.close()
    assert not opened.errors, opened.errors


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], Path]:
    """Save a page's screenshot under test-artifacts/screenshots/ (kept from every run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
