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

    def to_json(self) -> dict[str, object]:
        """The event as a JSON-ready dict (bus, MQTT, live stream)."""
        return {"action": self.action.value, "asset": self.key.asset, "alarm_type": self.key.alarm_type,
                "severity": self.severity.value, "ts": self.ts, "room": self.room,
                "message": {"zh": self.message.zh, "en": self.message.en}, "value": self.value,
                "sensor": self.sensor}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> AlarmEvent:
        """Parse `to_json` output; ValueError/KeyError/TypeError on a malformed dict."""
        message = data["message"]
        if not isinstance(message, dict):
            raise TypeError("message must be an object with zh and en")
        value = data.get("value")
        sensor = data.get("sensor")
        return cls(action=AlarmAction(str(data["action"])),
                   key=AlarmKey(str(data["asset"]), str(data["alarm_type"])),
                   severity=Severity(str(data["severity"])),
                   ts=float(str(data["ts"])),
                   room=str(data["room"]),
                   message=Text(zh=str(message["zh"]), en=str(message["en"])),
                   value=None if value is None else float(str(value)),
                   sensor=None if sensor is None else str(sensor))
