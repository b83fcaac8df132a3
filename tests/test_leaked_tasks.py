"""The leaked-task check (tests/support/leaks.py), run on small test files by pytester."""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest("-p", "tests.support.leaks", "-p", "no:cacheprovider")


def test_a_test_that_leaves_a_task_running_fails_naming_it(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        import asyncio

        async def test_forgets_its_task():
            asyncio.create_task(asyncio.sleep(3600))
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_forgets_its_task*",
        "*1 asyncio task(s) still running after the test and its fixtures finished*",
        "*<Task pending name='Task-*' coro=<sleep() running at *",
    ])


def test_a_task_left_running_by_a_fixture_is_named_too(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        import asyncio
        import pytest

        async def heartbeat():
            while True:
                await asyncio.sleep(1)

        @pytest.fixture
        async def beating():
            yield asyncio.create_task(heartbeat(), name="heartbeat")

        async def test_uses_it(beating):
            assert not beating.done()
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*<Task pending name='heartbeat' coro=<heartbeat() running at *"])


def test_tasks_cancelled_awaited_or_finished_pass(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        import asyncio
        import contextlib
        import pytest

        async def test_cancels_and_awaits():
            task = asyncio.create_task(asyncio.sleep(3600))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        async def test_cancels_without_awaiting():
            asyncio.create_task(asyncio.sleep(3600)).cancel()  # done a loop turn later

        async def test_lets_it_finish():
            await asyncio.create_task(asyncio.sleep(0))

        @pytest.fixture
        async def stopped_in_teardown():
            task = asyncio.create_task(asyncio.sleep(3600))
            yield task
            task.cancel()

        async def test_fixture_stops_it(stopped_in_teardown):
            assert not stopped_in_teardown.done()

        def test_sync_tests_are_not_checked():
            pass
    """)
    result.assert_outcomes(passed=5)
