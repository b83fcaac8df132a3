"""The newest reading of each sensor, kept in memory from the live readings.

The live board asks for every sensor of a room many times a second; the series store answers such
"last value" queries slowly on long histories. The cache follows the live bus and asks the store
only for sensors it has not seen (at most once a minute per sensor). A caller waits for the store's answer
about a few sensors (a room, an estate: up to `ASK_AT_ONCE`); for more (the monitoring centre's overview of
every sensor of the portfolio, just after a start) the store is asked in the background, one such question
at a time, and the caller gets what the cache has: the next computation has the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from pumpwatch.bus import LiveBus
from pumpwatch.errors import StoreUnavailable
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore

log = logging.getLogger(__name__)

RETRY_MISSING = 60.0  # seconds before the store is asked again for a sensor it did not know
ASK_AT_ONCE = 500  # sensors a caller waits for the store to answer about; more are asked in the background


class LatestCache:
    """Newest reading per sensor; `run` follows the live bus until cancelled."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self.values: dict[str, Reading] = {}
        self._asked: dict[str, float] = {}
        self._asking: asyncio.Task[None] | None = None  # the background question, if one is under way

    def update(self, readings: Sequence[Reading]) -> None:
        """Keep the newest reading of each sensor."""
        for r in readings:
            known = self.values.get(r.sensor)
            if known is None or r.ts >= known.ts:
                self.values[r.sensor] = r

    async def run(self, bus: LiveBus[Sequence[Reading]]) -> None:
        """Follow the live bus (bounded queue: a burst it misses is filled in by the next readings)."""
        subscription = bus.subscribe("latest-cache", maxsize=10_000)
        try:
            while True:
                self.update(await subscription.get())
        finally:
            subscription.close()

    async def latest(self, sensors: Sequence[str]) -> dict[str, Reading]:
        """The newest reading of each of `sensors` that has one."""
        now = time.monotonic()
        missing = [s for s in sensors if s not in self.values and now - self._asked.get(s, -RETRY_MISSING)
                   >= RETRY_MISSING]
        if missing and len(missing) <= ASK_AT_ONCE:
            for sensor in missing:
                self._asked[sensor] = now
            self.update(list((await self.store.latest(missing)).values()))
        elif missing and self._asking is None:
            for sensor in missing:
                self._asked[sensor] = now
            self._asking = asyncio.create_task(self._ask(missing))
        return {s: self.values[s] for s in sensors if s in self.values}

    async def asked(self) -> None:
        """Wait for the background question under way, if any."""
        if self._asking is not None:
            await asyncio.wait([self._asking])

    async def _ask(self, sensors: list[str]) -> None:
        try:
            self.update(list((await self.store.latest(sensors)).values()))
        except StoreUnavailable as err:
            log.warning("the newest readings of %d sensors: %s (asked again in %g s)", len(sensors), err,
                        RETRY_MISSING)
        finally:
            self._asking = None
