"""The unit of data that flows from sources to stores, rules and screens."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class Quality(IntEnum):
    """How far a reading can be trusted; stored with the value."""

    GOOD = 0
    OUT_OF_RANGE = 1  # outside the sensor's valid range: kept, flagged, alarm-able
    DEVICE_ERROR = 2  # the device answered with an exception for this point
    STALE = 3  # the source is offline; the value is the last one known
    COUNTER_RESET = 4  # a counter (energy) fell: meter replaced or rolled over; a new baseline, not use


class Reading(NamedTuple):
    """One value of one sensor at one instant (epoch seconds, taken at poll or receive time).

    A named tuple rather than a frozen dataclass: tens of thousands are built per second on the
    intake path, and a tuple is built in a third of the time while staying just as immutable.
    """

    sensor: str
    ts: float
    value: float
    quality: Quality = Quality.GOOD
    state: str | None = None  # the state's name for switch, run and leak sensors
