"""axe-core in the page under test: the accessibility check of every page the web tests open; and a wait.

axe.min.js is vendored beside this file (npm package axe-core, MPL-2.0, tests/web/vendor/) and injected by
the test through the browser's debugging protocol: the app never serves it, so the page's strict
Content-Security-Policy stays as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
RUN = """() => axe.run(document, {resultTypes: ['violations']}).then((result) => result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`))"""


def serious_violations(page: Page) -> list[str]:
    """The serious and critical accessibility violations axe-core finds on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    found: list[str] = page.evaluate(RUN)
    return found


def until(check: Callable[[], Any], within: float, what: str = "condition") -> Any:
    """Poll `check` until it returns something true (returned), or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached in {within} s (last: {result!r})"
        time.sleep(0.25)
