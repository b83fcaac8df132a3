"""Which wireless device publishes which sensor on which topic, worked out from the site's topic maps.

The simulator publishes as these devices, and the broker's ACL (`pumpwatch.broker_acl`) lets each
topic map's identity publish exactly these topics: both read the site file the same way here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pumpwatch.site import MqttMapping, MqttValue, Sensor, Site, ValueType


@dataclass(frozen=True)
class Device:
    """One wireless device (or a gateway's topic for it): a topic and the sensors its messages carry."""

    topic: str
    mapping: MqttMapping
    values: tuple[tuple[MqttValue, Sensor], ...]


def plan_devices(site: Site) -> list[Device]:
    """Work out the topic and payload fields of every MQTT-sourced sensor from the topic maps.

    A template like `{device}` fits any sensor id, so each sensor goes to the value that fits it
    best: the value type must suit the sensor (boolean for two-state sensors, enum for state
    sensors, number otherwise), a JSON field named after a kind must name the sensor's kind, and
    the template with the most literal text wins; ties go to the earlier map.
    """
    devices: dict[str, Device] = {}
    for room, _eq, sensor in site.iter_sensors():
        if sensor.source != "mqtt":
            continue
        best: tuple[int, int, MqttMapping, MqttValue, str] | None = None
        for order, mapping in enumerate(site.mqtt):
            for value in mapping.values:
                bound = _match(value.sensor, sensor.id)
                if bound is None or not _suits(mapping, value, sensor):
                    continue
                topic = _fill(mapping, bound, room.id, sensor.id)
                if topic is None:
                    continue
                literal = len(re.sub(r"\{[^}]*\}", "", value.sensor))
                if best is None or (literal, -order) > (best[0], best[1]):
                    best = (literal, -order, mapping, value, topic)
        if best is None:
            continue
        _l, _o, mapping, value, topic = best
        device = devices.get(topic)
        entry = ((value, sensor),)
        devices[topic] = (Device(topic, mapping, device.values + entry) if device
                          else Device(topic, mapping, entry))
    return list(devices.values())


_FIELD_KINDS = {"temp": "temperature", "leak": "leak", "battery": "battery", "level": "level",
                "pressure": "pressure", "current": "current", "voltage": "voltage"}


def _suits(mapping: MqttMapping, value: MqttValue, sensor: Sensor) -> bool:
    states = sensor.state_codes
    match mapping.value_type(value):
        case ValueType.BOOLEAN:
            if sorted(states.values()) != [0, 1]:
                return False
        case ValueType.ENUM:
            if not states:
                return False
        case ValueType.NUMBER:
            if states:
                return False
    field = (value.field or "").lower()
    for hint, kind in _FIELD_KINDS.items():
        if hint in field and not str(sensor.kind).startswith(kind) and not str(sensor.kind).endswith(kind):
            return False
    return True


def _match(template: str, sensor_id: str) -> dict[str, str] | None:
    """Bind a sensor template like '{device}-battery' against a sensor id."""
    parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", template)
    pattern = "".join(f"(?P<{p[1:-1]}>[^/]+?)" if p.startswith("{") else re.escape(p)
                      for p in parts)
    m = re.fullmatch(pattern, sensor_id)
    return m.groupdict() if m else None


def _fill(mapping: MqttMapping, bound: dict[str, str], room_id: str, sensor_id: str) -> str | None:
    levels = []
    for level in mapping.topic.split("/"):
        if level.startswith("{"):
            name = level[1:-1]
            levels.append(bound.get(name, room_id if name == "room" else sensor_id))
        elif level in ("+", "#"):
            return None  # an anonymous wildcard gives the simulator no topic to publish on
        else:
            levels.append(level)
    return "/".join(levels)
