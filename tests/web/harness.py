"""What the web UI tests work with: the running demo, its signed-in accounts and a test's browser contexts.

The fixtures that make them are in tests/web/conftest.py; the tests import these types from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as publish
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.services import Mosquitto

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
