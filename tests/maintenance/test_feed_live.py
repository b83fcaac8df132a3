"""The feed hands live readings to the event loop in one wake-up per burst, bounded and counted."""

from __future__ import annotations

import asyncio

import pytest

from maintenance import feed as feed_module
from maintenance.feed import AlarmFeed
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading


def _feed(received: list[list[Reading]]) -> AlarmFeed:
    return AlarmFeed(BrokerAddress("127.0.0.1", 1), "feed-test", [], on_readings=received.append)


async def test_room_batches_that_come_together_reach_the_loop_as_one() -> None:
    received: list[list[Reading]] = []
    feed = _feed(received)
    feed._loop = asyncio.get_running_loop()  # as `start` sets it; no broker is needed for the hand-over
    rooms = [[Reading(f"e/{room}-{n}", 1.0 + n, float(n)) for n in range(3)]
             for room in ("dom", "fire", "roof")]
    for batch in rooms:  # as the network thread hands them on, before the loop runs again
        feed._hand_on(batch)
    assert received == []
    await asyncio.sleep(0)
    assert received == [[r for batch in rooms for r in batch]]
    feed._hand_on(rooms[0])  # the next burst: a wake-up of its own
    await asyncio.sleep(0)
    assert received[1:] == [rooms[0]]


async def test_readings_beyond_the_limit_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "LIVE_PENDING_LIMIT", 5)
    received: list[list[Reading]] = []
    feed = _feed(received)
    feed._loop = asyncio.get_running_loop()
    first = [Reading(f"e/s{n}", 1.0, 1.0) for n in range(4)]
    feed._hand_on(first)
    feed._hand_on([Reading("e/s9", 1.0, 1.0), Reading("e/s10", 1.0, 1.0)])  # 6 > 5: this batch is dropped
    await asyncio.sleep(0)
    assert received == [first]
    assert feed.live_dropped._value.get() == 2
