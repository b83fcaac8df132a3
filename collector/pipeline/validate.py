"""Judge each reading against its sensor: reject what cannot be stored, flag what is suspect.

Counters (energy) only rise. A value below the sensor's last one is a reset (meter replaced, or
rolled over at its maximum): it is stored as read, flagged `COUNTER_RESET`, and starts a new
baseline. Whoever sums consumption adds the increases between readings and, at a reading flagged
`COUNTER_RESET`, starts again from its value: a reset is never taken as negative consumption.
The last value is remembered per sensor while the collector runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pumpwatch.catalog import SensorCatalog, SensorInfo
from pumpwatch.readings import Quality, Reading

MAX_FUTURE_SECONDS = 86_400.0  # a device clock a day ahead is wrong, not early


@dataclass(slots=True)
class Verdict:
    """Readings to keep (some flagged) and what was rejected, by reason (counts; a reason not met is absent).

    Plain dicts, made by the validator: one verdict per read from the socket, and two `Counter`s cost
    more than the judging of a one-value message.
    """

    kept: list[Reading]
    rejected: dict[str, int]
    flagged: dict[Quality, int]


class Validator:
    """Checks type, finiteness, timestamp, known sensor, valid range and known state."""

    def __init__(self, catalog: SensorCatalog) -> None:
        self.catalog = catalog
        self._counters: dict[str, tuple[float, float]] = {}  # counter sensor -> (ts, value) last seen

    def judge(self, readings: Sequence[Reading], now: float) -> Verdict:
        """Sort readings into kept and rejected; out-of-range values are kept and flagged."""
        verdict = Verdict([], {}, {})
        rejected = verdict.rejected
        kept = verdict.kept
        latest_ok = now + MAX_FUTURE_SECONDS
        get = self.catalog.get
        good = Quality.GOOD
        for r in readings:
            info = get(r.sensor)
            if info is None:
                rejected["unknown_sensor"] = rejected.get("unknown_sensor", 0) + 1
                continue
            value = r.value
            ts = r.ts
            bounds = info.range_only
            if (bounds is not None and type(value) is float and type(ts) is float and r.quality is good
                    and bounds[0] <= value <= bounds[1] and 0.0 < ts <= latest_ok):
                kept.append(r)  # the common case, judged as below would judge it: a good value in range
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                rejected["wrong_type"] = rejected.get("wrong_type", 0) + 1
                continue
            if not math.isfinite(value):
                rejected["not_finite"] = rejected.get("not_finite", 0) + 1
                continue
            if not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts <= 0 or ts > latest_ok:
                rejected["bad_timestamp"] = rejected.get("bad_timestamp", 0) + 1
                continue
            quality = r.quality
            if quality is Quality.GOOD and not _plausible(info, value):
                quality = Quality.OUT_OF_RANGE
            if info.counter and quality in _COUNTED and self._fell(r.sensor, ts, value):
                quality = Quality.COUNTER_RESET
            if quality is not Quality.GOOD:
                verdict.flagged[quality] = verdict.flagged.get(quality, 0) + 1
            state = r.state
            if state is None and info.states:
                state = info.states.get(int(value))
                if state is None and info.open_codes and value == int(value):
                    state = f"UNKNOWN_{int(value)}"
            if quality is not r.quality or state != r.state or type(value) is not float:
                r = Reading(r.sensor, float(ts), float(value), quality, state)
            kept.append(r)
        return verdict

    def _fell(self, sensor: str, ts: float, value: float) -> bool:
        """Whether a counter reading is below the one before it (a late reading changes nothing)."""
        last = self._counters.get(sensor)
        if last is not None and ts < last[0]:
            return False
        self._counters[sensor] = (ts, value)
        return last is not None and value < last[1]


# Readings a counter's baseline follows: stale and device-error readings repeat old values; a reset
# flagged upstream (by an edge) is the new baseline here too.
_COUNTED = (Quality.GOOD, Quality.OUT_OF_RANGE, Quality.COUNTER_RESET)


def _plausible(info: SensorInfo, value: float) -> bool:
    """Inside the valid range, and a known code for state sensors (any integer for fault codes)."""
    if info.low is not None and value < info.low:
        return False
    if info.high is not None and value > info.high:
        return False
    if info.open_codes:
        return value == int(value)
    return not info.states or (value == int(value) and int(value) in info.states)
