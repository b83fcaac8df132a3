"""An edge's own health as readings: heartbeat, buffer depth, backlog age, clock offset, drops, version.

Every `heartbeat` seconds (the site's `edges:` entry) the edge hands readings of its own sensors
(`<edge>.heartbeat`, ...) to its pipeline, so they travel to the centre like any reading: the
centre stores them, shows them and alarms on them (a silent heartbeat raises `edge_offline`). While
the link is down they wait in the buffer with the rest; the uplink sends the newest first when it
comes back, so the centre learns the edge's state at once.
"""

from __future__ import annotations

import asyncio
import time
from importlib import metadata

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from collector.pipeline.sink import ReadingSink
from collector.stores.centre_link import CentreLink
from pumpwatch.clock import Clock
from pumpwatch.portfolio import sensor_key
from pumpwatch.readings import Reading
from pumpwatch.site import Edge

SOURCE = "edge-health"


def software_version() -> str:
    """The installed PumpWatch version (`0.0.0` when not installed as a package)."""
    try:
        return metadata.version("pumpwatch")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def version_number(version: str) -> float:
    """A version as one number, major * 1,000,000 + minor * 1,000 + patch (`0.1.0` is 1000)."""
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return float(parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2])


class EdgeHealth:
    """The source of an edge's health readings."""

    name = SOURCE

    def __init__(self, edge: Edge, sink: ReadingSink, buffer: DurableBuffer, link: CentreLink,
                 clock: Clock, metrics: CollectorMetrics, estate: str) -> None:
        self.edge = edge
        self.estate = estate
        self.sink = sink
        self.buffer = buffer
        self.link = link
        self.clock = clock
        self.metrics = metrics
        self.version = software_version()
        self._started = time.monotonic()

    async def run(self) -> None:
        """Report every heartbeat until cancelled."""
        while True:
            self.sink.accept(await asyncio.to_thread(self.readings), SOURCE)
            await asyncio.sleep(self.edge.heartbeat)

    def readings(self) -> list[Reading]:
        """One report: the edge's health now."""
        now = self.clock.now()
        oldest = self.buffer.oldest_ts()
        backlog = max(0.0, now - oldest) if oldest is not None else 0.0
        self.metrics.backlog_age.set(backlog)
        def sensor(name: str) -> str:
            return sensor_key(self.estate, self.edge.sensor_id(name))

        out = [Reading(sensor("heartbeat"), now, round(time.monotonic() - self._started, 3)),
               Reading(sensor("buffer_depth"), now, float(self.buffer.depth)),
               Reading(sensor("backlog_age"), now, round(backlog, 3)),
               Reading(sensor("dropped"), now, float(self.buffer.dropped)),
               Reading(sensor("version"), now, version_number(self.version), state=self.version)]
        if self.link.offset is not None:
            out.append(Reading(sensor("clock_offset"), now, round(self.link.offset, 6)))
        return out
