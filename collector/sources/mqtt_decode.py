"""Turn an MQTT message into readings by the site's topic maps; every value that fails says why.

One message may feed several sensors; a value that cannot be read (missing field, wrong type,
unknown state name, unknown sensor) is rejected with a reason while its neighbours are kept.
A gateway batch such as `{"values": [{"id": "p1", "v": 0.42}, ...]}` is read by key
(`values[id=p1].v`), never by position: reordered entries keep their sensors, a missing entry is
rejected as `missing_entry`, and two entries with the same key as `ambiguous_entry`.

JSON is parsed once per message, by orjson when it is installed (a compiled parser, several times
faster than the standard library's) and by `json` otherwise. orjson is the stricter of the two: what it
refuses (NaN literals, integers beyond 64 bits, lone surrogates, a payload that is not UTF-8) goes the
pure-Python way, so both give the same readings and the same rejections (tests run both).

Timestamps stay unique per sensor: a reading in the same instant as the sensor's last one is moved a
microsecond on. In a shared-subscription group (`collector.group`) several collectors take one sensor's
messages, and two of them stamping the same instant would make one point overwrite the other in the
store; there each member has its own `TimeLane`, and its readings fall only on the microseconds of its
lane (at most `lanes - 1` µs later than received), so members never share a timestamp.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pumpwatch.catalog import SensorCatalog, SensorInfo
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import EntryKey, FieldStep, MqttMapping, PayloadFormat, ValueType, parse_field_path

_fast_loads: Callable[[bytes | bytearray], Any] | None
try:  # the compiled parser is optional: without it the standard library's parses every message
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps the fallback importable
    _fast_loads = None

MAX_PAYLOAD = 256 * 1024  # bytes; larger messages are rejected as `too_large`
TOPIC_CACHE = 10_000  # topics whose sensor ids are remembered
MIN_STEP = 1e-6  # seconds between two readings of one sensor (timestamps stay unique)
LANE_HORIZON = 1e11  # seconds (year 5138): past it an instant keeps no lane (`TimeLane`)

_TRUE = {"true", "on", "yes", "1", "wet", "open"}
_FALSE = {"false", "off", "no", "0", "dry", "closed"}


class TimeLane:
    """Which microseconds this collector's MQTT readings may fall on: those equal to `index` modulo `lanes`.

    One lane of one (the default) is every microsecond. Changed at any time by the group's presence
    (another thread): a message's readings may then fall on the old lane and the new one, each apart from
    the other members'. An instant no clock can give (not finite, or past `LANE_HORIZON`) is left as it
    is: the validator rejects it as a bad timestamp.
    """

    def __init__(self, lanes: int = 1, index: int = 0) -> None:
        if lanes < 1 or not 0 <= index < lanes:
            raise ValueError(f"lane {index} of {lanes}: want 0 <= index < lanes")
        self.lanes = lanes
        self.index = index

    def move(self, index: int) -> None:
        """Take another lane of the same set."""
        if not 0 <= index < self.lanes:
            raise ValueError(f"lane {index} of {self.lanes}")
        self.index = index

    def at_or_after(self, ts: float) -> float:
        """The first instant of this lane from `ts` on (`ts` taken to its nearest microsecond)."""
        if not -LANE_HORIZON < ts < LANE_HORIZON:  # NaN too
            return ts
        return self._from(round(ts * 1e6))

    def after(self, ts: float) -> float:
        """The first instant of this lane after `ts` (taken to its nearest microsecond)."""
        if not -LANE_HORIZON < ts < LANE_HORIZON:
            return ts + MIN_STEP
        return self._from(round(ts * 1e6) + 1)

    def _from(self, micro: int) -> float:
        """The first microsecond of this lane from `micro` on, in seconds."""
        return (micro + (self.index - micro) % self.lanes) / 1e6


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


@dataclass(frozen=True, slots=True)
class _Target:
    """One value of a mapping resolved for one topic: its sensor and how to read it."""

    sensor: str
    info: SensorInfo | None
    path: tuple[FieldStep, ...] | None  # JSON field path, parsed once; None reads the whole payload
    kind: ValueType
    scale: float
    offset: float


FAST_JSON = _fast_loads is not None  # whether orjson is there to parse JSON payloads


class MqttDecoder:
    """Matches topics against the site's maps and reads the mapped values.

    `fast_json` parses JSON with orjson where it is installed (the default); False keeps to the
    standard library (the pure-Python path the tests hold the fast one against).
    """

    def __init__(self, mappings: tuple[MqttMapping, ...], catalog: SensorCatalog, *,
                 fast_json: bool = True, lane: TimeLane | None = None) -> None:
        self.catalog = catalog
        self.lane = lane or TimeLane()
        self.routes = [_Route(m, _topic_pattern(m.topic)) for m in mappings]
        self.fast_json = fast_json and FAST_JSON
        self._last_ts: dict[str, float] = {}
        self._targets_of: dict[tuple[int, str], list[_Target]] = {}
        self._matches_of: dict[str, list[tuple[MqttMapping, dict[str, str]]]] = {}

    def carry_over(self, before: MqttDecoder) -> None:
        """Keep the last timestamp of each sensor from the decoder this one replaces (a reload)."""
        self._last_ts = before._last_ts

    def decode(self, topic: str, payload: bytes | bytearray, now: float) -> Decoded:
        """Readings from one message received at `now` (epoch seconds)."""
        out = Decoded()
        matches = self._matches(topic)
        if not matches:
            out.rejected.append(("unknown_topic", topic))
            return out
        if len(payload) > MAX_PAYLOAD:
            out.rejected.append(("too_large", f"{topic}: {len(payload)} bytes > {MAX_PAYLOAD}"))
            return out
        parsed: Any = _UNPARSED
        if self.fast_json and _fast_loads is not None:
            with contextlib.suppress(ValueError):  # what orjson refuses, the pure-Python path judges
                parsed = _fast_loads(payload)
        if parsed is _UNPARSED:
            try:
                text = payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                out.rejected.append(("malformed", f"{topic}: payload is not UTF-8"))
                return out
        else:
            text = ""  # only JSON mappings read a parsed message; the others need the text
            if any(mapping.format is not PayloadFormat.JSON for mapping, _names in matches):
                text = payload.decode("utf-8").strip()  # orjson took it, so it is UTF-8
        for mapping, names in matches:
            parsed = self._decode_mapping(mapping, names, topic, text, parsed, now, out)
        return out

    def _matches(self, topic: str) -> list[tuple[MqttMapping, dict[str, str]]]:
        """The maps that take this topic, with the names its levels bind (worked out once per topic)."""
        matches = self._matches_of.get(topic)
        if matches is None:
            matches = [(route.mapping, match.groupdict()) for route in self.routes
                       if (match := route.pattern.fullmatch(topic))]
            if len(self._matches_of) >= TOPIC_CACHE:
                self._matches_of.clear()  # bounded, as the targets
            self._matches_of[topic] = matches
        return matches

    def _decode_mapping(self, mapping: MqttMapping, names: dict[str, str], topic: str, text: str,
                        parsed: Any, now: float, out: Decoded) -> Any:
        """Read one map's values from the message; returns the parsed JSON for the next map."""
        document: Any = text
        if mapping.format is PayloadFormat.JSON:
            if parsed is _UNPARSED:
                try:
                    parsed = json.loads(text)
                except (ValueError, RecursionError) as err:
                    parsed = _NotJson(str(err))
            if isinstance(parsed, _NotJson):
                out.rejected.append(("malformed", f"{topic}: not JSON ({parsed.error})"))
                return parsed
            document = parsed
        ts = now
        if mapping.timestamp_field is not None:
            try:
                ts = _timestamp(_field(document, mapping.timestamp_field))
            except ValueRejected as err:
                out.rejected.append(("bad_timestamp", f"{topic}: {err}; receive time used"))
        readings = out.readings
        last_ts = self._last_ts
        lane = self.lane if self.lane.lanes > 1 else None
        if lane is not None:
            ts = lane.at_or_after(ts)
        for target in self._targets(mapping, topic, names):
            try:
                number, state = _read(target, document)
            except ValueRejected as err:
                out.rejected.append((err.reason, f"{topic} -> {target.sensor}: {err}"))
                continue
            sensor = target.sensor
            at = ts
            last = last_ts.get(sensor)
            if last is not None and at <= last:
                if at > last - 1.0:
                    # two messages in the same instant: keep both points
                    at = last + MIN_STEP if lane is None else lane.after(last)
                last_ts[sensor] = max(at, last)
            else:
                last_ts[sensor] = at
            readings.append(Reading(sensor, at, number, Quality.GOOD, state))
        return parsed

    def _targets(self, mapping: MqttMapping, topic: str, names: dict[str, str]) -> list[_Target]:
        """Each value of a mapping resolved for this topic (worked out once per topic)."""
        key = (id(mapping), topic)
        targets = self._targets_of.get(key)
        if targets is None:
            targets = []
            for v in mapping.values:
                sensor = v.sensor.format_map(names) if names else v.sensor
                path = parse_field_path(v.field) if v.field is not None else None
                targets.append(_Target(sensor, self.catalog.get(sensor), path, mapping.value_type(v),
                                       v.scale, v.offset))
            if len(self._targets_of) >= TOPIC_CACHE:
                self._targets_of.clear()  # bounded: topics nobody maps must not grow it without end
            self._targets_of[key] = targets
        return targets


_UNPARSED = object()  # the message's JSON is not parsed yet


@dataclass(frozen=True, slots=True)
class _NotJson:
    """The message is not JSON: every JSON map of its topic rejects it with this error."""

    error: str


def _read(target: _Target, document: Any) -> tuple[float, str | None]:
    """The value of one target in a parsed message, as (number, state name)."""
    info = target.info
    if info is None:
        raise ValueRejected("unknown_sensor", f"no sensor {target.sensor!r} in the deployment")
    raw = document
    if target.path is not None:
        for key in target.path:
            raw = raw[key] if type(raw) is dict and key in raw else _step(raw, key, target.path)
    state: str | None = None
    kind = target.kind
    if kind is ValueType.NUMBER:
        if type(raw) is float or type(raw) is int:  # the common case, without a call
            number = raw * target.scale + target.offset
        else:
            number = _number(raw) * target.scale + target.offset
    elif kind is ValueType.BOOLEAN:
        number = 1.0 if _boolean(raw) else 0.0
    else:
        number, state = _enum(raw, info.sensor.state_codes, open_codes=info.open_codes)
    if not math.isfinite(number):
        raise ValueRejected("not_finite", f"value {raw!r} is not finite")
    return float(number), state


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
    """Follow a path: `DS18B20.Temperature`, `temps.0`, `values[id=p1].t` (see parse_field_path)."""
    steps = parse_field_path(path)
    node = document
    for step in steps:
        node = _step(node, step, steps)
    return node


def _step(node: Any, key: FieldStep, path: tuple[FieldStep, ...]) -> Any:
    """One level of a field path: an object key, a list index, or the list entry with a key."""
    if isinstance(key, EntryKey):
        return _entry(node, key, path)
    if isinstance(node, dict) and key in node:
        return node[key]
    if isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return node[int(key)]
    raise ValueRejected("missing_field", f"no field {_path_text(path)!r}")


def _entry(node: Any, select: EntryKey, path: tuple[FieldStep, ...]) -> Any:
    """The one entry of a list whose `select.key` is `select.value` (a number matches its text)."""
    if not isinstance(node, list):
        raise ValueRejected("missing_field", f"no array for {_path_text(path)!r}")
    found = [entry for entry in node if isinstance(entry, dict) and select.key in entry
             and _same(entry[select.key], select.value)]
    if not found:
        raise ValueRejected("missing_entry", f"no entry with {select.key}={select.value} "
                                             f"for {_path_text(path)!r}")
    if len(found) > 1:
        raise ValueRejected("ambiguous_entry", f"{len(found)} entries with {select.key}="
                                               f"{select.value} for {_path_text(path)!r}")
    return found[0]


def _same(raw: Any, wanted: str) -> bool:
    if isinstance(raw, str):
        return raw == wanted
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return False
    return str(raw) == wanted or (isinstance(raw, float) and raw.is_integer() and str(int(raw)) == wanted)


def _path_text(path: tuple[FieldStep, ...]) -> str:
    text = ""
    for step in path:
        if isinstance(step, EntryKey):
            text += f"[{step.key}={step.value}]"
        else:
            text += f".{step}" if text else step
    return text


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


def _enum(raw: Any, codes: dict[str, int], *, open_codes: bool = False) -> tuple[float, str]:
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
        if open_codes:  # a fault code the site does not name is still the device's word
            return float(raw), f"UNKNOWN_{raw}"
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
