"""Thresholds a sensor gets by its role when the site sets none, and how a site or a sensor overrides them."""

from __future__ import annotations

from typing import Any

import yaml

from collector.rules.conditions import Compare
from collector.rules.engine import AlarmEngine, AlarmRule
from collector.rules.rulebook import Rulebook
from pumpwatch.alarm_events import AlarmAction, AlarmEvent
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site
from pumpwatch.sitefile import parse_site


def _site(defaults: dict[str, Any] | None = None, **sensor_thresholds: Any) -> Site:
    """A room with a duty pair (motor current and winding temperature, rated 15.6 A), a header pressure,
    a cabinet (temperature, supply voltage), and a room temperature; no thresholds unless given."""
    points: list[dict[str, Any]] = []

    def sensor(sid: str, kind: str) -> dict[str, Any]:
        points.append({"sensor": sid, "table": "input", "address": len(points)})
        out: dict[str, Any] = {"id": sid, "kind": kind, "source": "modbus"}
        if sid in sensor_thresholds:
            out["thresholds"] = sensor_thresholds[sid]
        return out

    pumps = [{"id": p, "type": "pump", "kind": "domestic", "rated_current": 15.6, "duty_group": "grp",
              "sensors": [sensor(f"{p}-current", "current"), sensor(f"{p}-temp", "temperature")]}
             for p in ("p1", "p2")]
    data: dict[str, Any] = {
        "site": {"id": "s", "name": {"zh": "站", "en": "Site"}},
        "rooms": [{"id": "r", "name": {"zh": "泵房", "en": "Room"},
                   "sensors": [sensor("room-temp", "temperature")],
                   "duty_groups": [{"id": "grp", "pumps": ["p1", "p2"],
                                    "control": {"start_pressure": 0.30, "stop_pressure": 0.45}}],
                   "equipment": [*pumps,
                                 {"id": "hdr", "type": "header", "sensors": [sensor("pressure", "pressure")]},
                                 {"id": "cab", "type": "cabinet",
                                  "sensors": [sensor("cab-temp", "temperature"),
                                              sensor("volts", "voltage")]}]},
                  {"id": "fire", "name": {"zh": "消防泵房", "en": "Fire room"},
                   "equipment": [{"id": "main", "type": "header",
                                  "sensors": [sensor("main-pressure", "pressure")]}]}],
        "modbus": [{"id": "plc", "port": 5020, "points": points}],
    }
    if defaults is not None:
        data["defaults"] = defaults
    return parse_site(yaml.safe_dump(data, allow_unicode=True), "site.yaml")


def _limits(book: Rulebook, sensor: str) -> dict[str, list[tuple[str, float, float]]]:
    """alarm type -> [(severity, limit, hysteresis)] of the threshold rules on `sensor`."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for rule in book.rules:
        if rule.sensor != sensor or not rule.key.alarm_type.endswith(("_high", "_low")):
            continue
        for level in rule.levels:
            assert isinstance(level.condition, Compare)
            out.setdefault(rule.key.alarm_type, []).append(
                (level.severity.value, round(level.condition.limit, 4), round(level.condition.hysteresis, 4)))
    return out


def test_motor_and_cabinet_sensors_without_thresholds_get_the_defaults_of_their_role() -> None:
    book = Rulebook(_site())
    assert _limits(book, "p1-current") == {"current_high": [("major", 17.16, 0.468)]}  # 110 % of 15.6 A
    assert _limits(book, "p1-temp") == {"temperature_high": [("critical", 140.0, 3.0), ("major", 120.0, 3.0),
                                                             ("warning", 100.0, 3.0)]}
    assert _limits(book, "cab-temp") == {"temperature_high": [("major", 55.0, 2.0), ("minor", 45.0, 2.0)]}
    assert _limits(book, "volts") == {
        "voltage_high": [("major", 418.0, 3.8),
                         ("minor", 406.6, 3.8)],
        "voltage_low": [("major", 342.0, 3.8),
                        ("minor", 353.4, 3.8)]}
    # Supply pressure, relative to the duty group's start pressure of 0.30 MPa.
    assert _limits(book, "pressure") == {"pressure_low": [("critical", 0.15, 0.015), ("major", 0.255, 0.015)]}
    assert _limits(book, "main-pressure") == {}  # no duty group, no set pressure: no guess
    assert _limits(book, "room-temp") == {}  # a room's temperature has no role default


def test_a_site_default_per_kind_and_a_sensors_own_thresholds_override_the_role() -> None:
    site = _site({"thresholds": {"voltage": [{"when": "below", "value": 360, "severity": "critical"}]},
                 "alarms": {"limits": {"nominal_voltage": 400, "motor_current": [
                     {"when": "above", "share": 1.2, "severity": "critical"}]}}},
                 **{"p2-temp": [{"when": "above", "value": 90}], "cab-temp": []})
    book = Rulebook(site)
    assert _limits(book, "volts") == {"voltage_low": [("critical", 360.0, 0.0)]}
    assert _limits(book, "p1-current") == {"current_high": [("critical", 18.72, 0.0)]}
    assert _limits(book, "p2-temp") == {"temperature_high": [("major", 90.0, 0.0)]}
    assert _limits(book, "p1-temp")["temperature_high"][0] == ("critical", 140.0, 3.0)
    assert _limits(book, "cab-temp") == {}  # an empty list: no thresholds at all
    site = _site({"alarms": {"limits": {"nominal_voltage": 400}}})
    assert _limits(Rulebook(site), "volts")["voltage_high"][0] == ("major", 440.0, 4.0)


async def test_an_overloaded_motor_raises_its_alarm_after_half_a_minute() -> None:
    book = Rulebook(_site())
    rules: list[AlarmRule] = [r for r in book.rules if r.sensor == "p1-current"
                              and r.key.alarm_type == "current_high"]
    clock = FakeClock()
    engine = AlarmEngine(rules, clock)
    events: list[AlarmEvent] = []
    engine.listeners.append(events.append)
    engine.on_readings([Reading("p1-current", clock.now(), 16.5)])  # under 110 % of 15.6 A
    for _ in range(60):
        await clock.advance(1)
        engine.evaluate_all()
    assert events == []
    engine.on_readings([Reading("p1-current", clock.now(), 18.0)])
    for _ in range(29):
        await clock.advance(1)
        engine.evaluate_all()
    assert events == []
    await clock.advance(1)
    engine.evaluate_all()
    assert [(e.action, e.severity, e.key.asset) for e in events] == [
        (AlarmAction.RAISED, Severity.MAJOR, "p1")]
