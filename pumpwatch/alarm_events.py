"""What alarm rules announce: an alarm raised, changed in severity, at a new peak, or cleared."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pumpwatch.site import Severity, Text

SEVERITY_RANK = {Severity.WARNING: 1, Severity.MINOR: 2, Severity.MAJOR: 3, Severity.CRITICAL: 4}


class AlarmAction(StrEnum):
    """The change an event reports."""

    RAISED = "raised"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    PEAK = "peak"  # a new worst value while the severity stays
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlarmKey:
    """At most one alarm is open per estate, asset (equipment, room or sensor id) and alarm type.

    Asset ids are unique within an estate only, so the estate is part of the key wherever the key
    leaves it (topics, the alarms table's one-active-alarm index). An empty estate is a key made
    before the estate was known (a test, an old alarm memory file): the receiver fills it in.
    """

    asset: str
    alarm_type: str
    estate: str = ""

    def __str__(self) -> str:
        """`asset/alarm_type`: the key within its estate (logs name the estate beside it)."""
        return f"{self.asset}/{self.alarm_type}"

    def in_estate(self, estate: str) -> AlarmKey:
        """The same key in `estate`."""
        return AlarmKey(self.asset, self.alarm_type, estate)


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of one alarm, as the rule engine saw it (ts in epoch seconds)."""

    action: AlarmAction
    key: AlarmKey
    severity: Severity
    ts: float
    room: str
    message: Text
    value: float | None = None  # the value that triggered (or the peak, for PEAK)
    sensor: str | None = None  # the main sensor the rule watches, if one

    @property
    def estate(self) -> str:
        """The estate the alarm belongs to (its key's)."""
        return self.key.estate

    def in_estate(self, estate: str) -> AlarmEvent:
        """The same event with its key in `estate` (for events made without it)."""
        return AlarmEvent(self.action, self.key.in_estate(estate), self.severity, self.ts, self.room,
                          self.message, self.value, self.sensor)
