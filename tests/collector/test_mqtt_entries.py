"""Gateway batches read by key: `values[id=p1].v` never takes a value by its position in the array."""

from __future__ import annotations

import json
import random

from collector.estates import source_view
from collector.sources.mqtt_decode import MqttDecoder
from pumpwatch.catalog import SensorCatalog
from pumpwatch.readings import Quality
from pumpwatch.sitefile import parse_site

SITE = """
site: {id: s, name: {zh: 站, en: Site}}
rooms:
  - id: r1
    name: {zh: 泵房, en: Room}
    sensors:
      - {id: p1, kind: pressure, source: mqtt}
      - {id: p2, kind: pressure, source: mqtt}
      - {id: p3, kind: pressure, source: mqtt}
      - {id: hum, kind: humidity, source: mqtt}
      - {id: door, kind: door, source: mqtt}
      - {id: fault, kind: fault_code, source: mqtt, codes: {0: OK, 1: OVERCURRENT}}
      - {id: t1, kind: temperature, source: mqtt}
mqtt:
  - topic: gw/batch
    values:
      - {field: "values[id=p1].v", sensor: p1}
      - {field: "values[id=p2].v", sensor: p2}
      - {field: "values[id=p3].v", sensor: p3}
  - topic: gw/numeric
    values:
      - {field: "data[ch=1].value", sensor: hum}
      - {field: "data[ch=2].value", type: boolean, sensor: door}
  - topic: gw/array
    timestamp_field: "[name=clock].t"
    values:
      - {field: "[name=t1].v", sensor: t1}
  - topic: vfd/fault
    values:
      - {field: "status[reg=fault].code", type: enum, sensor: fault}
"""
NOW = 1_767_225_600.0


def decoder() -> MqttDecoder:
    site = parse_site(SITE, "entries.yaml")
    return MqttDecoder(source_view(site).mqtt, SensorCatalog(site))


def batch(entries: list[tuple[str, float]]) -> bytes:
    return json.dumps({"gateway": "gw-7", "values": [{"id": i, "v": v} for i, v in entries]}).encode()


def test_reordered_entries_never_swap_values() -> None:
    d = decoder()
    entries = [("p1", 0.42), ("p2", 0.55), ("p3", 0.61)]
    rng = random.Random(7)
    for n in range(20):
        shuffled = list(entries)
        rng.shuffle(shuffled)
        out = d.decode("gw/batch", batch(shuffled), NOW + n)
        assert {r.sensor: r.value for r in out.readings} == {f"s/{k}": v for k, v in entries}, shuffled
        assert out.rejected == []


def test_a_missing_entry_is_rejected_with_its_reason_and_the_others_are_kept() -> None:
    out = decoder().decode("gw/batch", batch([("p3", 0.61), ("p1", 0.42)]), NOW)
    assert {r.sensor: r.value for r in out.readings} == {"s/p1": 0.42, "s/p3": 0.61}
    assert out.rejected == [("missing_entry", "gw/batch -> s/p2: no entry with id=p2 for 'values[id=p2].v'")]


def test_two_entries_with_one_id_are_rejected_rather_than_guessed() -> None:
    out = decoder().decode("gw/batch", batch([("p1", 0.42), ("p2", 0.55), ("p1", 0.99), ("p3", 0.6)]),
                           NOW)
    assert {r.sensor for r in out.readings} == {"s/p2", "s/p3"}
    assert [reason for reason, _detail in out.rejected] == ["ambiguous_entry"]


def test_an_entry_without_the_field_or_a_batch_without_the_array_is_rejected() -> None:
    d = decoder()
    no_field = json.dumps({"values": [{"id": "p1"}, {"id": "p2", "v": 1}, {"id": "p3", "v": 2}]})
    out = d.decode("gw/batch", no_field.encode(), NOW)
    assert out.rejected == [("missing_field", "gw/batch -> s/p1: no field 'values[id=p1].v'")]
    out = d.decode("gw/batch", json.dumps({"values": {"id": "p1", "v": 1}}).encode(), NOW)
    assert {reason for reason, _detail in out.rejected} == {"missing_field"}
    assert out.readings == []


def test_numeric_keys_a_top_level_array_and_a_timestamp_by_key() -> None:
    d = decoder()
    out = d.decode("gw/numeric", json.dumps({"data": [{"ch": 2, "value": True},
                                                      {"ch": 1, "value": 58.5}]}).encode(), NOW)
    assert {r.sensor: r.value for r in out.readings} == {"s/hum": 58.5, "s/door": 1.0}
    out = d.decode("gw/array", json.dumps([{"name": "t1", "v": 21.5},
                                           {"name": "clock", "t": NOW - 30}]).encode(), NOW)
    (reading,) = out.readings
    assert (reading.sensor, reading.value, reading.ts) == ("s/t1", 21.5, NOW - 30)


def test_a_fault_code_the_site_does_not_name_is_kept_as_unknown() -> None:
    d = decoder()
    out = d.decode("vfd/fault", json.dumps({"status": [{"reg": "fault", "code": 17}]}).encode(), NOW)
    (reading,) = out.readings
    assert (reading.value, reading.state, reading.quality) == (17.0, "UNKNOWN_17", Quality.GOOD)
    out = d.decode("vfd/fault", json.dumps({"status": [{"reg": "fault", "code": 1}]}).encode(), NOW + 1)
    assert [(r.value, r.state) for r in out.readings] == [(1.0, "OVERCURRENT")]
