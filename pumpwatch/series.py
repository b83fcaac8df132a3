"""The series store interface: InfluxDB (v1 HTTP API) or the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pumpwatch.readings import Reading


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One step of a downsampled history: the step's start time and the stats inside it."""

    ts: float
    mean: float
    min: float
    max: float
    count: int


class SeriesStore(Protocol):
    """Where readings are kept. Writing the same (sensor, ts) twice keeps one point (idempotent)."""

    async def start(self) -> None:
        """Connect, and create the database where allowed."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def write(self, readings: Sequence[Reading]) -> None:
        """Store a batch; raise StoreUnavailable (retry) or StoreRejected (do not retry)."""
        ...

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        """The newest reading of each sensor (all sensors when None)."""
        ...

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        """Readings of one sensor in [start, end), downsampled to `step` seconds."""
        ...

    async def count(self, sensor: str | None = None) -> int:
        """How many points are stored (of one sensor, or all): used by checks and tests."""
        ...
