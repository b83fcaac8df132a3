"""The edge wire contract: batches round-trip exactly, stay small, and refuse what is not a batch."""

from __future__ import annotations

import contextlib
import json
import math
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.edge_wire import (
    MAGIC,
    ClockSample,
    decode_batch,
    decode_edge_alarm,
    decode_time_reply,
    decode_time_request,
    edge_of,
    encode_batch,
    encode_edge_alarm,
    encode_time_reply,
    encode_time_request,
)
from pumpwatch.readings import Quality, Reading
from pumpwatch.registers import PointCodec
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from pumpwatch.wire import WireError, reading_json

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"

sensor_ids = st.from_regex(r"[A-Za-z0-9_.\-]{1,30}", fullmatch=True)
readings = st.builds(
    Reading,
    sensor=sensor_ids,
    ts=st.integers(min_value=1_000_000_000_000_000, max_value=4_000_000_000_000_000).map(lambda us: us / 1e6),
    value=st.floats(allow_nan=False),
    quality=st.sampled_from(list(Quality)),
    state=st.one_of(st.none(), st.text(max_size=12)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(readings, max_size=300), st.integers(min_value=0, max_value=2**40))
def test_a_batch_round_trips_exactly(batch: list[Reading], seq: int) -> None:
    decoded = decode_batch(encode_batch(seq, 1_717_000_000.25, batch))
    assert decoded.seq == seq
    assert decoded.sent_at == 1_717_000_000.25
    assert decoded.readings == batch


def test_values_travel_bit_for_bit_and_times_to_the_microsecond() -> None:
    odd = [Reading("a", 1_717_000_000.1234567, -0.0), Reading("a", 1_717_000_001.0, 5e-324),
           Reading("b", 1_717_000_001.0, 1.7976931348623157e308), Reading("a", 1_717_000_000.5, math.pi)]
    back = decode_batch(encode_batch(1, 0.0, odd)).readings
    assert [struct.pack("<d", r.value) for r in back] == [struct.pack("<d", r.value) for r in odd]
    assert [r.ts for r in back] == [round(r.ts * 1e6) / 1e6 for r in odd]
    assert back[0].ts == pytest.approx(odd[0].ts, abs=5e-7)


def _pump_room_readings(polls: int) -> list[Reading]:
    """What a collector reads from the example site: every Modbus point each second, wireless every 5 s."""
    from simulators.model import SiteModel
    from simulators.signals import SensorSignals

    site = load_site(EXAMPLE)
    t = 1_717_000_000.0
    model = SiteModel(site, t, seed=3)
    signals = SensorSignals(site, model)
    points = [(p, PointCodec.for_point(p, d)) for d in site.modbus for p in d.points]
    wireless = [s.id for _r, _e, s in site.iter_sensors() if s.source == "mqtt"]
    out: list[Reading] = []
    for step in range(polls):
        model.advance(1.0)
        t += 1.0
        for point, codec in points:  # as the registers carry them: scaled integers
            value = codec.decode(codec.encode(signals.value(point.sensor), 0))
            out.append(Reading(point.sensor, t + 0.013, value))
        if step % 5 == 0:
            out += [Reading(s, t + 0.5, round(signals.value(s), 2)) for s in wireless]
    return out


def test_a_pump_room_batch_costs_a_few_bytes_a_reading() -> None:
    data = _pump_room_readings(300)
    for size, most in ((200, 6.0), (1000, 3.5)):
        payload = sum(len(encode_batch(i, 0.0, data[i:i + size])) for i in range(0, len(data), size))
        as_json = sum(len(json.dumps([reading_json(r) for r in data[i:i + size]]).encode())
                      for i in range(0, len(data), size))
        per_reading, json_per_reading = payload / len(data), as_json / len(data)
        print(f"\nbatches of {size}: {per_reading:.2f} bytes a reading (JSON: {json_per_reading:.1f})")
        assert per_reading < most
        assert json_per_reading > 15 * per_reading


@pytest.mark.parametrize("payload", [
    b"", b"{}", b"PWE0" + bytes(20), MAGIC, MAGIC + b"\x01", MAGIC + b"\x01" + bytes(8) + b"\x02",
    MAGIC + b"\x01" + bytes(8) + b"\x01" + b"not zlib",
    MAGIC + b"\x01" + bytes(8) + b"\x01" + zlib.compress(b"\x00\x00"),
    MAGIC + b"\x01" + bytes(8) + b"\xff\xff\xff\xff\x0f",
])
def test_what_is_not_a_batch_is_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(WireError):
        decode_batch(payload)


def test_a_batch_that_inflates_without_end_is_refused() -> None:
    bomb = MAGIC + b"\x01" + bytes(8) + b"\x01" + zlib.compress(bytes(65 * 1024 * 1024), 1)
    with pytest.raises(WireError, match="larger than allowed"):
        decode_batch(bomb)


def test_a_batch_with_an_unknown_quality_or_a_cut_column_is_refused() -> None:
    good = encode_batch(3, 0.0, [Reading("a", 1.0, 2.0)])
    head, body = good[:14], zlib.decompress(good[14:])
    assert body.endswith(b"\x01\x00\x01\x00")  # quality column (1 byte: 0), state column (1 byte: 0)
    with pytest.raises(WireError, match="quality"):
        decode_batch(head + zlib.compress(body[:-3] + b"\x09" + body[-2:]))
    with pytest.raises(WireError):
        decode_batch(head + zlib.compress(body[:-1]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_after_the_magic_are_a_batch_or_a_wire_error(tail: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_batch(MAGIC + tail)


def test_edge_topics_name_their_edge_and_kind() -> None:
    assert edge_of("pumpwatch/edge/e-1/batch") == ("e-1", "batch")
    assert edge_of("pumpwatch/edge/e-1/time/reply") == ("e-1", "time/reply")
    for topic in ("pumpwatch/edge//batch", "pumpwatch/live/r1", "pumpwatch/edge/e1/other", "x"):
        with pytest.raises(WireError):
            edge_of(topic)


def test_the_clock_offset_is_centre_minus_edge_within_half_the_round_trip() -> None:
    # The edge's clock is 2 s behind; 0.1 s each way; the centre takes 0.05 s to answer.
    t0 = 1000.0
    sample = decode_time_reply(encode_time_reply(decode_time_request(encode_time_request(t0)),
                                                 t0 + 2.1, t0 + 2.15), t0 + 0.25)
    assert sample == ClockSample(t0, t0 + 2.1, t0 + 2.15, t0 + 0.25)
    assert sample.offset == pytest.approx(2.0)
    assert sample.round_trip == pytest.approx(0.2)
    with pytest.raises(WireError):
        decode_time_reply(b'{"t0": 1, "t1": "soon", "t2": 3}', 4.0)


def test_a_forwarded_alarm_event_keeps_its_outbox_number() -> None:
    event = AlarmEvent(AlarmAction.RAISED, AlarmKey("r1", "leak"), Severity.CRITICAL, 1.5e9, "r1",
                       Text(zh="一号泵房检测到漏水", en="Room 1 detects water"), 1.0, "leak1")
    assert decode_edge_alarm(encode_edge_alarm(7, event)) == (7, event)
    for bad in (b"[]", b'{"event": {}}', b'{"n": -1, "event": {}}', b'{"n": 1, "event": {"action": "x"}}'):
        with pytest.raises(WireError):
            decode_edge_alarm(bad)
