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
    """At most one alarm is open per asset (equipment, room or sensor id) and alarm type."""

    asset: str
    alarm_type: str

    def __str__(self) -> str:
        return f"{self.asset}/{self.alarm_type}"


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
