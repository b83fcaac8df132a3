"""Service levels in the site file: how soon a task must be responded to and resolved, per priority.

Response is someone taking the task on (it is assigned, or a technician starts it); resolution is the
completion report signed by the technician. With no `sla:` section a site gets the defaults below; a
priority may set either limit alone and keeps the default of the other.

```yaml
sla:
  reminder_at: 0.8          # the reminder goes out when this share of a limit has passed
  critical: {response: 15min, resolution: 4h}
  low: {resolution: 14d}
```
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from pumpwatch.model_base import Model

PRIORITIES = ("critical", "high", "normal", "low")  # most urgent first
# The response limits are the regulation's (30 min / 2 h / 24 h; low is ours). Resolution: a critical fault
# (no water, a fire pump down) is fixed within a shift; a high one within the day; a normal one within
# three days, and low work (cleaning, labels) within the week the weekly sweep comes round again.
DEFAULT_RESPONSE = {"critical": timedelta(minutes=30), "high": timedelta(hours=2),
                    "normal": timedelta(hours=24), "low": timedelta(hours=72)}
DEFAULT_RESOLUTION = {"critical": timedelta(hours=4), "high": timedelta(hours=24),
                      "normal": timedelta(hours=72), "low": timedelta(days=7)}
MAX_LIMIT = timedelta(days=366)

_UNITS = {"min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(min|m|h|d)\s*$")


def parse_duration(value: Any) -> Any:
    """A duration written like '30min', '2h' or '7d' as a timedelta; other types are left to pydantic."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        raise ValueError(f"{value!r} has no unit: write a duration like '30min', '2h' or '7d'")
    if not isinstance(value, str):
        raise ValueError("write a duration like '30min', '2h' or '7d'")
    found = _DURATION.match(value)
    if found is None:
        raise ValueError(f"{value!r} is not a duration: write it like '30min', '2h' or '7d'")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r}: a limit must be longer than zero")
    limit = timedelta(seconds=seconds)
    if limit > MAX_LIMIT:
        raise ValueError(f"{value!r}: a limit may be at most 366 days")
    return limit


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def describe(limit: timedelta) -> str:
    """A limit as the site file would write it: '30min', '2h', '7d'."""
    seconds = limit.total_seconds()
    for unit, size in (("d", 86400.0), ("h", 3600.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds / 60:g}min"


class PriorityLimits(Model):
    """The limits of one priority; an omitted one keeps the default."""

    response: Duration | None = Field(None, description="assigned or started within this")
    resolution: Duration | None = Field(None, description="completed (technician's signature) within this")


class SlaSettings(Model):
    """Response and resolution limits per task priority, and when the reminder goes out."""

    reminder_at: float = Field(0.8, gt=0, lt=1, allow_inf_nan=False,
                               description="share of a limit after which the reminder goes out")
    critical: PriorityLimits = PriorityLimits()
    high: PriorityLimits = PriorityLimits()
    normal: PriorityLimits = PriorityLimits()
    low: PriorityLimits = PriorityLimits()

    def response(self, priority: str) -> timedelta:
        """The response limit of `priority` (the site's, else the default)."""
        return self._limits(priority).response or DEFAULT_RESPONSE[priority]

    def resolution(self, priority: str) -> timedelta:
        """The resolution limit of `priority` (the site's, else the default)."""
        return self._limits(priority).resolution or DEFAULT_RESOLUTION[priority]

    def _limits(self, priority: str) -> PriorityLimits:
        if priority not in PRIORITIES:
            raise KeyError(f"unknown priority {priority!r}")
        limits: PriorityLimits = getattr(self, priority)
        return limits

    @model_validator(mode="after")
    def _consistent(self) -> SlaSettings:
        for priority in PRIORITIES:
            response, resolution = self.response(priority), self.resolution(priority)
            if response > resolution:
                raise ValueError(f"{priority}: the response limit ({describe(response)}) is longer than the "
                                 f"resolution limit ({describe(resolution)}); a task is taken on before it "
                                 "is finished")
        # A more urgent priority never gets more time: a swapped pair is almost always a typo.
        for urgent, calmer in itertools.pairwise(PRIORITIES):
            for name, limit in (("response", self.response), ("resolution", self.resolution)):
                if limit(urgent) > limit(calmer):
                    raise ValueError(f"{urgent} {name} ({describe(limit(urgent))}) is longer than {calmer} "
                                     f"{name} ({describe(limit(calmer))}); more urgent tasks get less time")
        return self
