"""MQTT payload decoding: real device payloads by configuration alone, and every rejection's reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.estates import source_view
from collector.sources.mqtt_decode import MAX_PAYLOAD, Decoded, MqttDecoder
from pumpwatch.catalog import SensorCatalog
from pumpwatch.readings import Reading
from pumpwatch.sitefile import parse_site

SITE = """
site: {id: s, name: {zh: 站, en: Site}}
rooms:
  - id: r1
    name: {zh: 泵房, en: Room}
    sensors:
      - {id: leak1, kind: leak, source: mqtt}
      - {id: leak1-battery, kind: battery, range: [0, 100], source: mqtt}
      - {id: temp1, kind: temperature, range: [-20, 80], source: mqtt}
      - {id: dp1, kind: differential_pressure, source: mqtt}
      - {id: sw1, kind: switch_position, source: mqtt}
      - {id: probe1, kind: temperature, source: mqtt}
mqtt:
  - topic: zigbee2mqtt/{device}
    values:
      - {field: water_leak, type: boolean, sensor: "{device}"}
      - {field: battery, sensor: "{device}-battery"}
  - topic: tele/{device}/SENSOR
    values: [{field: DS18B20.Temperature, sensor: "{device}"}]
  - topic: site/{room}/{sensor}
    format: number
    values: [{sensor: "{sensor}"}]
  - topic: plc/{sensor}/switch
    format: enum
    values: [{sensor: "{sensor}"}]
  - topic: probes/+/{device}
    timestamp_field: ts
    values: [{field: "readings.0.t", sensor: "{device}", scale: 0.1, offset: -10}]
"""
NOW = 1_767_225_600.0


def make_decoder(*, fast_json: bool) -> MqttDecoder:
    site = parse_site(SITE, "decode.yaml")
    return MqttDecoder(source_view(site).mqtt, SensorCatalog(site), fast_json=fast_json)


@pytest.fixture(scope="module", params=["orjson", "json"])
def decoder(request: pytest.FixtureRequest) -> MqttDecoder:
    """Every test runs against the compiled JSON parser and the pure-Python one."""
    made = make_decoder(fast_json=request.param == "orjson")
    assert made.fast_json == (request.param == "orjson")  # orjson is installed: both paths are tested
    return made


def values(readings: list[Reading]) -> dict[str, tuple[float, str | None]]:
    """Value and state by sensor id; every reading carries its sensor key in estate `s`."""
    assert all(r.sensor.startswith("s/") for r in readings)
    return {r.sensor.removeprefix("s/"): (r.value, r.state) for r in readings}


def test_zigbee2mqtt_water_leak_sensor(decoder: MqttDecoder) -> None:
    payload = json.dumps({"water_leak": True, "battery": 97, "linkquality": 120}).encode()
    out = decoder.decode("zigbee2mqtt/leak1", payload, NOW)
    assert values(out.readings) == {"leak1": (1.0, None), "leak1-battery": (97.0, None)}
    assert out.rejected == []
    assert {r.ts for r in out.readings} == {NOW}  # receive time, not a later write time


def test_tasmota_nested_ds18b20_temperature(decoder: MqttDecoder) -> None:
    payload = b'{"Time": "2026-11-24T10:00:00", "DS18B20": {"Temperature": 23.5}, "TempUnit": "C"}'
    out = decoder.decode("tele/temp1/SENSOR", payload, NOW)
    assert values(out.readings) == {"temp1": (23.5, None)}


def test_plain_number_on_site_room_sensor(decoder: MqttDecoder) -> None:
    out = decoder.decode("site/r1/dp1", b" 12.4\n", NOW)
    assert values(out.readings) == {"dp1": (12.4, None)}


@pytest.mark.parametrize(("text", "code", "name"), [("AUTO", 2.0, "AUTO"), ("manual", 1.0, "MANUAL"),
                                                    ("Off", 0.0, "OFF")])
def test_enum_strings_map_to_codes_and_keep_the_state_name(decoder: MqttDecoder, text: str, code: float,
                                                           name: str) -> None:
    out = decoder.decode("plc/sw1/switch", text.encode(), NOW)
    assert values(out.readings) == {"sw1": (code, name)}


def test_list_index_scale_offset_and_device_timestamp(decoder: MqttDecoder) -> None:
    payload = b'{"ts": "2026-01-01T00:00:05Z", "readings": [{"t": 305}, {"t": 1}]}'
    out = decoder.decode("probes/gw7/probe1", payload, NOW + 60)
    assert [r.sensor for r in out.readings] == ["s/probe1"]
    assert out.readings[0].value == pytest.approx(20.5)
    assert out.readings[0].ts == NOW + 5
    millis = decoder.decode("probes/gw7/probe1", b'{"ts": 1767225610000, "readings": [{"t": 0}]}', NOW)
    assert millis.readings[0].ts == NOW + 10


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("nobody/listens/here", b"1", "unknown_topic"),
    ("zigbee2mqtt/leak1", b"{not json", "malformed"),
    ("zigbee2mqtt/leak1", b"\xff\xfe", "malformed"),
    ("site/r1/dp1", b"twelve", "wrong_type"),
    ("site/r1/dp1", b"NaN", "not_finite"),
    ("site/r1/dp1", b"1e999", "not_finite"),
    ("site/r1/no-such-sensor", b"1", "unknown_sensor"),
    ("plc/sw1/switch", b"HALF", "unknown_state"),
    ("tele/temp1/SENSOR", b'{"DS18B20": {}}', "missing_field"),
    ("tele/temp1/SENSOR", b'{"DS18B20": {"Temperature": "hot"}}', "wrong_type"),
    ("tele/temp1/SENSOR", b'{"DS18B20": {"Temperature": true}}', "wrong_type"),
    ("tele/temp1/SENSOR", b'{"DS18B20": {"Temperature": null}}', "wrong_type"),
    ("tele/temp1/SENSOR", b"[" * 100_000, "malformed"),
    ("site/r1/dp1", b"1" * (MAX_PAYLOAD + 1), "too_large"),
])
def test_bad_payloads_are_rejected_with_their_reason(decoder: MqttDecoder, topic: str, payload: bytes,
                                                     reason: str) -> None:
    out = decoder.decode(topic, payload, NOW)
    assert out.readings == []
    assert [r for r, _detail in out.rejected] == [reason]


def test_a_bad_value_does_not_take_its_good_neighbour_with_it(decoder: MqttDecoder) -> None:
    out = decoder.decode("zigbee2mqtt/leak1", b'{"water_leak": "maybe", "battery": 55}', NOW)
    assert values(out.readings) == {"leak1-battery": (55.0, None)}
    assert [reason for reason, _ in out.rejected] == ["wrong_type"]
    assert "leak1" in out.rejected[0][1]  # the detail names the sensor


def test_a_bad_device_timestamp_falls_back_to_receive_time_and_is_counted(decoder: MqttDecoder) -> None:
    out = decoder.decode("probes/gw/probe1", b'{"ts": "yesterday", "readings": [{"t": 100}]}', NOW)
    assert [r.ts for r in out.readings] == [NOW]
    assert [reason for reason, _ in out.rejected] == ["bad_timestamp"]


def test_two_messages_in_the_same_instant_keep_distinct_timestamps(decoder: MqttDecoder) -> None:
    first = decoder.decode("site/r1/dp1", b"1", NOW + 100)
    second = decoder.decode("site/r1/dp1", b"2", NOW + 100)
    assert second.readings[0].ts > first.readings[0].ts


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=40), payload=st.binary(max_size=300))
def test_any_message_decodes_or_is_rejected_with_a_reason_never_raises(
        decoder: MqttDecoder, topic: str, payload: bytes) -> None:
    out = decoder.decode(topic, payload, NOW)
    assert out.readings or out.rejected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["water_leak", "battery", "linkquality", "x"]), json_values))
def test_any_json_document_yields_one_outcome_per_mapped_value(decoder: MqttDecoder, doc: object) -> None:
    payload = json.dumps(doc).encode()
    out = decoder.decode("zigbee2mqtt/leak1", payload, NOW)
    assert len(out.readings) + len(out.rejected) == 2  # water_leak and battery: each kept or refused
    for reading in out.readings:
        assert reading.value == reading.value  # never NaN


def outcome(out: Decoded) -> tuple[list[tuple[str, float, float, str | None]], list[str]]:
    """What a decode gave, comparable across decoders: readings (NaN-free) and rejection reasons."""
    readings = [(r.sensor, r.ts, r.value, r.state) for r in out.readings]
    return readings, [reason for reason, _ in out.rejected]


fields = st.sampled_from(["water_leak", "battery", "DS18B20", "ts", "readings"])
json_texts = st.one_of(
    st.builds(json.dumps, st.dictionaries(fields, json_values)),
    st.sampled_from([b'{"water_leak": NaN}', b'{"battery": Infinity}', b'{"battery": 1e400}',
                     b'{"battery": 123456789012345678901234567890}', b'{"battery": -9223372036854775809}',
                     b'{"battery": "\\ud800"}', b'\xef\xbb\xbf{"battery": 1}', b' {"battery": 2}\x0c',
                     b'{"battery": 1, "battery": 2}', b'[' * 2000 + b']' * 2000,
                     b'{"water_leak": true}\x00']),
    st.binary(max_size=80),
)


@settings(max_examples=400, deadline=None)
@given(payload=json_texts, topic=st.sampled_from(["zigbee2mqtt/leak1", "tele/probe1/SENSOR",
                                                  "probes/x/probe1", "site/r1/dp1", "plc/sw1/switch"]))
def test_the_compiled_and_the_pure_python_json_paths_decode_alike(payload: str | bytes, topic: str) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    fast, pure = make_decoder(fast_json=True), make_decoder(fast_json=False)
    assert outcome(fast.decode(topic, data, NOW)) == outcome(pure.decode(topic, data, NOW))
