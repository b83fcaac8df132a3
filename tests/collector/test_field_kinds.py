"""The field's sensor kinds: energy counters and their resets, fault codes, physical ranges, contacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.pipeline.validate import Validator
from collector.rules.conditions import StateIn
from collector.rules.rulebook import Rulebook
from collector.stores.embedded import EmbeddedStore
from collector.stores.lineprotocol import lines, series_key
from pumpwatch.alarm_events import AlarmKey
from pumpwatch.catalog import SensorCatalog
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import DEFAULT_UNITS, SensorKind, Severity
from pumpwatch.sitefile import parse_site

SITE = """
site: {id: s, name: {zh: 站, en: Site}}
rooms:
  - id: r1
    name: {zh: 泵房, en: Room}
    sensors:
      - {id: hum, kind: humidity, source: mqtt}
      - {id: door, kind: door, source: mqtt}
      - {id: hatch, kind: intrusion, source: mqtt}
      - {id: smoke, kind: smoke, source: mqtt}
      - {id: orp, kind: custom, unit: mV, source: mqtt}
    equipment:
      - id: cab
        type: cabinet
        sensors:
          - {id: kwh, kind: energy, source: modbus}
          - {id: pf, kind: power_factor, source: modbus}
          - {id: hz, kind: frequency, source: modbus}
          - {id: kw, kind: active_power, source: modbus}
          - {id: kvar, kind: reactive_power, source: modbus}
      - id: tank
        type: tank
        sensors:
          - {id: ph, kind: ph, source: modbus}
          - {id: ntu, kind: turbidity, source: modbus}
          - {id: cl, kind: residual_chlorine, source: modbus}
          - {id: ec, kind: conductivity, source: modbus}
      - id: p1
        type: pump
        kind: domestic
        rated_current: 10
        sensors:
          - {id: vfd-fault, kind: fault_code, source: modbus,
             codes: {0: OK, 1: OVERCURRENT, 10: MOTOR_OVERLOAD}}
modbus:
  - id: meter
    points:
      - {sensor: kwh, table: input, address: 0, type: float32}
      - {sensor: pf, table: input, address: 2, type: float32}
      - {sensor: hz, table: input, address: 4, type: float32}
      - {sensor: kw, table: input, address: 6, type: float32}
      - {sensor: kvar, table: input, address: 8, type: float32}
      - {sensor: ph, table: input, address: 10, type: float32}
      - {sensor: ntu, table: input, address: 12, type: float32}
      - {sensor: cl, table: input, address: 14, type: float32}
      - {sensor: ec, table: input, address: 16, type: float32}
      - {sensor: vfd-fault, table: holding, address: 0}
"""
T0 = 1_767_225_600.0


@pytest.fixture(scope="module")
def catalog() -> SensorCatalog:
    return SensorCatalog(parse_site(SITE, "kinds.yaml"))


def judged(validator: Validator, *readings: Reading) -> list[tuple[float, Quality, str | None]]:
    verdict = validator.judge(list(readings), T0 + 3600)
    return [(r.value, r.quality, r.state) for r in verdict.kept]


def test_an_energy_counter_that_falls_is_flagged_as_a_reset_and_starts_a_new_baseline(
        catalog: SensorCatalog) -> None:
    v = Validator(catalog)
    got = judged(v, Reading("s/kwh", T0, 18234.7), Reading("s/kwh", T0 + 1, 18234.9),
                 Reading("s/kwh", T0 + 2, 3.2),  # the meter was replaced
                 Reading("s/kwh", T0 + 3, 3.4))
    assert [q for _v, q, _s in got] == [Quality.GOOD, Quality.GOOD, Quality.COUNTER_RESET, Quality.GOOD]
    assert [value for value, _q, _s in got] == [18234.7, 18234.9, 3.2, 3.4]  # stored as read
    # A late reading (earlier than the last one) is not a reset; stale repeats are not compared.
    assert judged(v, Reading("s/kwh", T0 + 1.5, 18234.8)) == [(18234.8, Quality.GOOD, None)]
    assert judged(v, Reading("s/kwh", T0 + 4, 3.4, Quality.STALE)) == [(3.4, Quality.STALE, None)]
    assert judged(v, Reading("s/kwh", T0 + 5, 3.5)) == [(3.5, Quality.GOOD, None)]
    # A reset flagged upstream (an edge forwards its readings flagged) is this baseline too.
    assert judged(v, Reading("s/kwh", T0 + 6, 0.5, Quality.COUNTER_RESET),
                  Reading("s/kwh", T0 + 7, 0.7)) == [(0.5, Quality.COUNTER_RESET, None),
                                                   (0.7, Quality.GOOD, None)]
    # Only counters are checked: a falling power value is ordinary.
    assert [q for _v, q, _s in judged(v, Reading("s/kw", T0, 5.0), Reading("s/kw", T0 + 1, 1.0))] == [
        Quality.GOOD, Quality.GOOD]


async def test_a_counter_reset_is_stored_with_its_quality(catalog: SensorCatalog, tmp_path: Path) -> None:
    v = Validator(catalog)
    kept = v.judge([Reading("s/kwh", T0, 500.0), Reading("s/kwh", T0 + 1, 2.0)], T0 + 10).kept
    assert "quality=4i" in lines(kept, lambda s: series_key(s, catalog.get(s))).splitlines()[1]
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    try:
        await store.write(kept)
        latest = await store.latest(["s/kwh"])
    finally:
        await store.close()
    assert (latest["s/kwh"].value, latest["s/kwh"].quality) == (2.0, Quality.COUNTER_RESET)


def test_fault_codes_keep_every_code_and_name_the_unknown_ones(catalog: SensorCatalog) -> None:
    v = Validator(catalog)
    assert judged(v, Reading("s/vfd-fault", T0, 10.0), Reading("s/vfd-fault", T0 + 1, 17.0),
                  Reading("s/vfd-fault", T0 + 2, 0.0), Reading("s/vfd-fault", T0 + 3, 2.5)) == [
        (10.0, Quality.GOOD, "MOTOR_OVERLOAD"),
        (17.0, Quality.GOOD, "UNKNOWN_17"),  # a code the site does not name is still the drive's word
        (0.0, Quality.GOOD, "OK"),
        (2.5, Quality.OUT_OF_RANGE, None),  # not a code at all
    ]


def test_physical_ranges_of_power_factor_humidity_and_ph_flag_impossible_values(
        catalog: SensorCatalog) -> None:
    v = Validator(catalog)
    cases = {("pf", 0.86): Quality.GOOD, ("pf", -0.5): Quality.GOOD, ("pf", 1.2): Quality.OUT_OF_RANGE,
             ("hum", 61.0): Quality.GOOD, ("hum", 104.0): Quality.OUT_OF_RANGE,
             ("ph", 7.2): Quality.GOOD, ("ph", 15.0): Quality.OUT_OF_RANGE,
             ("ec", 420.0): Quality.GOOD, ("orp", -250.0): Quality.GOOD}
    for (sensor, value), quality in cases.items():
        assert judged(v, Reading(f"s/{sensor}", T0, value))[0][1] is quality, (sensor, value)


def test_contacts_and_smoke_detectors_have_named_states(catalog: SensorCatalog) -> None:
    v = Validator(catalog)
    assert judged(v, Reading("s/door", T0, 1.0), Reading("s/door", T0 + 1, 0.0)) == [
        (1.0, Quality.GOOD, "OPEN"), (0.0, Quality.GOOD, "CLOSED")]
    assert judged(v, Reading("s/smoke", T0, 1.0)) == [(1.0, Quality.GOOD, "ALARM")]
    assert judged(v, Reading("s/hatch", T0, 0.0)) == [(0.0, Quality.GOOD, "CLOSED")]


def test_each_kind_stores_its_own_kind_tag_and_unit(catalog: SensorCatalog) -> None:
    expected = {"kwh": "energy", "pf": "power_factor", "hz": "frequency", "kw": "active_power",
                "kvar": "reactive_power", "ph": "ph", "ntu": "turbidity", "cl": "residual_chlorine",
                "ec": "conductivity", "hum": "humidity", "vfd-fault": "fault_code", "orp": "custom"}
    for sensor, kind in expected.items():
        key = series_key(f"s/{sensor}", catalog.get(f"s/{sensor}"))
        assert f",kind={kind}," in key, sensor
        assert key.endswith(f",sensor={sensor},site=s"), key
        assert ",estate=s," in key, key
    units = {SensorKind.ACTIVE_POWER: "kW", SensorKind.REACTIVE_POWER: "kvar", SensorKind.ENERGY: "kWh",
             SensorKind.FREQUENCY: "Hz", SensorKind.HUMIDITY: "%RH", SensorKind.TURBIDITY: "NTU",
             SensorKind.RESIDUAL_CHLORINE: "mg/L", SensorKind.CONDUCTIVITY: "µS/cm"}
    assert {k: DEFAULT_UNITS[k] for k in units} == units
    info = catalog.get("s/orp")
    assert info is not None
    assert info.sensor.display_unit == "mV"


def test_smoke_intrusion_and_a_door_left_open_raise_state_alarms() -> None:
    rules = {r.key: r for r in Rulebook(parse_site(SITE, "kinds.yaml")).rules}
    expected = {"smoke": (Severity.CRITICAL, 0.0), "intrusion": (Severity.MAJOR, 0.0),
                "door_open": (Severity.MINOR, 1800.0)}
    sensors = {"smoke": "smoke", "intrusion": "hatch", "door_open": "door"}
    for alarm, (severity, hold) in expected.items():
        rule = rules[AlarmKey("r1", alarm, "s")]
        (level,) = rule.levels
        assert (level.severity, level.for_seconds) == (severity, hold), alarm
        assert isinstance(level.condition, StateIn)
        assert (level.condition.sensor, level.condition.codes) == (sensors[alarm], frozenset({1}))
        assert rule.message.en.endswith(("detects smoke", "detects an intrusion", "door left open"))
