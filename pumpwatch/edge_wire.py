"""The wire contract between an edge gateway and the monitoring centre: topics, batches, clock, alarms.

The edge (`pumpwatch edge`) encodes, the centre (`pumpwatch collect`) decodes; both sides use this
module, so the format changes in one place. Decoding refuses what does not fit with a `WireError`.

| topic | QoS | from | payload |
|---|---|---|---|
| `pumpwatch/edge/<edge>/batch` | 1 | edge | readings in a compact batch (`encode_batch`) |
| `pumpwatch/edge/<edge>/alarm` | 1 | edge | an alarm event and its outbox number (`encode_edge_alarm`) |
| `pumpwatch/edge/<edge>/time` | 0 | edge | a clock request `{"t0": edge time}` |
| `pumpwatch/edge/<edge>/time/reply` | 0 | centre | `{"t0", "t1": centre receive, "t2": centre send}` |

Batches and alarm events travel signed with the edge's own key, whose id is the edge's id
(`pumpwatch.signing`; streams `BATCH_STREAM` and `EDGE_ALARM_STREAM`): the centre takes an edge's
topics only when signed by that edge's key. Clock requests and replies are not signed: a forged
reply only misstates the edge's clock offset, and only a centre identity may publish one.

Batch encoding (why columnar): a reading is (sensor, ts, value, quality, state). JSON costs about
80 bytes a reading; the readings of one poll share a timestamp, sensors repeat in every poll and most
values change little, so the batch is sent column by column and compressed with zlib:

- header: magic `PWE1`, the batch sequence number (varint), the edge's send time (float64), the count;
- then, deflated: the batch's sensor ids once (a dictionary), a sensor index per reading (varint),
  timestamps in whole microseconds as the zigzag varint of the difference to the previous reading's
  (0 within a poll), values as float64 XOR the same sensor's previous value, the eight bytes of those
  split into eight planes (unchanged and slowly changing values become runs of zero bytes), one
  quality byte each, and state names through a second dictionary (0: none).

Sensor ids travel as the edge's site file writes them: an edge belongs to one estate, so the centre
qualifies them with the edge's estate once per batch (`decode_batch(..., estate=...)`), and an edge
strips its own estate from its pipeline's keys once per sensor of a batch (`encode_columns(...,
strip_estate=True)`).

Values travel bit for bit; timestamps to the microsecond. `tests/collector/test_edge_wire.py` measures
the bytes per reading (about 2-4 on a pump room's readings, against 70-90 as JSON).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.portfolio import sensor_key, split_key
from pumpwatch.readings import Quality, Reading
from pumpwatch.wire import WireError, alarm_event_from_json, alarm_event_json

EDGE_TOPIC = "pumpwatch/edge"
BATCH_STREAM = "edge-batch"  # the sequence streams of an edge's signed messages
EDGE_ALARM_STREAM = "edge-alarm"
MAGIC = b"PWE1"
MAX_BATCH_READINGS = 200_000  # a batch announcing more is refused before anything is inflated
MAX_INFLATED = 64 * 1024 * 1024  # bytes a batch may inflate to (a zip bomb stops here)
_F64 = struct.Struct("<d")
_QUALITIES = {int(q): q for q in Quality}


def batch_topic(edge: str) -> str:
    """The topic an edge publishes its reading batches on."""
    return f"{EDGE_TOPIC}/{edge}/batch"


def alarm_topic(edge: str) -> str:
    """The topic an edge forwards its alarm events on."""
    return f"{EDGE_TOPIC}/{edge}/alarm"


def time_topic(edge: str) -> str:
    """The topic an edge sends its clock requests on."""
    return f"{EDGE_TOPIC}/{edge}/time"


def time_reply_topic(edge: str) -> str:
    """The topic the centre answers an edge's clock requests on."""
    return f"{EDGE_TOPIC}/{edge}/time/reply"


def edge_of(topic: str) -> tuple[str, str]:
    """(edge id, kind) of an edge topic: kind is `batch`, `alarm`, `time` or `time/reply`."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != EDGE_TOPIC or not parts[2]:
        raise WireError(f"not an edge topic: {topic!r}")
    kind = "/".join(parts[3:])
    if kind not in ("batch", "alarm", "time", "time/reply"):
        raise WireError(f"unknown edge topic kind {kind!r} in {topic!r}")
    return parts[2], kind


# --- reading batches -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeBatch:
    """One batch of an edge: its sequence number (per edge, never reused for other readings)."""

    seq: int
    sent_at: float  # the edge's clock when it encoded the batch
    readings: list[Reading]


def encode_batch(seq: int, sent_at: float, readings: list[Reading], level: int = 6) -> bytes:
    """The payload of one batch (see the module's description of the encoding)."""
    return pack_batch(seq, sent_at, len(readings), encode_columns(readings), level)


def pack_batch(seq: int, sent_at: float, count: int, columns: bytes, level: int = 6) -> bytes:
    """A batch's payload from its columns (`encode_columns`, for a sender that digests them first)."""
    if seq < 0:
        raise ValueError("a batch sequence number is not negative")
    return _header(seq, sent_at, count) + zlib.compress(columns, level)


def encode_columns(readings: list[Reading], *, strip_estate: bool = False) -> bytes:
    """The batch's columns before compression (the digest of a batch's content is taken over these).

    `strip_estate`: the readings carry sensor keys (`<estate>/<sensor>`, an edge's pipeline); the batch
    carries the sensor ids.
    """
    sensors: dict[str, int] = {}
    states: dict[str, int] = {}
    index = bytearray()
    times = bytearray()
    qualities = bytearray()
    state_refs = bytearray()
    planes = [bytearray() for _ in range(8)]
    last_bits: dict[int, int] = {}
    last_us = 0
    for r in readings:
        number = sensors.setdefault(r.sensor, len(sensors))
        _varint(index, number)
        us = round(r.ts * 1_000_000)
        _varint(times, _zigzag(us - last_us))
        last_us = us
        bits = int.from_bytes(_F64.pack(r.value), "little")
        delta = bits ^ last_bits.get(number, 0)
        last_bits[number] = bits
        for plane in range(8):
            planes[plane].append((delta >> (8 * plane)) & 0xFF)
        qualities.append(int(r.quality))
        _varint(state_refs, 0 if r.state is None else states.setdefault(r.state, len(states)) + 1)
    out = bytearray()
    _strings(out, [split_key(name)[1] for name in sensors] if strip_estate else list(sensors))
    _strings(out, list(states))
    for column in (index, times, *planes, qualities, state_refs):
        _varint(out, len(column))
        out += column
    return bytes(out)


def decode_batch(payload: bytes | bytearray, estate: str | None = None) -> EdgeBatch:
    """A batch from its payload; `WireError` when it is not one (nothing of it is taken then).

    With `estate` the readings carry sensor keys (`<estate>/<sensor>`, as the centre's pipeline
    does), made once per sensor of the batch.
    """
    data = bytes(payload)
    if not data.startswith(MAGIC):
        raise WireError("not an edge batch (no PWE1 header)")
    try:
        pos = len(MAGIC)
        seq, pos = _read_varint(data, pos)
        (sent_at,) = _F64.unpack_from(data, pos)
        pos += _F64.size
        count, pos = _read_varint(data, pos)
        if count > MAX_BATCH_READINGS:
            raise WireError(f"a batch of {count} readings is more than {MAX_BATCH_READINGS}")
        inflater = zlib.decompressobj()
        body = inflater.decompress(data[pos:], MAX_INFLATED)
        if inflater.unconsumed_tail or not inflater.eof:
            raise WireError("batch body truncated or larger than allowed")
        readings = _decode_columns(body, count, estate)
    except WireError:
        raise
    except (struct.error, zlib.error, IndexError, ValueError, UnicodeDecodeError) as err:
        raise WireError(f"malformed edge batch: {type(err).__name__}: {err}") from err
    if not math.isfinite(sent_at):
        raise WireError("malformed edge batch: send time is not finite")
    return EdgeBatch(seq, sent_at, readings)


def _decode_columns(body: bytes, count: int, estate: str | None) -> list[Reading]:
    pos = 0
    sensors, pos = _read_strings(body, pos)
    if estate is not None:
        sensors = [sensor_key(estate, name) for name in sensors]
    states, pos = _read_strings(body, pos)
    columns: list[bytes] = []
    for _ in range(12):
        length, pos = _read_varint(body, pos)
        if pos + length > len(body):
            raise WireError("malformed edge batch: a column runs past the end")
        columns.append(body[pos:pos + length])
        pos += length
    if pos != len(body):
        raise WireError("malformed edge batch: bytes after the last column")
    index_col, time_col, *planes, quality_col, state_col = columns
    if any(len(plane) != count for plane in planes) or len(quality_col) != count:
        raise WireError("malformed edge batch: columns of different lengths")
    readings: list[Reading] = []
    last_bits: dict[int, int] = {}
    ipos = tpos = spos = 0
    us = 0
    for i in range(count):
        number, ipos = _read_varint(index_col, ipos)
        step, tpos = _read_varint(time_col, tpos)
        ref, spos = _read_varint(state_col, spos)
        if number >= len(sensors) or ref > len(states):
            raise WireError("malformed edge batch: a sensor or state outside its dictionary")
        us += _unzigzag(step)
        delta = int.from_bytes(bytes(plane[i] for plane in planes), "little")
        bits = delta ^ last_bits.get(number, 0)
        last_bits[number] = bits
        (value,) = _F64.unpack(bits.to_bytes(8, "little"))
        quality = _QUALITIES.get(quality_col[i])
        if quality is None:
            raise WireError(f"malformed edge batch: unknown quality code {quality_col[i]}")
        readings.append(Reading(sensors[number], us / 1_000_000, value, quality,
                                None if ref == 0 else states[ref - 1]))
    if ipos != len(index_col) or tpos != len(time_col) or spos != len(state_col):
        raise WireError("malformed edge batch: columns of different lengths")
    return readings


def _header(seq: int, sent_at: float, count: int) -> bytes:
    out = bytearray(MAGIC)
    _varint(out, seq)
    out += _F64.pack(sent_at)
    _varint(out, count)
    return bytes(out)


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7
        if shift > 70:
            raise WireError("malformed edge batch: a number longer than 10 bytes")


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


def _strings(out: bytearray, items: list[str]) -> None:
    _varint(out, len(items))
    for item in items:
        raw = item.encode()
        _varint(out, len(raw))
        out += raw


def _read_strings(data: bytes, pos: int) -> tuple[list[str], int]:
    count, pos = _read_varint(data, pos)
    if count > MAX_BATCH_READINGS:
        raise WireError("malformed edge batch: dictionary too large")
    items: list[str] = []
    for _ in range(count):
        length, pos = _read_varint(data, pos)
        if pos + length > len(data):
            raise WireError("malformed edge batch: a name runs past the end")
        items.append(data[pos:pos + length].decode())
        pos += length
    return items, pos


# --- alarm events ------------------------------------------------------------------------------------


def encode_edge_alarm(number: int, event: AlarmEvent) -> bytes:
    """An alarm event forwarded by an edge, with its number in the edge's outbox (for de-duplication)."""
    return json.dumps({"n": number, "event": alarm_event_json(event)}, ensure_ascii=False).encode()


def decode_edge_alarm(payload: bytes | bytearray) -> tuple[int, AlarmEvent]:
    """(outbox number, event) of a forwarded alarm event; `WireError` when malformed."""
    data = _json_object(payload, "a forwarded alarm event")
    number = data.get("n")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise WireError("a forwarded alarm event needs its outbox number `n`")
    return number, alarm_event_from_json(data.get("event"))


# --- clock --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockSample:
    """One request/response exchange: edge send (t0), centre receive (t1) and send (t2), edge receive (t3).

    As in NTP: the offset is what to add to the edge's clock to read the centre's, assuming the way
    there takes as long as the way back; the error is at most half the round trip.
    """

    t0: float
    t1: float
    t2: float
    t3: float

    @property
    def offset(self) -> float:
        """Centre clock minus edge clock, seconds."""
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2

    @property
    def round_trip(self) -> float:
        """Time on the network, seconds (the centre's own time left out)."""
        return (self.t3 - self.t0) - (self.t2 - self.t1)


def encode_time_request(t0: float) -> bytes:
    """An edge's clock request."""
    return json.dumps({"t0": t0}).encode()


def decode_time_request(payload: bytes | bytearray) -> float:
    """The edge's send time of a clock request."""
    return _number(_json_object(payload, "a clock request"), "t0")


def encode_time_reply(t0: float, t1: float, t2: float) -> bytes:
    """The centre's answer to a clock request."""
    return json.dumps({"t0": t0, "t1": t1, "t2": t2}).encode()


def decode_time_reply(payload: bytes | bytearray, t3: float) -> ClockSample:
    """A clock sample from the centre's answer and the edge's receive time `t3`."""
    data = _json_object(payload, "a clock reply")
    return ClockSample(_number(data, "t0"), _number(data, "t1"), _number(data, "t2"), t3)


def _json_object(payload: bytes | bytearray, what: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError(f"{what} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise WireError(f"{what} is a JSON object")
    return data


def _number(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError(f"{name} must be a finite number, got {value!r}")
    return float(value)
