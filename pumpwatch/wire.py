"""The wire contract between processes: MQTT topics and the JSON of alarm events and live readings.

Collectors publish alarm events and live readings, API and scheduler processes subscribe to them,
the simulators listen on their control topic. Every side encodes and decodes here, so the format
changes in one place. Decoding refuses what does not fit with a `WireError` saying why.

| topic | QoS | payload |
|---|---|---|
| `pumpwatch/alarms/<estate>/<room>/<asset>/<alarm type>` | 1 | one alarm event (`encode_alarm_event`) |
| `pumpwatch/live/<estate>/<room>` | 0 | the newest reading of each sensor of a room (`encode_live_readings`)|
| `pumpwatch/sim/control` | 1 | `{"scenario": NAME, "target": ID, "on": true}` (`decode_sim_control`) |

Across processes the alarm events and live readings travel signed (`pumpwatch.signing`: a header line
before the payload); a receiver refuses with a `Refused` and its `Refusal` what is forged, replayed,
signed by an unknown key, or about an estate, asset or room the deployment does not have (`SiteAssets`).

Ids are unique within an estate only: the estate is a level of every topic, a field of every alarm
event, and live readings carry the sensor ids of the topic's estate.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.portfolio import Portfolio, as_portfolio, sensor_key
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import Severity, Site, Text

_fast_dumps: Callable[[Any], bytes] | None
_fast_loads: Callable[[bytes | bytearray | str], Any] | None
try:
    from orjson import dumps as _fast_dumps
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps the fallback importable
    _fast_dumps = _fast_loads = None

ALARM_TOPIC = "pumpwatch/alarms"
LIVE_TOPIC = "pumpwatch/live"
GROUP_TOPIC = "pumpwatch/collectors"  # a shared-subscription group's presence (`collector.group`)
SIM_CONTROL_TOPIC = "pumpwatch/sim/control"
ALARM_STREAM = "alarm"  # the sequence streams of signed messages (`pumpwatch.signing`)
LIVE_STREAM = "live"


class WireError(ValueError):
    """A payload that does not follow the contract; the message says what is wrong."""


class Refusal(StrEnum):
    """Why a receiver refused a well-formed message (the `reason` of `pumpwatch_wire_refused_total`)."""

    FORGED = "forged"  # unsigned where signatures are required, a bad signature, a key out of its place
    REPLAYED = "replayed"  # a sequence taken before, or older than the stream allows
    UNKNOWN_KEY = "unknown_key"  # signed with a key this receiver does not trust
    UNKNOWN_ASSET = "unknown_asset"  # an estate, room, asset or sensor the deployment does not have


class Refused(WireError):
    """A message refused for a `Refusal`; the text says what was wrong with it."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


def alarm_topic(event: AlarmEvent) -> str:
    """The topic an alarm event is published on; ValueError for an event without its estate."""
    if not event.key.estate:
        raise ValueError(f"alarm event {event.key} has no estate: it cannot leave its process")
    return f"{ALARM_TOPIC}/{event.key.estate}/{event.room}/{event.key.asset}/{event.key.alarm_type}"


def room_alarm_topics(estate: str, room: str) -> str:
    """The topic filter of every alarm event of one room."""
    return f"{ALARM_TOPIC}/{estate}/{room}/#"


def live_topic(estate: str, room: str) -> str:
    """The topic a room's live readings are published on."""
    return f"{LIVE_TOPIC}/{estate}/{room}"


def is_live_topic(topic: str) -> bool:
    """Whether a topic carries live readings."""
    return topic.startswith(LIVE_TOPIC + "/")


# --- alarm events ----------------------------------------------------------------------------------


def alarm_event_json(event: AlarmEvent) -> dict[str, object]:
    """An alarm event as JSON-ready data (broker, live stream, the collector's alarm memory)."""
    return {"action": event.action.value, "estate": event.key.estate, "asset": event.key.asset,
            "alarm_type": event.key.alarm_type, "severity": event.severity.value, "ts": event.ts,
            "room": event.room,
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
        estate = data.get("estate")  # absent in a collector's alarm memory from before estates
        return AlarmEvent(action=AlarmAction(str(data["action"])),
                          key=AlarmKey(str(data["asset"]), str(data["alarm_type"]),
                                       "" if estate is None else str(estate)),
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
    """The payload of one room's live readings.

    Encoded by orjson where it is installed: 2-3 times faster than `json`, whose encoding was a tenth of
    the collector's CPU at 20,000 readings/s (the values are finite: the pipeline validated them).
    """
    rows = [{"sensor": r.sensor, "ts": r.ts, "value": r.value, "quality": int(r.quality), "state": r.state}
            for r in readings]
    if _fast_dumps is not None:
        return _fast_dumps(rows)
    return json.dumps(rows).encode()


_QUALITIES = {int(q): q for q in Quality}


def _quality(raw: Any) -> Quality:
    """A reading's quality from its number (a look-up: the enum's call costs more than the rest of it)."""
    found = _QUALITIES.get(raw)
    return found if found is not None else Quality(int(raw))


def decode_live_readings(payload: bytes | bytearray | str, estate: str | None = None) -> list[Reading]:
    """Live readings from their payload; `WireError` when any entry is malformed (none is taken then).

    With `estate`, each reading comes under its sensor key (`<estate>/<sensor>`) instead of the sensor id
    the payload names: built once, as a process that hands them on needs them.
    """
    data = _json(payload)
    if not isinstance(data, list):
        raise WireError("live readings are a JSON array")
    prefix = "" if estate is None else sensor_key(estate, "")
    try:
        return [Reading(prefix + str(r["sensor"]), _finite(r["ts"], "ts"), float(r["value"]),
                        _quality(r["quality"]),
                        None if r.get("state") is None else str(r["state"]))
                for r in data]
    except KeyError as err:
        raise WireError(f"live reading without {err.args[0]!r}") from err
    except (ValueError, TypeError, AttributeError) as err:
        raise WireError(f"malformed live reading: {err}") from err


# --- what the site has ----------------------------------------------------------------------------


class SiteAssets:
    """The estates, rooms, assets and sensors of a deployment: what an event or a reading may be about.

    An alarm's asset is a room, a piece of equipment, a sensor, a Modbus device, a duty group or an
    edge of its estate (the ids the alarm rules and the scheduler use), and it must be in the event's
    room.
    """

    def __init__(self, sites: Site | Portfolio) -> None:
        self.estates = {site.site.id: _EstateAssets(site) for site in as_portfolio(sites)}

    def check_event(self, event: AlarmEvent) -> None:
        """`Refused(UNKNOWN_ASSET)` unless the event's estate exists and its room holds its asset."""
        own = self.estates.get(event.key.estate)
        if own is None:
            raise Refused(Refusal.UNKNOWN_ASSET, f"no estate {event.key.estate!r} in the deployment")
        if event.room not in own.rooms:
            raise Refused(Refusal.UNKNOWN_ASSET, f"no room {event.room!r} in estate {event.key.estate!r}")
        if event.room not in own.assets.get(event.key.asset, ()):
            raise Refused(Refusal.UNKNOWN_ASSET, f"no asset {event.key.asset!r} in room {event.room!r} "
                                                 f"of estate {event.key.estate!r}")

    def check_readings(self, estate: str, room: str, readings: Sequence[Reading]) -> None:
        """`Refused(UNKNOWN_ASSET)` unless every reading is of a sensor of `room` in `estate`.

        A reading may name its sensor by id or by key (`<estate>/<sensor>`, of this estate only).
        """
        own = self.estates.get(estate)
        if own is None:
            raise Refused(Refusal.UNKNOWN_ASSET, f"no estate {estate!r} in the deployment")
        for r in readings:
            if own.sensors.get(r.sensor) != room:
                raise Refused(Refusal.UNKNOWN_ASSET, f"no sensor {r.sensor!r} in room {room!r} of "
                                                     f"estate {estate!r}")


class _EstateAssets:
    """One estate's rooms, each asset's rooms and each sensor's room."""

    def __init__(self, site: Site) -> None:
        self.rooms = frozenset(room.id for room in site.rooms)
        assets: dict[str, set[str]] = {}
        sensors: dict[str, str] = {}

        def add(asset: str, room: str) -> None:
            assets.setdefault(asset, set()).add(room)

        for room in site.rooms:
            add(room.id, room.id)
            for group in room.duty_groups:
                add(group.id, room.id)
        for room, equipment, sensor in site.iter_sensors():
            sensors[sensor.id] = room.id
            add(sensor.id, room.id)
            if equipment is not None:
                add(equipment.id, room.id)
        for room in site.rooms:
            for equipment in room.equipment:
                add(equipment.id, room.id)
        for device in site.modbus:
            for point in device.points:
                if point.sensor in sensors:
                    add(device.id, sensors[point.sensor])
            if device.room is not None:
                add(device.id, device.room)
        for edge in site.edges:
            for room_id in edge.rooms:
                add(edge.id, room_id)
        for rule in site.rules:  # a custom rule's asset the site has nowhere else sits in the first room
            if rule.asset not in assets:
                add(rule.asset, site.rooms[0].id)
        self.assets = {asset: frozenset(rooms) for asset, rooms in assets.items()}
        # by id and by key: ids never hold the key's separator, so neither can stand for the other
        self.sensors = sensors | {sensor_key(site.site.id, sensor): room for sensor, room in sensors.items()}


def live_place(topic: str) -> tuple[str, str]:
    """(estate, room) of a live-readings topic; `WireError` for one without both."""
    estate, slash, room = topic[len(LIVE_TOPIC) + 1:].partition("/")
    if not slash or not estate or not room or "/" in room:
        raise WireError(f"not a live-readings topic of an estate's room: {topic!r}")
    return estate, room


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
    if _fast_loads is not None:  # what orjson refuses (NaN literals, huge integers) `json` judges
        with contextlib.suppress(ValueError):
            return _fast_loads(payload)
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError(f"not JSON: {err}") from err


def _finite(value: object, name: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value  # the common case, without the round trip through str below
    number = float(str(value))  # through str, so True (float(True) is 1.0) is refused
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number
