"""Polling an async check until it holds, with a deadline and the last result in the failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any]], within: float, interval: float = 0.25) -> Any:
    """Poll an async check until it returns something truthy (returned), or fail with its last result."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not reached within {within} s; last result: {last!r}")
