"""The unit of data that flows from sources to stores, rules and screens."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Quality(IntEnum):
    """How far a reading can be trusted; stored with the value."""

    GOOD = 0
    OUT_OF_RANGE = 1  # outside the sensor's valid range: kept, flagged, alarm-able
    DEVICE_ERROR = 2  # the device answered with an exception for this point
    STALE = 3  # the source is offline; the value is the last one known


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one sensor at one instant (epoch seconds, taken at poll or receive time)."""

    sensor: str
    ts: float
    value: float
    quality: Quality = Quality.GOOD
    state: str | None = None  # the state's name for switch, run and leak sensors
