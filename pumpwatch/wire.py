"""The wire contract between processes: MQTT topics and the JSON of alarm events and live readings.

Collectors publish alarm events and live readings, API and scheduler processes subscribe to them,
the simulators listen on their control topic. Every side encodes and decodes here, so the format
changes in one place. Decoding refuses what does not fit with a `WireError` saying why.

| topic | QoS | payload |
|---|---|---|
| `pumpwatch/alarms/<room>/<asset>/<alarm type>` | 1 | one alarm event (`encode_alarm_event`) |
| `pumpwatch/live/<room>` | 0 | the newest reading of each sensor of the room (`encode_live_readings`) |
| `pumpwatch/sim/control` | 1 | `{"scenario": NAME, "target": ID, "on": true}` (`decode_sim_control`) |
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import Severity, Text

ALARM_TOPIC = "pumpwatch/alarms"
LIVE_TOPIC = "pumpwatch/live"
SIM_CONTROL_TOPIC = "pumpwatch/sim/control"


class WireError(ValueError):
    """A payload that does not follow the contract; the message says what is wrong."""


def alarm_topic(event: AlarmEvent) -> str:
    """The topic an alarm event is published on."""
    return f"{ALARM_TOPIC}/{event.room}/{event.key.asset}/{event.key.alarm_type}"


def live_topic(room: str) -> str:
    """The topic a room's live readings are published on."""
    return f"{LIVE_TOPIC}/{room}"


def is_live_topic(topic: str) -> bool:
    """Whether a topic carries live readings."""
    return topic.startswith(LIVE_TOPIC + "/")


# --- alarm events ----------------------------------------------------------------------------------


def alarm_event_json(event: AlarmEvent) -> dict[str, object]:
    """An alarm event as JSON-ready data (broker, live stream, the collector's alarm memory)."""
    return {"action": event.action.value, "asset": event.key.asset, "alarm_type": event.key.alarm_type,
            "severity": event.severity.value, "ts": event.ts, "room": event.room,
            "message": {"zh": event.message.zh, "en": event.message.en}, "value": event.value,
            "sensor": event.sensor}


def alarm_event_from_json(data: object) -> AlarmEvent:
    """Parse `alarm_event_json` output; `WireError` on anything else."""
    try:
        if not isinstance(data, dict):
            raise TypeError("an alarm event is a JSON object")
        message = data["message"]
        if not isinstance(message, dict):
            raise TypeError("message must be an object with zh and en")
        value = data.get("value")
        sensor = data.get("sensor")
        return AlarmEvent(action=AlarmAction(str(data["action"])),
                          key=AlarmKey(str(data["asset"]), str(data["alarm_type"])),
                          severity=Severity(str(data["severity"])),
                          ts=_finite(data["ts"], "ts"),
                          room=str(data["room"]),
                          message=Text(zh=str(message["zh"]), en=str(message["en"])),
                          value=None if value is None else _finite(value, "value"),
                          sensor=None if sensor is None else str(sensor))
    except KeyError as err:
        raise WireError(f"alarm event without {err.args[0]!r}") from err
    except (ValueError, TypeError) as err:
        raise WireError(f"malformed alarm event: {err}") from err


def encode_alarm_event(event: AlarmEvent) -> bytes:
    """The payload of an alarm event on the broker (UTF-8 JSON, Chinese kept readable)."""
    return json.dumps(alarm_event_json(event), ensure_ascii=False).encode()


def decode_alarm_event(payload: bytes | bytearray | str) -> AlarmEvent:
    """An alarm event from its payload; `WireError` when it is not one."""
    return alarm_event_from_json(_json(payload))


# --- live readings ---------------------------------------------------------------------------------


def reading_json(r: Reading) -> dict[str, object]:
    """A reading as JSON-ready data."""
    return {"sensor": r.sensor, "ts": r.ts, "value": r.value, "quality": int(r.quality), "state": r.state}


def encode_live_readings(readings: Sequence[Reading]) -> bytes:
    """The payload of one room's live readings."""
    return json.dumps([reading_json(r) for r in readings]).encode()


def decode_live_readings(payload: bytes | bytearray | str) -> list[Reading]:
    """Live readings from their payload; `WireError` when any entry is malformed (none is taken then)."""
    data = _json(payload)
    if not isinstance(data, list):
        raise WireError("live readings are a JSON array")
    try:
        return [Reading(str(r["sensor"]), _finite(r["ts"], "ts"), float(r["value"]),
                        Quality(int(r["quality"])), None if r.get("state") is None else str(r["state"]))
                for r in data]
    except KeyError as err:
        raise WireError(f"live reading without {err.args[0]!r}") from err
    except (ValueError, TypeError, AttributeError) as err:
        raise WireError(f"malformed live reading: {err}") from err


# --- simulator control -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimControl:
    """Switch a fault scenario on or off, optionally for one target (room, pump, sensor, device)."""

    scenario: str
    on: bool = True
    target: str | None = None


def decode_sim_control(payload: bytes | bytearray | str) -> SimControl:
    """A simulator control command; `WireError` when malformed."""
    data = _json(payload)
    if not isinstance(data, dict) or not isinstance(data.get("scenario"), str):
        raise WireError('a control command is {"scenario": NAME, "target": ID, "on": true|false}')
    target = data.get("target")
    return SimControl(scenario=data["scenario"], on=bool(data.get("on", True)),
                      target=None if target is None else str(target))


def encode_sim_control(command: SimControl) -> bytes:
    """The payload of a simulator control command."""
    return json.dumps({"scenario": command.scenario, "on": command.on, "target": command.target}).encode()


def _json(payload: bytes | bytearray | str) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError(f"not JSON: {err}") from err


def _finite(value: object, name: str) -> float:
    number = float(str(value))
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number
