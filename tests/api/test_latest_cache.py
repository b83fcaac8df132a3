"""The newest-readings cache: a room's sensors are asked of the store at once, a whole portfolio's in the
background, so the monitoring centre's first overview does not wait for the series store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.latest_cache import ASK_AT_ONCE, LatestCache
from collector.stores.embedded import EmbeddedStore
from pumpwatch.readings import Reading

T0 = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    yield store
    await store.close()


async def test_a_few_sensors_are_answered_from_the_store_at_once(store: EmbeddedStore) -> None:
    await store.write([Reading("a/p1", T0, 0.4), Reading("a/p2", T0 + 1, 0.5)])
    cache = LatestCache(store)
    assert await cache.latest(["a/p1", "a/p2", "a/none"]) == {"a/p1": Reading("a/p1", T0, 0.4),
                                                                "a/p2": Reading("a/p2", T0 + 1, 0.5)}


async def test_a_whole_portfolio_is_asked_in_the_background_and_answered_by_the_next_call(
        store: EmbeddedStore) -> None:
    keys = [f"estate-{n:03d}/s" for n in range(ASK_AT_ONCE + 100)]
    await store.write([Reading(key, T0 + n, float(n)) for n, key in enumerate(keys)])
    cache = LatestCache(store)
    cache.update([Reading(keys[0], T0 + 50, -1.0)])  # the live stream already brought one, newer
    first = await cache.latest(keys)
    assert first == {keys[0]: Reading(keys[0], T0 + 50, -1.0)}  # nobody waited for the store
    await cache.asked()
    second = await cache.latest(keys)
    assert len(second) == len(keys)
    assert second[keys[0]].value == -1.0  # the store's older point did not replace the live one
    assert second[keys[-1]] == Reading(keys[-1], T0 + len(keys) - 1, float(len(keys) - 1))
