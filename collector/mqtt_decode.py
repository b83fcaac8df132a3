"""Turn an MQTT message into readings by the site's topic maps; every value that fails says why.

One message may feed several sensors; a value that cannot be read (missing field, wrong type,
unknown state name, unknown sensor) is rejected with a reason while its neighbours are kept.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pumpwatch.catalog import SensorCatalog
from pumpwatch.readings import Reading
from pumpwatch.site import MqttMapping, MqttValue, PayloadFormat, ValueType

MAX_PAYLOAD = 256 * 1024  # bytes; larger messages are rejected as `too_large`
TOPIC_CACHE = 10_000  # topics whose sensor ids are remembered
MIN_STEP = 1e-6  # seconds between two readings of one sensor (timestamps stay unique)

_TRUE = {"true", "on", "yes", "1", "wet", "open"}
_FALSE = {"false", "off", "no", "0", "dry", "closed"}


@dataclass
class Decoded:
    """The readings a message carried and the values it could not deliver, as (reason, detail)."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class ValueRejected(Exception):
    """One value of a message cannot be read; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class _Route:
    mapping: MqttMapping
    pattern: re.Pattern[str]


class MqttDecoder:
    """Matches topics against the site's maps and reads the mapped values."""

    def __init__(self, mappings: tuple[MqttMapping, ...], catalog: SensorCatalog) -> None:
        self.catalog = catalog
        self.routes = [_Route(m, _topic_pattern(m.topic)) for m in mappings]
        self._last_ts: dict[str, float] = {}
        self._sensor_ids: dict[tuple[int, str], list[tuple[MqttValue, str]]] = {}

    def decode(self, topic: str, payload: bytes | bytearray, now: float) -> Decoded:
        """Readings from one message received at `now` (epoch seconds)."""
        out = Decoded()
        matches = [(route, match) for route in self.routes if (match := route.pattern.fullmatch(topic))]
        if not matches:
            out.rejected.append(("unknown_topic", topic))
            return out
        if len(payload) > MAX_PAYLOAD:
            out.rejected.append(("too_large", f"{topic}: {len(payload)} bytes > {MAX_PAYLOAD}"))
            return out
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            out.rejected.append(("malformed", f"{topic}: payload is not UTF-8"))
            return out
        for route, match in matches:
            self._decode_mapping(route.mapping, match.groupdict(), topic, text, now, out)
        return out

    def _decode_mapping(self, mapping: MqttMapping, names: dict[str, str], topic: str, text: str,
                        now: float, out: Decoded) -> None:
        document: Any = text
        if mapping.format is PayloadFormat.JSON:
            try:
                document = json.loads(text)
            except (ValueError, RecursionError) as err:
                out.rejected.append(("malformed", f"{topic}: not JSON ({err})"))
                return
        ts = now
        if mapping.timestamp_field is not None:
            try:
                ts = _timestamp(_field(document, mapping.timestamp_field))
            except ValueRejected as err:
                out.rejected.append(("bad_timestamp", f"{topic}: {err}; receive time used"))
        for value, sensor in self._targets(mapping, topic, names):
            try:
                reading = self._read_value(mapping, value, sensor, document, ts)
            except ValueRejected as err:
                out.rejected.append((err.reason, f"{topic} -> {sensor}: {err}"))
                continue
            out.readings.append(reading)

    def _targets(self, mapping: MqttMapping, topic: str,
                 names: dict[str, str]) -> list[tuple[MqttValue, str]]:
        """Each value of a mapping with the sensor id it feeds on this topic (worked out once per topic)."""
        key = (id(mapping), topic)
        targets = self._sensor_ids.get(key)
        if targets is None:
            targets = [(v, v.sensor.format_map(names) if names else v.sensor) for v in mapping.values]
            if len(self._sensor_ids) >= TOPIC_CACHE:
                self._sensor_ids.clear()  # bounded: topics nobody maps must not grow it without end
            self._sensor_ids[key] = targets
        return targets

    def _read_value(self, mapping: MqttMapping, value: MqttValue, sensor: str, document: Any,
                    ts: float) -> Reading:
        info = self.catalog.get(sensor)
        if info is None:
            raise ValueRejected("unknown_sensor", f"no sensor {sensor!r} in the site")
        raw = _field(document, value.field) if value.field is not None else document
        state: str | None = None
        match mapping.value_type(value):
            case ValueType.NUMBER:
                number = _number(raw) * value.scale + value.offset
            case ValueType.BOOLEAN:
                number = 1.0 if _boolean(raw) else 0.0
            case ValueType.ENUM:
                number, state = _enum(raw, info.sensor.state_codes)
        if not math.isfinite(number):
            raise ValueRejected("not_finite", f"value {raw!r} is not finite")
        last = self._last_ts.get(sensor)
        if last is not None and ts <= last and ts > last - 1.0:
            ts = last + MIN_STEP  # two messages in the same instant: keep both points
        self._last_ts[sensor] = max(ts, last or ts)
        return Reading(sensor, ts, number, state=state)


def _topic_pattern(topic: str) -> re.Pattern[str]:
    parts = []
    for level in topic.split("/"):
        if level == "+":
            parts.append("[^/]+")
        elif level == "#":
            parts.append(".*")
        elif level.startswith("{") and level.endswith("}"):
            parts.append(f"(?P<{level[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(level))
    return re.compile("/".join(parts))


def _field(document: Any, path: str) -> Any:
    """Follow a dotted path through objects and list indexes: `DS18B20.Temperature`, `temps.0`."""
    node = document
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
            node = node[int(key)]
        else:
            raise ValueRejected("missing_field", f"no field {path!r}")
    return node


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or raw is None:
        raise ValueRejected("wrong_type", f"expected a number, got {json.dumps(raw)}")
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            pass
    raise ValueRejected("wrong_type", f"expected a number, got {_short(raw)}")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueRejected("wrong_type", f"expected a boolean, got {_short(raw)}")


def _enum(raw: Any, codes: dict[str, int]) -> tuple[float, str]:
    if isinstance(raw, str):
        wanted = raw.strip().upper()
        for name, code in codes.items():
            if name.upper() == wanted:
                return float(code), name
        raise ValueRejected("unknown_state", f"state {_short(raw)} is not one of {', '.join(codes)}")
    if isinstance(raw, int) and not isinstance(raw, bool):
        for name, code in codes.items():
            if code == raw:
                return float(code), name
        raise ValueRejected("unknown_state", f"state code {raw} is not one of {sorted(codes.values())}")
    raise ValueRejected("wrong_type", f"expected a state name, got {_short(raw)}")


def _timestamp(raw: Any) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
        return raw / 1000.0 if raw > 1e11 else float(raw)  # epoch milliseconds or seconds
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
            raise ValueRejected("bad_timestamp", f"timestamp {raw!r} has no time zone")
    raise ValueRejected("bad_timestamp", f"timestamp {_short(raw)} is not epoch seconds or ISO 8601")


def _short(raw: Any) -> str:
    text = json.dumps(raw, ensure_ascii=False) if not isinstance(raw, str) else repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
