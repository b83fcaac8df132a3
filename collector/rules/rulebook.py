"""Alarm rules from the site file: thresholds, leaks, switches, no data, stuck values, pump rules.

Defaults come from `defaults.alarms` (per sensor kind and per pump kind, and the built-in thresholds of
each sensor's role: `pumpwatch.thresholds`); a sensor's own thresholds and `alarms:` settings override
them; `rules:` adds custom AND / OR rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from collector.rules.conditions import (
    AllOf,
    AnyOf,
    Change,
    Compare,
    Condition,
    FastChange,
    Silent,
    StateIn,
    Still,
)
from collector.rules.engine import AlarmRule, Level
from pumpwatch.alarm_config import Condition as ConditionSpec
from pumpwatch.alarm_config import PumpRules
from pumpwatch.alarm_events import SEVERITY_RANK, AlarmKey
from pumpwatch.site import (
    Comparison,
    EquipmentBase,
    Header,
    PressureTank,
    Pump,
    PumpKind,
    Room,
    Sensor,
    SensorKind,
    Severity,
    Site,
    Sump,
    Tank,
    Text,
)
from pumpwatch.thresholds import thresholds_in_force

# Leak-like state alarms of the room's fire and security sensors: (kind, state, alarm type,
# severity, seconds the state must hold, zh, en). A door stands open while someone works in the
# room; only a door left open alarms.
STATE_ALARMS = (
    (SensorKind.SMOKE, "ALARM", "smoke", Severity.CRITICAL, 0.0, "检测到烟雾", "detects smoke"),
    (SensorKind.INTRUSION, "OPEN", "intrusion", Severity.MAJOR, 0.0, "检测到闯入", "detects an intrusion"),
    (SensorKind.DOOR, "OPEN", "door_open", Severity.MINOR, 1800.0, "门长时间未关", "door left open"),
)


class Rulebook:
    """Every alarm rule of a site, and how much history each sensor needs."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.alarms = site.defaults.alarms
        self.rules: list[AlarmRule] = []
        self.history: dict[str, float] = defaultdict(float)
        self._build()

    def _add(self, rule: AlarmRule) -> None:
        estate = self.site.site.id  # asset ids repeat across estates: every key names its estate
        key = rule.key.in_estate(estate)
        if any(r.key == key for r in self.rules):
            key = AlarmKey(rule.key.asset, f"{rule.key.alarm_type}:{rule.sensor}", estate)
        self.rules.append(AlarmRule(key, rule.room, rule.message, rule.levels, rule.sensor, rule.worse))

    def _need(self, sensor: str, seconds: float) -> None:
        self.history[sensor] = max(self.history[sensor], seconds + 5.0)

    def _build(self) -> None:
        for room, equipment, sensor in self.site.iter_sensors():
            asset = equipment.id if equipment is not None else room.id
            self._thresholds(room, asset, equipment, sensor)
            self._sensor_rules(room, asset, equipment, sensor)
        self._no_data()
        for room in self.site.rooms:
            self._room_rules(room)
        for spec in self.site.rules:
            self._add(AlarmRule(AlarmKey(spec.asset, spec.id), self._room_of(spec.asset), spec.name,
                                (Level(spec.severity, self._condition(spec.when), spec.for_seconds),)))

    # --- per sensor ------------------------------------------------------------------------------

    def _thresholds(self, room: Room, asset: str, equipment: EquipmentBase | None, sensor: Sensor) -> None:
        in_force = thresholds_in_force(self.site, room, equipment, sensor).thresholds
        for direction in Comparison:
            limits = [t for t in in_force if t.when is direction]
            if not limits:
                continue
            limits.sort(key=lambda t: SEVERITY_RANK[t.severity], reverse=True)
            high = direction is Comparison.ABOVE
            levels = tuple(Level(t.severity, Compare(sensor.id, t.value, high, t.hysteresis), t.for_seconds)
                           for t in limits)
            word = ("过高", "high") if high else ("过低", "low")
            self._add(AlarmRule(AlarmKey(asset, f"{sensor.kind}_{word[1]}"), room.id,
                                _named(sensor, *word), levels, sensor.id, "high" if high else "low"))

    def _sensor_rules(self, room: Room, asset: str, equipment: EquipmentBase | None,
                      sensor: Sensor) -> None:
        codes = sensor.state_codes
        if sensor.kind is SensorKind.LEAK and "WET" in codes:
            wet = StateIn(sensor.id, frozenset({codes["WET"]}))
            self._add(AlarmRule(AlarmKey(asset, "leak"), room.id,
                                _named(sensor, "检测到漏水", "detects water"),
                                (Level(self.alarms.leak_severity, wet),), sensor.id))
        for kind, state, alarm_type, severity, hold, zh, en in STATE_ALARMS:
            if sensor.kind is kind and state in codes:
                self._add(AlarmRule(AlarmKey(asset, alarm_type), room.id, _named(sensor, zh, en),
                                    (Level(severity, StateIn(sensor.id, frozenset({codes[state]})), hold),),
                                    sensor.id))
        if sensor.kind is SensorKind.SWITCH_POSITION and "AUTO" in codes:
            rules = (self.alarms.pump_rules(equipment.kind) if isinstance(equipment, Pump)
                     else self.alarms.pump)
            self._add(AlarmRule(
                AlarmKey(asset, "switch_not_auto"), room.id, _named(sensor, "未置于自动", "not in AUTO"),
                (Level(rules.switch_severity, StateIn(sensor.id, frozenset({codes["AUTO"]}), negate=True),
                       rules.switch_not_auto_seconds),), sensor.id))
        flat = sensor.alarms.flatline_seconds
        if flat is None:
            flat = self.alarms.flatline_seconds.get(sensor.kind.value, 0.0)
        if flat:
            self._need(sensor.id, flat)
            self._add(AlarmRule(AlarmKey(sensor.id, "flatline"), room.id,
                                _named(sensor, "读数卡死不变", "value stuck"),
                                (Level(Severity.MINOR, Still(sensor.id, flat)),), sensor.id))
        if sensor.alarms.max_rate is not None:
            self._need(sensor.id, 60.0)
            self._add(AlarmRule(AlarmKey(sensor.id, "rate_of_change"), room.id,
                                _named(sensor, "变化过快", "changing too fast"),
                                (Level(Severity.MINOR, FastChange(sensor.id, sensor.alarms.max_rate)),),
                                sensor.id))

    def _no_data(self) -> None:
        periods = self.alarms.no_data_periods
        severity = self.alarms.no_data_severity
        rooms = {s.id: room.id for room, _e, s in self.site.iter_sensors()}
        by_device: set[str] = set()
        for device in self.site.modbus:
            watched = frozenset(p.sensor for p in device.points
                                if p.sensor in rooms and self.site.sensor(p.sensor).alarms.no_data)
            if not watched:
                continue
            by_device |= watched
            room = device.room or rooms[next(iter(sorted(watched)))]
            after = max(periods * device.poll_interval, 3 * device.timeout + device.poll_interval)
            self._add(AlarmRule(AlarmKey(device.id, "no_data"), room,
                                Text(zh=f"设备 {device.id} 无数据(离线)",
                                     en=f"Device {device.id} sends no data"),
                                (Level(severity, Silent(watched, after)),)))
        for room_model, _eq, sensor in self.site.iter_sensors():
            if sensor.id in by_device or not sensor.alarms.no_data or sensor.source != "mqtt":
                continue
            period = sensor.expected_period or self.site.defaults.expected_period
            self._add(AlarmRule(AlarmKey(sensor.id, "no_data"), room_model.id,
                                _named(sensor, "无数据(离线)", "sends no data"),
                                (Level(severity, Silent(frozenset({sensor.id}), periods * period)),),
                                sensor.id))

    # --- pumps, tanks and sumps --------------------------------------------------------------------

    def _room_rules(self, room: Room) -> None:
        pressure = _first(room, (Header, PressureTank), SensorKind.PRESSURE)
        tanks = [e for e in room.equipment if isinstance(e, Tank)]
        sumps = [e for e in room.equipment if isinstance(e, Sump)]
        pumps = [e for e in room.equipment if isinstance(e, Pump)]
        running: list[Condition] = []
        for pump in pumps:
            rules = self.alarms.pump_rules(pump.kind)
            run = _sensor(pump, SensorKind.RUN_STATUS)
            is_running = _state(run, "RUNNING") if run else None
            if is_running is not None and pump.kind is not PumpKind.SEWAGE:
                running.append(is_running)
            self._pump_rules(room, pump, rules, is_running, pressure)
        for tank in tanks:
            level = _sensor(tank, SensorKind.LEVEL)
            if level is None or not running:
                continue
            window = self.alarms.tank_window
            self._need(level.id, window)
            self._add(AlarmRule(
                AlarmKey(tank.id, "level_falling"), room.id,
                _named(level, "水泵运行中水位持续下降(检查止回阀/浮球阀)",
                       "keeps falling while a pump runs (check or float valve)"),
                (Level(Severity.MAJOR, AllOf((AnyOf(running), Change(level.id, self.alarms.tank_falling,
                                                                     window, rising=False))),
                       self.alarms.tank_seconds),),
                level.id, "low"))
        sewage_runs = [c for p in pumps if p.kind is PumpKind.SEWAGE
                       if (c := _state(_sensor(p, SensorKind.RUN_STATUS), "RUNNING")) is not None]
        for sump in sumps:
            level = _sensor(sump, SensorKind.LEVEL)
            if level is None or not sewage_runs:
                continue
            window = self.alarms.sump_window
            self._need(level.id, window)
            self._add(AlarmRule(
                AlarmKey(sump.id, "sump_blocked"), room.id,
                _named(level, "排污泵运行中水位上升(排水井堵塞)",
                       "rises while the sewage pump runs (blocked)"),
                (Level(Severity.MAJOR, AllOf((AnyOf(sewage_runs), Change(level.id, self.alarms.sump_rising,
                                                                         window, rising=True))),
                       self.alarms.sump_seconds),),
                level.id, "high"))

    def _pump_rules(self, room: Room, pump: Pump, rules: PumpRules, is_running: Condition | None,
                    pressure: Sensor | None) -> None:
        current = _sensor(pump, SensorKind.CURRENT)
        command = _sensor(pump, SensorKind.RUN_COMMAND)
        temperature = _sensor(pump, SensorKind.TEMPERATURE)
        asked = [c for c in (is_running, _state(command, "RUN") if command else None) if c is not None]
        if current is not None and asked:
            no_current = Compare(current.id, pump.rated_current * rules.failed_start_current, above=False)
            self._add(AlarmRule(AlarmKey(pump.id, "failed_start"), room.id,
                                _pump_text(pump, "启动失败(有运行指令或反馈但无电流)",
                                           "failed to start (run command or feedback, no current)"),
                                (Level(rules.failed_start_severity, AllOf((AnyOf(asked), no_current)),
                                       rules.failed_start_seconds),), current.id, "low"))
        if is_running is not None and pressure is not None and pump.kind is not PumpKind.SEWAGE:
            parts: list[Condition] = [is_running, Compare(pressure.id, rules.dry_run_pressure, above=False)]
            if current is not None:  # low pressure with a loaded motor is a burst, not a dry run
                parts.append(Compare(current.id, pump.rated_current * rules.dry_run_current, above=False))
            self._add(AlarmRule(AlarmKey(pump.id, "dry_run"), room.id,
                                _pump_text(pump, "干转(运行中出水压力过低)",
                                           "running dry (low outlet pressure)"),
                                (Level(Severity.CRITICAL, AllOf(parts), rules.dry_run_seconds),),
                                pressure.id, "low"))
        if current is not None and temperature is not None:
            self._need(temperature.id, rules.bearing_window)
            self._add(AlarmRule(
                AlarmKey(pump.id, "bearing_wear"), room.id,
                _pump_text(pump, "疑似轴承磨损(电流偏高且绕组温度上升)",
                           "possible bearing wear (high current, winding temperature rising)"),
                (Level(Severity.MINOR, AllOf((
                    Compare(current.id, pump.rated_current * rules.bearing_current, above=True),
                    Change(temperature.id, rules.bearing_temperature_rise, rules.bearing_window,
                           rising=True))),
                    rules.bearing_seconds),), current.id, "high"))

    # --- custom rules ------------------------------------------------------------------------------

    def _condition(self, spec: ConditionSpec) -> Condition:
        if spec.all is not None:
            return AllOf(tuple(self._condition(c) for c in spec.all))
        if spec.any is not None:
            return AnyOf(tuple(self._condition(c) for c in spec.any))
        assert spec.sensor is not None  # the model requires it for single tests
        sensor = self.site.sensor(spec.sensor)
        if spec.above is not None or spec.below is not None:
            high = spec.above is not None
            limit = spec.above if spec.above is not None else spec.below
            assert limit is not None
            return Compare(sensor.id, limit, high, spec.hysteresis)
        if spec.state is not None or spec.not_state is not None:
            name = spec.state if spec.state is not None else spec.not_state
            assert name is not None
            return StateIn(sensor.id, frozenset({sensor.state_codes[name]}),
                           negate=spec.not_state is not None)
        if spec.rising is not None or spec.falling is not None:
            self._need(sensor.id, spec.window)
            amount = spec.rising if spec.rising is not None else spec.falling
            assert amount is not None
            return Change(sensor.id, amount, spec.window, rising=spec.rising is not None)
        assert spec.no_data is not None
        return Silent(frozenset({sensor.id}), spec.no_data)

    def _room_of(self, asset: str) -> str:
        for room in self.site.rooms:
            if asset == room.id or any(e.id == asset for e in room.equipment):
                return room.id
        for room, _eq, sensor in self.site.iter_sensors():
            if sensor.id == asset:
                return room.id
        for device in self.site.modbus:
            if device.id == asset and device.room:
                return device.room
        return self.site.rooms[0].id


def _sensors(equipment: EquipmentBase, kind: SensorKind) -> Iterator[Sensor]:
    return (s for s in equipment.sensors if s.kind is kind)


def _sensor(equipment: EquipmentBase, kind: SensorKind) -> Sensor | None:
    return next(_sensors(equipment, kind), None)


def _first(room: Room, types: tuple[type[EquipmentBase], ...], kind: SensorKind) -> Sensor | None:
    for equipment in room.equipment:
        if isinstance(equipment, types) and (found := _sensor(equipment, kind)) is not None:
            return found
    return None


def _state(sensor: Sensor | None, name: str) -> Condition | None:
    if sensor is None or name not in sensor.state_codes:
        return None
    return StateIn(sensor.id, frozenset({sensor.state_codes[name]}))


def _named(sensor: Sensor, zh: str, en: str) -> Text:
    name = sensor.name or Text(zh=sensor.id, en=sensor.id)
    return Text(zh=f"{name.zh}{zh}", en=f"{name.en} {en}")


def _pump_text(pump: Pump, zh: str, en: str) -> Text:
    name = pump.name or Text(zh=pump.id, en=pump.id)
    return Text(zh=f"{name.zh}{zh}", en=f"{name.en} {en}")
