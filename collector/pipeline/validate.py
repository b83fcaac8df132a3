"""Judge each reading against its sensor: reject what cannot be stored, flag what is suspect."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pumpwatch.catalog import SensorCatalog, SensorInfo
from pumpwatch.readings import Quality, Reading

MAX_FUTURE_SECONDS = 86_400.0  # a device clock a day ahead is wrong, not early


@dataclass
class Verdict:
    """Readings to keep (some flagged) and what was rejected, by reason."""

    kept: list[Reading] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    flagged: Counter[Quality] = field(default_factory=Counter)


class Validator:
    """Checks type, finiteness, timestamp, known sensor, valid range and known state."""

    def __init__(self, catalog: SensorCatalog) -> None:
        self.catalog = catalog

    def judge(self, readings: Sequence[Reading], now: float) -> Verdict:
        """Sort readings into kept and rejected; out-of-range values are kept and flagged."""
        verdict = Verdict()
        latest_ok = now + MAX_FUTURE_SECONDS
        for r in readings:
            info = self.catalog.get(r.sensor)
            if info is None:
                verdict.rejected["unknown_sensor"] += 1
                continue
            value = r.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                verdict.rejected["wrong_type"] += 1
                continue
            if not math.isfinite(value):
                verdict.rejected["not_finite"] += 1
                continue
            ts = r.ts
            if not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts <= 0 or ts > latest_ok:
                verdict.rejected["bad_timestamp"] += 1
                continue
            quality = r.quality
            if quality is Quality.GOOD and not _plausible(info, value):
                quality = Quality.OUT_OF_RANGE
            if quality is not Quality.GOOD:
                verdict.flagged[quality] += 1
            state = r.state
            if state is None and info.states:
                state = info.states.get(int(value))
            if quality is not r.quality or state != r.state or type(value) is not float:
                r = Reading(r.sensor, float(ts), float(value), quality, state)
            verdict.kept.append(r)
        return verdict


def _plausible(info: SensorInfo, value: float) -> bool:
    """Inside the valid range, and a known code for state sensors."""
    if info.low is not None and value < info.low:
        return False
    if info.high is not None and value > info.high:
        return False
    return not info.states or (value == int(value) and int(value) in info.states)
