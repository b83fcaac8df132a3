"""The web UI end to end: `pumpwatch demo` as a subprocess (real Mosquitto and InfluxDB) and Debian's
Chromium driven by Playwright (sync API, plain test functions).

Sign-ins are rate limited (10 a minute per address), so each account signs in once per module and its
session cookie is reused by the API helpers and by later browser contexts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as publish
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.processes import running_demo
from tests.services import InfluxDB, Mosquitto

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
CONTROL = "pumpwatch/sim/control"


@dataclass
class Demo:
    """A running `pumpwatch demo`."""

    url: str
    state_dir: Path
    log: Path
    mosquitto: Mosquitto

    def scenario(self, name: str, on: bool) -> None:
        """Switch a fault scenario on or off, as an operator would over MQTT."""
        publish.single(CONTROL, json.dumps({"scenario": name, "on": on}), qos=1, hostname="127.0.0.1",
                       port=self.mosquitto.port)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
         influxdb: InfluxDB) -> Iterator[Demo]:
    """`pumpwatch demo` on free ports against the session's Mosquitto and InfluxDB."""
    root = tmp_path_factory.mktemp("web-demo")
    with running_demo(root, mosquitto.url, influxdb.url, status_every=60) as (url, process):
        yield Demo(url, root / "state", process.log, mosquitto)
    log = process.log
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


@dataclass
class Accounts:
    """One browser session per demo account, signed in once and shared by the UI and the API helpers."""

    url: str
    cookies: dict[str, dict[str, str]] = field(default_factory=dict)
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def keep(self, username: str, context: BrowserContext) -> None:
        """Keep the session a browser context signed in with (after a sign-in through the UI)."""
        jar = {c["name"]: c["value"] for c in context.cookies(self.url) if c["name"].startswith("pumpwatch_")}
        assert {"pumpwatch_session", "pumpwatch_csrf"} <= set(jar), jar
        self.cookies[username] = jar
        self.clients.pop(username, None)

    def session(self, username: str) -> dict[str, str]:
        """The account's cookies, signing in through the API the first time."""
        if username not in self.cookies:
            resp = httpx.post(f"{self.url}/api/auth/login",
                              json={"username": username, "password": f"{username}-demo-2026"}, timeout=10)
            assert resp.status_code == 200, resp.text
            self.cookies[username] = {k: v for k, v in resp.cookies.items() if k.startswith("pumpwatch_")}
        return self.cookies[username]

    def api(self, username: str) -> httpx.Client:
        """An HTTP client acting as the account (session cookie and CSRF header, like the web UI)."""
        if username not in self.clients:
            jar = self.session(username)
            self.clients[username] = httpx.Client(base_url=self.url, cookies=jar, timeout=10,
                                                  headers={"X-CSRF-Token": jar["pumpwatch_csrf"]})
        return self.clients[username]

    def user_id(self, username: str) -> int:
        """The account's user id."""
        if username not in self.ids:
            self.ids[username] = int(self.api(username).get("/api/auth/me").json()["id"])
        return self.ids[username]

    def close(self) -> None:
        """Close the HTTP clients."""
        for client in self.clients.values():
            client.close()


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


@dataclass
class Browsers:
    """Opens browser contexts (desktop or phone), signed in or not, and closes them after the test."""

    browser: Browser
    demo: Demo
    accounts: Accounts
    opened: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def context(self, username: str | None = None, phone: bool = False) -> BrowserContext:
        """A fresh context (own cookies, storage and service worker), signed in as `username`."""
        options: dict[str, Any] = {"viewport": PHONE if phone else DESKTOP, "locale": "zh-CN",
                                   "timezone_id": "Asia/Shanghai"}
        if phone:
            options.update(device_scale_factor=2, is_mobile=True, has_touch=True)
        context = self.browser.new_context(**options)
        context.set_default_timeout(20_000)
        self.opened.append(context)
        if username is not None:
            jar = self.accounts.session(username)
            context.add_cookies([{"name": k, "value": v, "url": self.demo.url} for k, v in jar.items()])
        return context

    def page(self, username: str | None = None, phone: bool = False, path: str = "/") -> Page:
        """A page of a fresh context, opened at `path`; uncaught script errors fail the test."""
        page = self.context(username, phone).new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.goto(self.demo.url + path)
        return page

    def close(self) -> None:
        """Close every context opened."""
        for context in self.opened:
            context.close()


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
