"""The list routes' one-second answers: fresh ones shared, stale ones given while the next is computed."""

from __future__ import annotations

import asyncio
import threading
import time

from api.answer_cache import AnswerCache
from tests.support.waiting import eventually


class Counting:
    """A computation that counts its runs and can be held until released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def __call__(self) -> bytes:
        self.release.wait(10)
        self.runs += 1
        if self.fail:
            raise RuntimeError("the database went away")
        return f"answer {self.runs}".encode()


def test_a_fresh_answer_is_shared_and_a_new_version_is_computed_by_its_asker() -> None:
    cache, compute = AnswerCache(max_age=60), Counting()
    assert cache.answer("q", 1, compute) == b"answer 1"
    assert cache.answer("q", 1, compute) == b"answer 1"
    assert (cache.hits, cache.misses, compute.runs) == (1, 1, 1)
    assert cache.answer("q", 2, compute) == b"answer 2"  # this process wrote: the asker waits for it
    assert cache.answer("other", 2, compute) == b"answer 3"


async def test_a_stale_answer_is_given_at_once_while_one_thread_computes_the_next() -> None:
    cache, compute = AnswerCache(max_age=0.05), Counting()
    assert cache.answer("q", 1, compute) == b"answer 1"
    await asyncio.sleep(0.06)
    compute.release.clear()  # the next computation takes its time
    for _ in range(5):
        assert cache.answer("q", 1, compute) == b"answer 1"  # nobody waits for it
    assert cache.stale == 5
    compute.release.set()

    async def refreshed() -> bool:
        return cache.answer("q", 1, compute) == b"answer 2"

    await eventually(refreshed, 5, 0.01)
    assert compute.runs == 2  # one computation for the five stale askers


async def test_a_failed_refresh_keeps_the_old_answer_and_the_next_asker_tries_again() -> None:
    cache, compute = AnswerCache(max_age=0.01), Counting()
    cache.answer("q", 1, compute)
    await asyncio.sleep(0.02)
    compute.fail = True
    assert cache.answer("q", 1, compute) == b"answer 1"

    async def tried() -> bool:
        return compute.runs == 2 and not cache._refreshing

    await eventually(tried, 5, 0.01)
    compute.fail = False
    assert cache.answer("q", 1, compute) == b"answer 1"

    async def refreshed() -> bool:
        return cache.answer("q", 1, compute) == b"answer 3"

    await eventually(refreshed, 5, 0.01)


async def test_a_refresh_at_an_old_version_does_not_replace_a_newer_answer() -> None:
    cache, compute = AnswerCache(max_age=0.01), Counting()
    cache.answer("q", 1, compute)
    await asyncio.sleep(0.02)
    compute.release.clear()
    cache.answer("q", 1, compute)  # its successor at version 1 is held
    cache.put("q", 2, b"written", time.monotonic())  # a write meanwhile: an asker computed at version 2
    compute.release.set()

    async def done() -> bool:
        return not cache._refreshing

    await eventually(done, 5, 0.01)
    assert compute.runs == 2  # the old version's successor was computed, and left out
    assert cache.answer("q", 2, compute) == b"written"
