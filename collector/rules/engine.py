"""The alarm engine: evaluates rules on every reading batch and on a timer, and announces changes.

Each rule has severity levels, most severe first, each with a condition and a minimum duration.
A level counts once its condition has held for its duration; the engine keeps one alarm per rule
(per asset and alarm type), raising, escalating, de-escalating and clearing it. The timer makes a
condition that holds without new messages (a duration, no data) fire on time.

A muted engine (`mute`) keeps its view of the readings but evaluates nothing: another collector of a
shared-subscription group speaks for the estate (`collector.group`), and this engine follows the
alarm events that one announces (`follow`), so its alarm state and memory stay current. Given the word
(`speak`), it evaluates from that state; a no-data rule first waits one of its periods
(`SensorView.taken_over`), as the view had only this collector's share of the readings.

The timer evaluates only what time alone can change: rules with a no-data test, and rules that are
raised, counting down a duration or silenced. A quiet rule of thresholds, states or changes gives the
same answer until its sensors' next reading, which evaluates it anyway; the first tick, and the first
after a muted engine speaks again (its view moved without evaluations), evaluate every rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from collector.rules.conditions import Condition, SensorView, Silent, timed
from collector.rules.memory import AlarmMemory
from pumpwatch.alarm_events import SEVERITY_RANK, AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.clock import Clock
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Text

log = logging.getLogger(__name__)

PEAK_EVERY = 10.0  # seconds between two peak events of one alarm


@dataclass(frozen=True)
class Level:
    """One severity of a rule: its condition and how long it must hold."""

    severity: Severity
    condition: Condition
    for_seconds: float = 0.0


@dataclass(frozen=True)
class AlarmRule:
    """A rule: which alarm (asset, type), where, its message and levels (most severe first)."""

    key: AlarmKey
    room: str
    message: Text
    levels: tuple[Level, ...]
    sensor: str | None = None  # the sensor whose value the alarm reports
    worse: str | None = None  # "high" or "low": which way the peak value goes

    @property
    def sensors(self) -> frozenset[str]:
        """Every sensor any level reads."""
        return frozenset().union(*(lvl.condition.sensors for lvl in self.levels))

    @cached_property
    def timed(self) -> bool:
        """A level's answer can change with time alone (a no-data test): the timer always evaluates it."""
        return any(timed(lvl.condition) for lvl in self.levels)

    @cached_property
    def silence_only(self) -> bool:
        """Every level is a no-data condition: new readings can only end it, never start it."""
        return all(isinstance(lvl.condition, Silent) for lvl in self.levels)


@dataclass
class _State:
    severity: Severity | None = None
    since: dict[int, float] = field(default_factory=dict)  # level index -> holding since
    peak: float | None = None
    peak_told: float | None = None  # the peak last announced
    peak_sent: float = 0.0
    batch: int = 0  # the last batch of readings that evaluated the rule (`AlarmEngine.on_readings`)


EventListener = Callable[[AlarmEvent], None]


class AlarmEngine:
    """Runs a set of rules; hook `on_readings` into the pipeline and `run` the timer."""

    def __init__(self, rules: Sequence[AlarmRule], clock: Clock, *, transport: Clock | None = None,
                 history: dict[str, float] | None = None, tick: float = 1.0,
                 bus: LiveBus[AlarmEvent] | None = None, memory: AlarmMemory | None = None) -> None:
        self.rules = list(rules)
        self.clock = clock
        self.view = SensorView(history or {}, transport or clock)
        self.tick = tick
        self.bus = bus
        self.listeners: list[EventListener] = []
        self.silenced: dict[AlarmKey, float] = {}  # approved exceptions: key -> until (rule clock)
        self._states = {rule.key: _State() for rule in self.rules}
        # Per sensor, the rules that read it with their state: a batch finds them without hashing keys.
        self._by_sensor: dict[str, list[tuple[AlarmRule, _State]]] = {}
        for rule in self.rules:
            for sensor in rule.sensors:
                self._by_sensor.setdefault(sensor, []).append((rule, self._states[rule.key]))
        self._batches = 0
        # The sensors whose readings matter to a rule (read by a condition or reported); others are
        # left out before they reach the view.
        self.watched = frozenset(self._by_sensor) | {r.sensor for r in self.rules if r.sensor}
        self.evaluations = 0
        self.speaking = True
        self._sweep = True  # the next tick evaluates every rule (see the module)
        # The timer's rules: those time can change first, then the others with their state.
        self._timed = [rule for rule in self.rules if rule.timed]
        self._timeless = [(rule, self._states[rule.key]) for rule in self.rules if not rule.timed]
        self.memory = memory
        self._orphans: list[AlarmEvent] = []  # remembered alarms no rule raises any more
        if memory is not None:
            self._restore(memory)

    def on_readings(self, readings: Sequence[Reading], *, only_newer: bool = False,
                    names: Mapping[str, str] | None = None) -> None:
        """Pipeline hook: update the view, evaluate the rules that read the changed sensors.

        A no-data rule that is quiet and not counting down is skipped: fresh data can only keep it
        quiet (the timer still evaluates it every tick). `only_newer`, `names`: see `SensorView.update`.
        """
        changed = self.view.update(readings, only_newer=only_newer, names=names)
        if not self.speaking:
            return
        now = self.clock.now()
        self._batches += 1
        batch = self._batches
        by_sensor = self._by_sensor
        for sensor in changed:
            for rule, state in by_sensor.get(sensor, ()):
                if state.batch == batch:
                    continue  # evaluated for another sensor of this batch
                state.batch = batch
                if rule.silence_only and state.severity is None and not state.since:
                    continue
                self._evaluate(rule, now, state)

    def evaluate_all(self) -> None:
        """The timer's job: evaluate the rules time can change (see the module); a muted engine, none."""
        if not self.speaking:
            return
        now = self.clock.now()
        while self._orphans:
            last = self._orphans.pop()
            self._emit(AlarmEvent(AlarmAction.CLEARED, last.key, last.severity, now, last.room,
                                  last.message, None, last.sensor))
        sweep, self._sweep = self._sweep, False
        silenced = self.silenced
        for rule in self._timed:
            self._evaluate(rule, now)
        for rule, state in self._timeless:
            if sweep or state.severity is not None or state.since or (silenced and rule.key in silenced):
                self._evaluate(rule, now, state)

    async def run(self) -> None:
        """The timer: `evaluate_all` once per tick until cancelled."""
        while True:
            await self.clock.sleep(self.tick)
            try:
                self.evaluate_all()
            except Exception:  # a broken rule must not stop the others
                log.exception("alarm evaluation failed")

    def silence(self, key: AlarmKey, until: float) -> None:
        """An approved exception: the alarm stays quiet (and clears) until `until`."""
        self.silenced[key] = until

    def mute(self) -> None:
        """Evaluate nothing, follow the speaker's events instead (see the module)."""
        self.speaking = False

    def speak(self) -> bool:
        """Evaluate again, from the state followed meanwhile; whether the engine was muted."""
        if self.speaking:
            return False
        self.speaking = True
        self._sweep = True
        self.view.taken_over = self.view.transport.now()
        return True

    def follow(self, event: AlarmEvent) -> None:
        """A muted engine takes an event the estate's speaker announced: its state and memory follow."""
        state = self._states.get(event.key)
        if self.speaking or state is None:
            return
        if event.action is AlarmAction.CLEARED:
            state.severity = state.peak = None
        elif event.action is AlarmAction.PEAK:
            state.peak = state.peak_told = event.value
        else:
            if state.severity is None:
                state.peak = state.peak_told = event.value
            state.severity = event.severity
        state.since.clear()  # the speaker's duration clocks are not known here; they start again
        self._remember(event)

    def active(self) -> dict[AlarmKey, Severity]:
        """Alarms currently raised by this engine."""
        return {key: s.severity for key, s in self._states.items() if s.severity is not None}

    # --- evaluation ------------------------------------------------------------------------------

    def _evaluate(self, rule: AlarmRule, now: float, state: _State | None = None) -> None:
        self.evaluations += 1
        if state is None:
            state = self._states[rule.key]
        current = state.severity
        until = self.silenced.get(rule.key) if self.silenced else None
        if until is not None and now >= until:
            del self.silenced[rule.key]
            until = None
        target: Severity | None = None
        unknown = False
        for i, level in enumerate(rule.levels):
            within = current is not None and SEVERITY_RANK[level.severity] <= SEVERITY_RANK[current]
            result = False if until is not None else level.condition.holds(self.view, now, within)
            if result is None:
                unknown = True
                state.since.pop(i, None)
                continue
            if not result:
                state.since.pop(i, None)
                continue
            since = state.since.setdefault(i, now)
            if target is None and (within or now - since >= level.for_seconds):
                target = level.severity
        if target is None and unknown and current is not None:
            return  # data missing: keep the alarm as it is (the no-data rule speaks for that)
        if target != current:
            self._transition(rule, state, current, target, now)
        elif target is not None:
            self._track_peak(rule, state, now)

    def _transition(self, rule: AlarmRule, state: _State, current: Severity | None,
                    target: Severity | None, now: float) -> None:
        value = self.view.value(rule.sensor) if rule.sensor else None
        if target is None:
            assert current is not None
            state.severity = None
            self._emit(AlarmEvent(AlarmAction.CLEARED, rule.key, current, now, rule.room, rule.message,
                                  value, rule.sensor))
            state.peak = None
            return
        if current is None:
            action = AlarmAction.RAISED
            state.peak = state.peak_told = value
            state.peak_sent = now
        elif SEVERITY_RANK[target] > SEVERITY_RANK[current]:
            action = AlarmAction.ESCALATED
        else:
            action = AlarmAction.DEESCALATED
        state.severity = target
        self._emit(AlarmEvent(action, rule.key, target, now, rule.room, rule.message, value, rule.sensor))

    def _track_peak(self, rule: AlarmRule, state: _State, now: float) -> None:
        """Follow the worst value; announce it when it changed, at most every PEAK_EVERY seconds."""
        if rule.sensor is None or rule.worse is None or state.severity is None:
            return
        value = self.view.value(rule.sensor)
        if value is not None and (state.peak is None or (
                value > state.peak if rule.worse == "high" else value < state.peak)):
            state.peak = value
        if state.peak != state.peak_told and now - state.peak_sent >= PEAK_EVERY:
            state.peak_sent = now
            state.peak_told = state.peak
            self._emit(AlarmEvent(AlarmAction.PEAK, rule.key, state.severity, now, rule.room,
                                  rule.message, state.peak, rule.sensor))

    def _restore(self, memory: AlarmMemory) -> None:
        """Take up the alarms raised before a restart: each clears once its condition is over."""
        for key, last in memory.raised.items():
            state = self._states.get(key)
            if state is None:
                self._orphans.append(last)
            else:
                state.severity = last.severity
                state.peak = state.peak_told = last.value
        if memory.raised:
            log.info("took up %d raised alarms from %s", len(memory.raised), memory.path)

    def _remember(self, event: AlarmEvent) -> None:
        if self.memory is not None:
            try:
                self.memory.remember(event)
            except OSError:  # a full disk must not stop alarms; the next change writes it again
                log.exception("could not write the alarm memory")

    def _emit(self, event: AlarmEvent) -> None:
        self._remember(event)
        log.log(logging.WARNING if event.action is not AlarmAction.CLEARED else logging.INFO,
                "alarm %s %s (%s): %s [estate %s]", event.key, event.action.value, event.severity.value,
                event.message.en, event.key.estate or "-",
                extra={"alarm": str(event.key), "estate": event.key.estate, "action": event.action.value})
        if self.bus is not None:
            self.bus.publish(event)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # one failing listener must not keep the event from the others
                log.exception("alarm listener %r failed", listener)

