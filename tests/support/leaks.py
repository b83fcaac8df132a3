"""A pytest plugin: an async test that leaves asyncio tasks running fails, naming them.

Registered in tests/conftest.py. For every coroutine test on a function-scoped loop (all of ours:
pytest-asyncio's default), `pytest_collection_modifyitems` puts the `no_leaked_tasks` fixture first in
the test's fixture list. Set up first, it is torn down last: after the test and after every other
function fixture has finished, and before pytest-asyncio closes the loop (closing would cancel the
leftovers silently). Its teardown lets the loop run a few rounds, so tasks that were cancelled but not
awaited can finish, then fails with every task still pending on the loop: its name and coroutine, where
that coroutine waits. The leaked tasks are cancelled before failing, so the loop still closes cleanly.
The failure shows as an error at teardown of the test (`ERROR at teardown of test_...`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pytest_asyncio import is_async_test

FIXTURE = "no_leaked_tasks"
SETTLE_ROUNDS = 20  # loop iterations granted to tasks that were cancelled but not awaited
CANCEL_WAIT = 5.0  # seconds the leaked tasks get to finish after being cancelled


def _pending_tasks() -> list[asyncio.Task[object]]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fails the test if asyncio tasks are still pending once the test and its fixtures are done."""
    yield
    leaked = _pending_tasks()
    for _ in range(SETTLE_ROUNDS):
        if not leaked:
            return
        await asyncio.sleep(0)
        leaked = _pending_tasks()
    if not leaked:
        return
    described = sorted(repr(t) for t in leaked)
    for task in leaked:
        task.cancel()
    await asyncio.wait(leaked, timeout=CANCEL_WAIT)
    pytest.fail(f"{len(leaked)} asyncio task(s) still running after the test and its fixtures finished "
                f"(cancel and await what the test starts):\n  " + "\n  ".join(described), pytrace=False)


def _on_function_loop(item: pytest.Item) -> bool:
    """Whether an async test runs on a loop of its own (a wider loop may keep tasks between tests)."""
    marker = item.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker is not None else None
    return str(scope or item.config.getini("asyncio_default_test_loop_scope")) == "function"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put `no_leaked_tasks` first in the fixtures of every coroutine test on a function-scoped loop."""
    for item in items:
        # Parametrized copies of one test share one fixture list: insert once.
        if is_async_test(item) and _on_function_loop(item) and FIXTURE not in item.fixturenames:
            item.fixturenames.insert(0, FIXTURE)
