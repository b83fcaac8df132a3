"""The alarm engine on a fake clock: durations, hysteresis, severities, AND / OR, no data, silences."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from collector.rules.conditions import AllOf, AnyOf, Compare, Silent, StateIn, Still, timed
from collector.rules.engine import AlarmEngine, AlarmRule, Level
from collector.rules.memory import AlarmMemory, MemorySaver
from collector.rules.rulebook import Rulebook
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import SiteFileError, parse_site

KEY = AlarmKey("dom-p1", "temperature_high")
MSG = Text(zh="温度过高", en="temperature high")


def temperature_rule() -> AlarmRule:
    return AlarmRule(KEY, "dom", MSG, (
        Level(Severity.CRITICAL, Compare("t", 130, above=True, hysteresis=5), for_seconds=30),
        Level(Severity.MAJOR, Compare("t", 110, above=True, hysteresis=5), for_seconds=60),
    ), sensor="t", worse="high")


class Rig:
    def __init__(self, *rules: AlarmRule) -> None:
        self.clock = FakeClock()
        self.engine = AlarmEngine(rules, self.clock, history={"t": 700, "p": 700})
        self.events: list[AlarmEvent] = []
        self.engine.listeners.append(self.events.append)

    def feed(self, sensor: str, value: float, quality: Quality = Quality.GOOD) -> None:
        self.engine.on_readings([Reading(sensor, self.clock.now(), value, quality)])

    async def wait(self, seconds: float) -> None:
        """Let time pass with the timer evaluating once a second and no new readings."""
        for _ in range(int(seconds)):
            await self.clock.advance(1.0)
            self.engine.evaluate_all()

    def actions(self) -> list[tuple[str, str]]:
        """Lifecycle changes (peak announcements left out)."""
        return [(e.action.value, e.severity.value) for e in self.events if e.action is not AlarmAction.PEAK]


async def test_a_held_threshold_fires_after_its_duration_without_new_readings() -> None:
    rig = Rig(temperature_rule())
    rig.feed("t", 115)
    await rig.wait(59)
    assert rig.events == []
    await rig.wait(1)
    assert rig.actions() == [("raised", "major")]
    assert rig.events[0].value == 115
    assert rig.events[0].key == KEY


async def test_a_short_excursion_does_not_fire() -> None:
    rig = Rig(temperature_rule())
    rig.feed("t", 115)
    await rig.wait(30)
    rig.feed("t", 100)
    await rig.wait(120)
    assert rig.events == []


async def test_hysteresis_keeps_the_alarm_until_the_value_is_clearly_back() -> None:
    rig = Rig(temperature_rule())
    rig.feed("t", 115)
    await rig.wait(60)
    rig.feed("t", 108)  # below 110 but inside the 5 degree band
    await rig.wait(10)
    assert rig.actions() == [("raised", "major")]
    rig.feed("t", 104.9)
    await rig.wait(1)
    assert rig.actions() == [("raised", "major"), ("cleared", "major")]


async def test_severity_escalates_and_de_escalates_within_one_alarm() -> None:
    rig = Rig(temperature_rule())
    rig.feed("t", 115)
    await rig.wait(60)
    rig.feed("t", 135)
    await rig.wait(29)
    assert rig.actions() == [("raised", "major")]
    await rig.wait(1)
    assert rig.actions()[-1] == ("escalated", "critical")
    rig.feed("t", 127)  # inside the critical band: stays critical
    await rig.wait(5)
    assert rig.actions()[-1] == ("escalated", "critical")
    rig.feed("t", 120)  # out of the critical band, still major: at once, no new duration
    await rig.wait(1)
    assert rig.actions()[-1] == ("deescalated", "major")
    rig.feed("t", 90)
    await rig.wait(1)
    assert rig.actions() == [("raised", "major"), ("escalated", "critical"), ("deescalated", "major"),
                             ("cleared", "major")]
    assert len({e.key for e in rig.events}) == 1  # one alarm all along


async def test_a_new_peak_is_announced_at_most_every_ten_seconds() -> None:
    rig = Rig(temperature_rule())
    rig.feed("t", 112)
    await rig.wait(60)
    for value in (113, 114, 115, 116):
        rig.feed("t", value)
        await rig.wait(4)
    await rig.wait(20)
    peaks = [(e.ts - rig.events[0].ts, e.value) for e in rig.events if e.action is AlarmAction.PEAK]
    assert peaks == [(10, 115), (20, 116)]  # the worst so far, at most every ten seconds


async def test_and_or_conditions_with_unknown_data() -> None:
    running = StateIn("run", frozenset({1}))
    low = Compare("p", 0.15, above=False)
    both = AlarmRule(AlarmKey("pump", "dry_run"), "dom", MSG,
                     (Level(Severity.CRITICAL, AllOf((running, low))),))
    either = AlarmRule(AlarmKey("pump", "either"), "dom", MSG,
                       (Level(Severity.MINOR, AnyOf((running, low))),))
    rig = Rig(both, either)
    rig.feed("p", 0.1)  # run state unknown yet: AND cannot tell, OR already holds
    assert [e.key.alarm_type for e in rig.events] == ["either"]
    rig.feed("run", 1)
    assert [e.key.alarm_type for e in rig.events] == ["either", "dry_run"]
    rig.feed("run", 0)
    rig.feed("p", 0.4)
    assert [(e.key.alarm_type, e.action.value) for e in rig.events][-2:] == [("dry_run", "cleared"),
                                                                            ("either", "cleared")]


async def test_no_data_fires_on_the_timer_and_clears_with_the_next_reading() -> None:
    silent = Silent(frozenset({"a", "b"}), 30)
    rule = AlarmRule(AlarmKey("plc", "no_data"), "dom", MSG, (Level(Severity.MINOR, silent),))
    rig = Rig(rule)
    rig.feed("a", 1)
    await rig.wait(20)
    rig.feed("b", 1)  # any of the device's sensors counts as the device talking
    await rig.wait(29)
    assert rig.events == []
    await rig.wait(1)
    assert rig.actions() == [("raised", "minor")]
    rig.feed("a", 2, Quality.STALE)  # a stale marker is not data
    await rig.wait(1)
    assert rig.actions() == [("raised", "minor")]
    rig.feed("a", 2)
    assert rig.actions() == [("raised", "minor"), ("cleared", "minor")]


async def test_a_value_that_stops_moving_is_a_stuck_sensor() -> None:
    rule = AlarmRule(AlarmKey("p", "flatline"), "dom", MSG, (Level(Severity.MINOR, Still("p", 600)),))
    rig = Rig(rule)
    for i in range(700):
        rig.feed("p", 0.40 + (i % 7) * 0.001)  # a live sensor: small noise
        await rig.clock.advance(1)
    assert rig.events == []
    for _ in range(601):
        rig.feed("p", 0.41)
        await rig.clock.advance(1)
    assert rig.actions() == [("raised", "minor")]


async def test_an_approved_exception_silences_until_its_end() -> None:
    key = AlarmKey("dom-p1", "switch_not_auto")
    rule = AlarmRule(key, "dom", MSG, (Level(Severity.MAJOR, StateIn("sw", frozenset({2}), negate=True)),))
    rig = Rig(rule)
    rig.feed("sw", 1)  # MANUAL
    assert rig.actions() == [("raised", "major")]
    rig.engine.silence(key, rig.clock.now() + 3600)
    await rig.wait(1)
    assert rig.actions() == [("raised", "major"), ("cleared", "major")]
    await rig.wait(3598)
    assert len(rig.events) == 2
    await rig.wait(2)
    assert rig.actions()[-1] == ("raised", "major")  # the exception ran out, still in MANUAL


CUSTOM = """
site: {id: s, name: {zh: 站, en: Site}}
rooms:
  - id: r
    name: {zh: 房, en: Room}
    sensors:
      - {id: p, kind: pressure, source: mqtt, alarms: {flatline_seconds: 0}}
      - {id: run, kind: run_status, source: mqtt}
      - {id: lvl, kind: level, source: mqtt}
rules:
  - id: low_pressure_or_low_level_while_running
    asset: r
    name: {zh: 运行中压力或液位过低, en: Low pressure or level while running}
    severity: critical
    for_seconds: 5
    when:
      all:
        - {sensor: run, state: RUNNING}
        - any:
            - {sensor: p, below: 0.2}
            - {sensor: lvl, below: 0.5}
"""


async def test_custom_rules_from_the_site_file_combine_and_with_or() -> None:
    site = parse_site(CUSTOM, "custom.yaml")
    book = Rulebook(site)
    custom = [r for r in book.rules if r.key.alarm_type == "low_pressure_or_low_level_while_running"]
    assert [r.key.asset for r in custom] == ["r"]
    assert not any(r.key.alarm_type == "flatline" for r in book.rules)  # turned off per sensor
    clock = FakeClock()
    engine = AlarmEngine(custom, clock)
    events: list[AlarmEvent] = []
    engine.listeners.append(events.append)
    engine.on_readings([Reading("run", clock.now(), 1), Reading("p", clock.now(), 0.5),
                        Reading("lvl", clock.now(), 0.4)])
    await clock.advance(5)
    engine.evaluate_all()
    assert [(e.action.value, e.severity.value) for e in events] == [("raised", "critical")]


def test_a_custom_rule_on_an_unknown_sensor_or_state_is_a_site_file_error() -> None:
    bad = CUSTOM.replace("{sensor: run, state: RUNNING}", "{sensor: runn, state: GOING}")
    with pytest.raises(SiteFileError) as err:
        parse_site(bad, "custom.yaml")
    text = str(err.value)
    line = bad.splitlines().index("        - {sensor: runn, state: GOING}") + 1
    assert f"custom.yaml:{line}: rules[0].when.all[0].sensor: unknown sensor 'runn'" in text
    assert "runn" in text


def test_the_example_site_gets_the_rules_the_regulation_asks_for() -> None:
    from pumpwatch.sitefile import load_site

    book = Rulebook(load_site(Path(__file__).parents[2] / "examples" / "site.yaml"))
    keys = {str(r.key) for r in book.rules}
    for expected in ("dom-ptank/leak", "dom/leak", "dom-p1/switch_not_auto", "fire-p1/switch_not_auto",
                     "dom-p1/failed_start", "dom-p1/dry_run", "dom-p1/bearing_wear",
                     "dom-tank/level_falling", "fire-sump/sump_blocked", "plc-dom/no_data",
                     "dom-floor-leak/no_data", "dom-header-pressure/flatline", "dom-header/pressure_low"):
        assert expected in keys
    assert len(keys) == len(book.rules)  # one rule per (asset, alarm type)
    switch = next(r for r in book.rules if str(r.key) == "fire-p1/switch_not_auto")
    assert switch.levels[0].severity is Severity.CRITICAL  # fire pumps: critical by pump-kind default


# --- alarms across a restart ----------------------------------------------------------------------


async def raise_critical_remembered(path: Path, clock: FakeClock) -> None:
    """An engine remembering its alarms in `path` raises the critical temperature alarm, then stops."""
    before = AlarmEngine([temperature_rule()], clock, history={"t": 700}, memory=AlarmMemory(path))
    before.on_readings([Reading("t", clock.now(), 140)])
    await clock.advance(30)
    before.evaluate_all()
    assert before.active() == {KEY: Severity.CRITICAL}


async def test_a_restarted_engine_clears_an_alarm_that_ended_while_it_was_down(tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    clock = FakeClock()
    await raise_critical_remembered(path, clock)
    after = AlarmEngine([temperature_rule()], clock, history={"t": 700}, memory=AlarmMemory(path))
    events: list[AlarmEvent] = []
    after.listeners.append(events.append)
    assert after.active() == {KEY: Severity.CRITICAL}
    after.on_readings([Reading("t", clock.now(), 141)])  # still hot: no second raise
    after.evaluate_all()
    assert [(e.action, e.value) for e in events] == [(AlarmAction.PEAK, 141)]  # a new worst value
    after.on_readings([Reading("t", clock.now(), 90)])  # over: the clear is announced
    assert [(e.action, e.severity) for e in events[1:]] == [(AlarmAction.CLEARED, Severity.CRITICAL)]
    assert AlarmMemory(path).raised == {}


async def test_a_remembered_alarm_without_its_rule_is_cleared_and_a_broken_file_is_set_aside(
        tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    clock = FakeClock()
    await raise_critical_remembered(path, clock)
    other = AlarmEngine([], clock, memory=AlarmMemory(path))  # the rule left the site file
    events: list[AlarmEvent] = []
    other.listeners.append(events.append)
    other.evaluate_all()
    assert [(e.action, e.key, e.room) for e in events] == [(AlarmAction.CLEARED, KEY, "dom")]
    assert AlarmMemory(path).raised == {}

    path.write_text('[{"action": "raised", "asset": ', encoding="utf-8")
    assert AlarmMemory(path).raised == {}
    assert path.with_suffix(".broken").exists()


async def test_the_saver_writes_memories_off_the_caller_and_everything_before_it_closes(
        tmp_path: Path) -> None:
    writers: list[str] = []

    class Watched(AlarmMemory):
        def write(self) -> None:
            writers.append(threading.current_thread().name)
            super().write()

    saver = MemorySaver()
    north = Watched(tmp_path / "north.json", "north", saver)
    south = AlarmMemory(tmp_path / "south.json", "south", saver)
    clock = FakeClock()
    engine = AlarmEngine([temperature_rule()], clock, history={"t": 700}, memory=north)
    engine.on_readings([Reading("t", clock.now(), 140)])
    await clock.advance(30)
    engine.evaluate_all()
    saver.flush()
    assert set(AlarmMemory(tmp_path / "north.json").raised) == {KEY}
    assert writers == ["pumpwatch-alarm-memory"]  # not on the engine's (the event loop's) thread
    raised = AlarmEvent(AlarmAction.RAISED, AlarmKey("s-p1", "leak", "south"), Severity.CRITICAL, clock.now(),
                        "dom", MSG, 1.0, "leak")
    south.remember(raised)
    engine.on_readings([Reading("t", clock.now(), 90)])  # the north alarm clears
    saver.close()  # what waits is written before the collector stops
    assert AlarmMemory(tmp_path / "north.json").raised == {}
    assert set(AlarmMemory(tmp_path / "south.json").raised) == {raised.key}
    south.remember(replace(raised, action=AlarmAction.CLEARED))  # closed: written before remember returns
    assert AlarmMemory(tmp_path / "south.json").raised == {}


def test_a_memory_the_saver_cannot_write_is_counted_and_the_others_still_are(tmp_path: Path) -> None:
    (tmp_path / "north.tmp").mkdir()  # where the north file's new version would be written
    saver = MemorySaver()
    broken = AlarmMemory(tmp_path / "north.json", "north", saver)
    fine = AlarmMemory(tmp_path / "south.json", "south", saver)
    event = AlarmEvent(AlarmAction.RAISED, AlarmKey("p1", "leak", "north"), Severity.CRITICAL, 1.0, "dom",
                       MSG, 1.0, "leak")
    broken.remember(event)
    fine.remember(replace(event, key=AlarmKey("p1", "leak", "south")))
    saver.close()
    assert saver.failures == 1
    assert set(AlarmMemory(tmp_path / "south.json").raised) == {AlarmKey("p1", "leak", "south")}
    assert not (tmp_path / "north.json").exists()


async def test_fresh_data_skips_a_quiet_no_data_rule_but_still_clears_a_raised_one() -> None:
    key = AlarmKey("dom-p1", "no_data")
    rig = Rig(AlarmRule(key, "dom", MSG, (Level(Severity.MAJOR, Silent(frozenset({"t"}), 30)),)))
    for _ in range(10):
        rig.feed("t", 20)
    assert rig.engine.evaluations == 0  # quiet and fed: nothing to decide
    await rig.wait(31)  # the timer sees the silence
    assert rig.actions() == [("raised", "major")]
    rig.feed("t", 20)  # data again: a raised no-data alarm is evaluated and clears
    assert rig.actions() == [("raised", "major"), ("cleared", "major")]


def test_estate_rules_hand_each_engine_only_the_readings_its_rules_read() -> None:
    from collector.estates import EstateRules

    clock = FakeClock()
    rules = EstateRules(clock)
    events: list[AlarmEvent] = []
    rules.listeners.append(events.append)

    def engine(sensor: str) -> AlarmEngine:
        rule = AlarmRule(AlarmKey("p1", "high"), "dom", Text(zh="高", en="high"),
                         (Level(Severity.MAJOR, Compare(sensor, 10, above=True)),), sensor=sensor)
        return AlarmEngine([rule], clock)

    rules.put("a", engine("t"))
    rules.put("b", engine("u"))
    rules.on_readings([Reading("a/t", 1.0, 11.0), Reading("a/u", 1.0, 12.0), Reading("b/u", 1.0, 13.0),
                       Reading("b/t", 1.0, 14.0), Reading("c/t", 1.0, 15.0)])
    assert (rules.engine("a").view.value("t"), rules.engine("a").view.value("u")) == (11.0, None)
    assert (rules.engine("b").view.value("u"), rules.engine("b").view.value("t")) == (13.0, None)
    assert [(e.action, e.sensor, e.value) for e in events] == [(AlarmAction.RAISED, "t", 11.0),
                                                               (AlarmAction.RAISED, "u", 13.0)]
    # A reload whose rules read another sensor: that sensor's readings come in, the old one's stay out.
    rules.put("a", engine("u"))
    rules.on_readings([Reading("a/t", 2.0, 1.0), Reading("a/u", 2.0, 2.0)])
    assert rules.engine("a").view.value("u") == 2.0
    assert rules.engine("a").view.value("t") == 11.0  # the view carried over; no new reading of t
    rules.remove("b")
    rules.on_readings([Reading("b/u", 3.0, 20.0)])  # nothing serves b any more: no error, nothing kept
    assert "b" not in rules.engines


async def test_a_muted_engine_follows_the_speakers_events_and_evaluates_from_them_when_it_speaks(
        tmp_path: Path) -> None:
    memory = AlarmMemory(tmp_path / "alarms.json", "north")
    rule = AlarmRule(KEY.in_estate("north"), "dom", MSG,
                     (Level(Severity.MAJOR, Compare("t", 110, above=True)),), sensor="t", worse="high")
    rig = Rig(rule)
    rig.engine.memory = memory
    rig.engine.mute()
    rig.feed("t", 115)
    await rig.wait(5)
    assert rig.events == []  # muted: nothing evaluated
    assert rig.engine.active() == {}
    assert rig.engine.view.value("t") == 115  # but the view is kept
    said = AlarmEvent(AlarmAction.RAISED, rule.key, Severity.MAJOR, rig.clock.now(), "dom", MSG, 115, "t")
    rig.engine.follow(said)  # the speaker raised it
    rig.engine.follow(AlarmEvent(AlarmAction.RAISED, AlarmKey("other", "x", "north"), Severity.MAJOR,
                                 rig.clock.now(), "dom", MSG))  # not one of this engine's rules
    assert rig.engine.active() == {rule.key: Severity.MAJOR}
    assert set(AlarmMemory(tmp_path / "alarms.json", "north").raised) == {rule.key}  # a restart takes it up
    assert rig.engine.speak() is True
    assert rig.engine.speak() is False
    rig.feed("t", 90)  # from the followed state: a clear, not a second raise
    assert rig.actions() == [("cleared", "major")]
    rig.engine.follow(said)  # speaking: its own events coming back change nothing
    assert rig.engine.active() == {}


async def test_a_taken_over_view_judges_no_silence_for_one_period() -> None:
    key = AlarmKey("dom-p1", "no_data")
    rig = Rig(AlarmRule(key, "dom", MSG, (Level(Severity.MAJOR, Silent(frozenset({"t"}), 30)),)))
    rig.engine.mute()
    await rig.wait(40)  # `t` went to the other member all along
    rig.engine.speak()
    await rig.wait(29)
    assert rig.events == []  # one period to hear from it
    rig.feed("t", 20)
    await rig.wait(29)
    assert rig.events == []
    await rig.wait(2)  # then silence counts again
    assert rig.actions() == [("raised", "major")]


def test_a_reading_heard_twice_changes_the_view_once_when_only_newer_ones_count() -> None:
    rig = Rig(temperature_rule())
    reading = Reading("t", 5.0, 115)
    assert rig.engine.view.update([reading]) == {"t"}
    assert rig.engine.view.update([reading], only_newer=True) == set()
    assert rig.engine.view.update([Reading("t", 4.0, 90)], only_newer=True) == set()
    assert rig.engine.view.update([Reading("t", 6.0, 116)], only_newer=True) == {"t"}
    assert rig.engine.view.update([Reading("t", 6.0, 117)]) == {"t"}  # the pipeline's own: kept, as before


def test_only_a_no_data_test_can_change_with_time_alone() -> None:
    still, silent = Still("t", 60), Silent(frozenset({"t"}), 30)
    assert not timed(Compare("t", 1, above=True))
    assert not timed(StateIn("sw", frozenset({2})))
    assert not timed(AllOf([still, AnyOf([Compare("t", 1, above=True)])]))
    assert timed(silent)
    assert timed(AnyOf([Compare("t", 1, above=True), AllOf([silent])]))


async def test_the_timer_evaluates_what_time_can_change_and_leaves_quiet_thresholds_to_their_readings(
) -> None:
    no_data = AlarmRule(AlarmKey("dom-p1", "no_data"), "dom", MSG,
                        (Level(Severity.MAJOR, Silent(frozenset({"t"}), 600)),))
    rig = Rig(temperature_rule(), no_data)
    rig.feed("t", 100)
    before = rig.engine.evaluations
    await rig.wait(1)  # the first tick evaluates every rule
    assert rig.engine.evaluations - before == 2
    before = rig.engine.evaluations
    await rig.wait(10)
    assert rig.engine.evaluations - before == 10  # the no-data rule only: the threshold stays quiet
    rig.feed("t", 115)  # holding: the timer counts its duration down
    before = rig.engine.evaluations
    await rig.wait(60)
    assert rig.engine.evaluations - before == 120
    assert rig.actions() == [("raised", "major")]
    await rig.wait(5)  # raised: evaluated every tick (peak, hysteresis)
    rig.feed("t", 90)
    assert rig.actions() == [("raised", "major"), ("cleared", "major")]
    before = rig.engine.evaluations
    await rig.wait(5)
    assert rig.engine.evaluations - before == 5


async def test_a_muted_engine_that_speaks_again_evaluates_every_rule_at_the_next_tick() -> None:
    rule = AlarmRule(KEY, "dom", MSG, (Level(Severity.MAJOR, Compare("t", 110, above=True)),), sensor="t")
    rig = Rig(rule)
    await rig.wait(1)  # the first sweep: no value yet
    rig.engine.mute()
    rig.feed("t", 115)  # the view moves, nothing is evaluated, and the speaker's raise went elsewhere
    await rig.wait(3)
    assert rig.events == []
    rig.engine.speak()
    await rig.wait(1)  # no new reading: the tick finds the threshold crossed
    assert rig.actions() == [("raised", "major")]
