"""Wireless sensors: publish the site's MQTT-sourced sensors in the payload shapes the site maps."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.site import (
    EntryKey,
    MqttValue,
    PayloadFormat,
    Sensor,
    Site,
    ValueType,
    parse_field_path,
)
from pumpwatch.wireless import Device, plan_devices

__all__ = ["Device", "MqttSensors", "encode_payload", "plan_devices"]

log = logging.getLogger(__name__)


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
