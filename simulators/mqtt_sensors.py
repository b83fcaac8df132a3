"""Wireless sensors: publish the site's MQTT-sourced sensors in the payload shapes the site maps."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.site import (
    EntryKey,
    MqttMapping,
    MqttValue,
    PayloadFormat,
    Sensor,
    Site,
    ValueType,
    parse_field_path,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """One simulated wireless device: a topic and the sensors its messages carry."""

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


def encode_payload(device: Device, value_of: dict[str, float], now: float) -> bytes:
    """The message a real device would send for the given sensor values."""
    mapping = device.mapping
    if mapping.format is not PayloadFormat.JSON:
        value, sensor = device.values[0]
        return _plain(mapping.value_type(value), value, sensor, value_of[sensor.id]).encode()
    doc: dict[str, Any] = {}
    for value, sensor in device.values:
        assert value.field is not None  # a JSON mapping always names a field (site validation)
        _set_path(doc, value.field, _json_value(mapping.value_type(value), value, sensor,
                                                value_of[sensor.id]))
    if mapping.timestamp_field:
        _set_path(doc, mapping.timestamp_field, datetime.fromtimestamp(now, UTC).isoformat())
    if mapping.topic.startswith("zigbee2mqtt/"):
        doc.setdefault("linkquality", 120)
    if any("Temperature" in (v.field or "") for v, _s in device.values):
        doc.setdefault("TempUnit", "C")
    return json.dumps(doc, ensure_ascii=False).encode()


def _raw(value: MqttValue, x: float) -> float:
    return round((x - value.offset) / value.scale, 3)


def _state_name(sensor: Sensor, x: float) -> str:
    names = {code: name for name, code in sensor.state_codes.items()}
    return names.get(round(x), str(round(x)))


def _json_value(vtype: ValueType, value: MqttValue, sensor: Sensor, x: float) -> Any:
    if vtype is ValueType.BOOLEAN:
        return x >= 0.5
    if vtype is ValueType.ENUM:
        return _state_name(sensor, x)
    return _raw(value, x)


def _plain(vtype: ValueType, value: MqttValue, sensor: Sensor, x: float) -> str:
    if vtype is ValueType.BOOLEAN:
        return "true" if x >= 0.5 else "false"
    if vtype is ValueType.ENUM:
        return _state_name(sensor, x)
    return f"{_raw(value, x):g}"


def _set_path(doc: dict[str, Any], path: str, item: Any) -> None:
    steps = parse_field_path(path)
    node: Any = doc
    for i, step in enumerate(steps[:-1]):
        if isinstance(step, EntryKey):  # the entry of a gateway batch array with this id
            entry = next((e for e in node if e.get(step.key) == step.value), None)
            if entry is None:
                entry = {step.key: step.value}
                node.append(entry)
            node = entry
        else:
            node = node.setdefault(step, [] if isinstance(steps[i + 1], EntryKey) else {})
    last = steps[-1]
    assert isinstance(last, str), "a field path ends with a name"
    node[last] = item


class MqttSensors:
    """Publishes every simulated wireless device at QoS 1 through a paho client."""

    def __init__(self, site: Site, broker: BrokerAddress, client_id: str = "pumpwatch-sim") -> None:
        self.devices = plan_devices(site)
        self.broker = broker
        self.published = 0
        self._last: dict[str, bytes] = {}
        self.client = new_client(broker, client_id)

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself and resends QoS 1 messages."""
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        stop_client(self.client)

    def publish(self, value_of: dict[str, float], now: float, silent: set[str],
                only_changed: bool = False) -> int:
        """Publish each device whose sensors are not all silent; returns messages sent."""
        sent = 0
        for device in self.devices:
            if any(sensor.id in silent for _v, sensor in device.values):  # the device died
                continue
            payload = encode_payload(device, value_of, now)
            if only_changed and self._last.get(device.topic) == payload:
                continue
            self._last[device.topic] = payload
            info = self.client.publish(device.topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
                sent += 1  # queued: paho delivers it once connected
            else:
                log.warning("publish to %s failed: %s", device.topic, mqtt.error_string(info.rc))
        self.published += sent
        return sent
