"""The newest reading of each sensor, kept in memory from the live readings.

The live board asks for every sensor of a room many times a second; the series store answers such
"last value" queries slowly on long histories. The cache follows the live bus and asks the store
only for sensors it has not seen (at most once a minute per sensor).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pumpwatch.bus import LiveBus
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore

RETRY_MISSING = 60.0  # seconds before the store is asked again for a sensor it did not know


class LatestCache:
    """Newest reading per sensor; `run` follows the live bus until cancelled."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self.values: dict[str, Reading] = {}
        self._asked: dict[str, float] = {}

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
        if missing:
            for sensor in missing:
                self._asked[sensor] = now
            self.update(list((await self.store.latest(missing)).values()))
        return {s: self.values[s] for s in sensors if s in self.values}
