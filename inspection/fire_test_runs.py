"""Fire and sprinkler pump test runs recognised from readings (GB 50974-2014, 14.0.4).

The standard asks for a start under simulated automatic control every week, recorded automatically, and a
start by hand every month with the power supply checked. A plan with `test_run` makes the task of each
occurrence; this module watches the pumps it covers that are instrumented (run feedback or motor current)
and judges every run it sees start and stop: it ran the plan's minutes, its mean current was within
`plans.test_runs.current_range` of rated and never above it, and the outlet or main pressure reached the
pump's test pressure.

- A run under automatic control (the switch in AUTO, or no switch sensor) that passes completes the open
  task of an `auto` plan by itself: the figures go on its checklist and in a note, the record says it was
  auto-recorded, and it waits for the supervisor's verification like any completion. No person signed it,
  so `technician_signed_by` stays empty (the system is not a user and must never appear as the technician);
  `technician_signed_at` is when the system recorded it, and the audit row's actor is "system". A
  supervisor may verify it: nobody who verifies did the work.
- A run started by hand (the switch in MANUAL) fills in the figures of the open task of a `manual` plan;
  the technician who started the pump completes and signs it (a person was there, and the record names
  them).
- A task a technician has already started only gets the figures as a note. A run long enough that fails a
  check also leaves a note saying why it does not count; shorter runs (a jockey pump cycling) leave none.

Readings come through `on_readings` (the collector's hook, or the scheduler's poll of the latest values);
the tasks are written by `record`, which the scheduler's leader calls from its tick, off the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.calendar import plan_targets
from maintenance.estates import estate_key
from maintenance.models import JsonDict, Task, utc_from_epoch
from maintenance.task_history import sync_cycle
from maintenance.tasks import task_snapshot
from maintenance.vocab import OPEN_TASK_STATES, TaskState
from pumpwatch.clock import Clock
from pumpwatch.plans import (
    BACK_TO_AUTO,
    PRESSURE_REACHED,
    RUN_MINUTES,
    RUNNING_CURRENT,
    STARTED,
    SUPPLY_VOLTAGE,
    Plan,
    PumpTestSettings,
)
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import EquipmentBase, Header, PressureTank, Pump, Room, Sensor, SensorKind, Site, Text

log = logging.getLogger(__name__)

Start = Literal["auto", "manual"]
# completed: auto-recorded; figures: filled in for the technician; noted: a note only; ignored: a run too
# short to be a test (a jockey pump cycling); no_task: no open task of a test-run plan for the pump.
Outcome = Literal["completed", "figures", "noted", "ignored", "no_task"]
MAX_SAMPLES = 50_000  # samples kept per sensor and run (14 h at one a second): enough for any test run
AUTO_RECORDED = Text(zh="系统根据读数自动记录，待主管核验",
                     en="Auto-recorded by the system from readings; awaiting the supervisor's verification")
_NOT_SEEN = Text(zh="读数无法判断，请在下次巡检时确认",
                 en="not observable from readings: confirm on the next round")
_TRUSTED = frozenset({Quality.GOOD, Quality.OUT_OF_RANGE})  # a device error or a stale value says nothing
_WORKABLE = frozenset({TaskState.RAISED.value, TaskState.ASSIGNED.value})  # nobody has started on it


@dataclass(frozen=True, slots=True)
class PumpPoints:
    """The sensors a pump's test run is judged from (None where the site has none)."""

    pump: Pump
    room: str
    running: str | None  # run feedback
    current: str | None
    switch: str | None
    switch_auto: float | None  # the switch code of AUTO
    pressure: str | None  # the pump's own outlet pressure, else the room's header or main
    voltage: str | None  # the room's supply voltage
    test_pressure: float  # MPa the run must reach

    def sensors(self) -> set[str]:
        """Every sensor id watched for this pump."""
        return {s for s in (self.running, self.current, self.switch, self.pressure, self.voltage)
                if s is not None}


@dataclass(frozen=True, slots=True)
class RunSeen:
    """One run of a pump from start to stop, with what the readings showed and whether it counts."""

    pump: str
    start: Start
    started: float
    stopped: float
    peak_current: float | None
    mean_current: float | None
    pressure: float | None  # the highest while it ran
    voltage: tuple[float, float] | None  # lowest and highest while it ran
    switch_auto_after: bool | None
    problems: tuple[Text, ...]

    @property
    def minutes(self) -> float:
        """How long it ran."""
        return (self.stopped - self.started) / 60

    @property
    def passed(self) -> bool:
        """True when every check the pump's sensors allow passed."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class RunRecorded:
    """What became of a run: the task it went on (None: none open) and how."""

    run: RunSeen
    plan: str | None
    task_id: int | None
    outcome: Outcome


@dataclass
class _Run:
    started: float
    manual: bool
    currents: list[tuple[float, float]] = field(default_factory=list)
    pressures: list[tuple[float, float]] = field(default_factory=list)
    voltages: list[tuple[float, float]] = field(default_factory=list)


class PumpTestRuns:
    """Sees fire and sprinkler pumps' runs in readings and records the test runs on their tasks."""

    def __init__(self, site: Site, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.site = site
        self.settings = site.plans.test_runs
        self.clock = clock
        self.zone = ZoneInfo(site.site.timezone)
        self._sessions = sessions
        self.plans: dict[Start, list[Plan]] = {"auto": [], "manual": []}
        covered: set[str] = set()
        for plan in site.plans.effective():
            if plan.test_run is not None:
                self.plans[plan.test_run.start].append(plan)
                covered |= {t.id for t in plan_targets(site, plan)}
        self.points = {p: pts for p, pts in pump_points(site, self.settings).items() if p in covered}
        self._by_sensor: dict[str, list[PumpPoints]] = {}
        for pts in self.points.values():
            for sensor in pts.sensors():
                self._by_sensor.setdefault(sensor, []).append(pts)
        self._latest: dict[str, Reading] = {}
        self._running: dict[str, bool] = {}
        self._runs: dict[str, _Run] = {}
        self._finished: list[RunSeen] = []

    def carry_over(self, old: PumpTestRuns) -> None:
        """Keep the readings seen and the runs under way of the watcher this one replaces (a reload)."""
        self._latest = dict(old._latest)
        self._running = {pump: on for pump, on in old._running.items() if pump in self.points}
        self._runs = {pump: run for pump, run in old._runs.items() if pump in self.points}
        self._finished = list(old._finished)

    # -- readings ----------------------------------------------------------------------------------
    def sensors(self) -> set[str]:
        """Every sensor whose readings test runs need."""
        return set(self._by_sensor)

    def latest(self, sensor: str) -> Reading | None:
        """The newest reading seen of `sensor`."""
        return self._latest.get(sensor)

    @property
    def busy(self) -> bool:
        """True while a pump is in a run (its stop should be seen soon)."""
        return bool(self._runs)

    @property
    def pending(self) -> bool:
        """True when finished runs wait for `record`."""
        return bool(self._finished)

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Readings hook: follow each watched pump through its runs."""
        usable = (r for r in readings if r.sensor in self._by_sensor and r.quality in _TRUSTED)
        for reading in sorted(usable, key=lambda r: r.ts):
            known = self._latest.get(reading.sensor)
            if known is not None and (reading.ts < known.ts or reading[:3] == known[:3]):
                continue  # older than one already judged, or the same one again (hook and poll)
            self._latest[reading.sensor] = reading
            for pts in self._by_sensor[reading.sensor]:
                self._follow(pts, reading)

    def _follow(self, pts: PumpPoints, reading: Reading) -> None:
        pump = pts.pump.id
        sensor, value, ts = reading.sensor, reading.value, reading.ts
        run = self._runs.get(pump)
        if run is not None:
            for watched, samples in ((pts.current, run.currents), (pts.pressure, run.pressures),
                                     (pts.voltage, run.voltages)):
                if sensor == watched and len(samples) < MAX_SAMPLES:
                    samples.append((ts, value))
        if sensor == pts.switch and run is not None and not self._is_auto(pts, value):
            run.manual = True
        indicator = pts.running if pts.running is not None else pts.current
        if sensor != indicator:
            return
        if pts.running is not None:
            running = value >= 0.5
        else:
            running = value >= self.settings.running_current * pts.pump.rated_current
        was = self._running.get(pump)
        self._running[pump] = running
        if running and was is False:  # a start seen (a pump found running has no start to judge)
            self._runs[pump] = self._new_run(pts, ts)
        elif not running and run is not None:
            del self._runs[pump]
            self._finished.append(self._judge(pts, run, ts))

    def _new_run(self, pts: PumpPoints, ts: float) -> _Run:
        switch = self._latest.get(pts.switch) if pts.switch is not None else None
        return _Run(started=ts, manual=switch is not None and not self._is_auto(pts, switch.value))

    @staticmethod
    def _is_auto(pts: PumpPoints, value: float) -> bool:
        return pts.switch_auto is None or abs(value - pts.switch_auto) < 0.5

    def _judge(self, pts: PumpPoints, run: _Run, stopped: float) -> RunSeen:
        start: Start = "manual" if run.manual else "auto"
        judged = [v for ts, v in run.currents if run.started + self.settings.start_seconds <= ts < stopped]
        peak = max(judged, default=None)
        mean = sum(judged) / len(judged) if judged else None
        pressures = [v for ts, v in run.pressures if run.started <= ts < stopped]
        pressure = max(pressures, default=None)
        volts = [v for ts, v in run.voltages if run.started <= ts < stopped]
        voltage = (min(volts), max(volts)) if volts else None
        switch = self._latest.get(pts.switch) if pts.switch is not None else None
        auto_after = None if switch is None else self._is_auto(pts, switch.value)
        problems: list[Text] = []
        minutes = (stopped - run.started) / 60
        need = self.minutes(pts.pump.id, start)
        if minutes < need:
            problems.append(Text(zh=f"只运行了 {minutes:.1f} 分钟，不足 {need:g} 分钟",
                                 en=f"ran {minutes:.1f} min, less than {need:g} min"))
        rated = pts.pump.rated_current
        low, high = self.settings.current_range
        if pts.current is not None:
            if mean is None:
                problems.append(Text(zh="运行期间无电流读数", en="no current reading while it ran"))
            elif mean < low * rated:
                problems.append(Text(zh=f"平均电流 {mean:.1f} A 低于额定电流的 {low:.0%}",
                                     en=f"mean current {mean:.1f} A is under {low:.0%} of rated"))
            if peak is not None and peak > high * rated:
                problems.append(Text(zh=f"电流最高 {peak:.1f} A 超过额定电流的 {high:.0%}",
                                     en=f"current peaked at {peak:.1f} A, over {high:.0%} of rated"))
        if pts.pressure is not None and (pressure is None or pressure < pts.test_pressure):
            reached = "-" if pressure is None else f"{pressure:.2f}"
            problems.append(Text(zh=f"压力最高 {reached} MPa，未达到 {pts.test_pressure:.2f} MPa",
                                 en=f"pressure reached {reached} MPa, not {pts.test_pressure:.2f} MPa"))
        return RunSeen(pts.pump.id, start, run.started, stopped, peak, mean, pressure, voltage, auto_after,
                       tuple(problems))

    def minutes(self, pump: str, start: Start) -> float:
        """The minutes a run must last: the least of the plans of this kind of start that cover the pump."""
        wanted = [p.test_run.minutes for p in self.plans[start] if p.test_run is not None]
        return min(wanted, default=5.0)

    # -- recording ---------------------------------------------------------------------------------
    def record(self) -> list[RunRecorded]:
        """Put every finished run on its task (idempotent per run and task state); call from one leader."""
        out: list[RunRecorded] = []
        while self._finished:
            run = self._finished.pop(0)
            try:
                out.append(self._record(run))
            except Exception:  # the database may be away: the run is put back for the next tick
                self._finished.insert(0, run)
                raise
        return out

    def _record(self, run: RunSeen) -> RunRecorded:
        if not run.passed and run.minutes < self.minutes(run.pump, run.start):
            return RunRecorded(run, None, None, "ignored")  # cycling on demand, not a test
        now = utc_from_epoch(self.clock.now())
        for plan in self.plans[run.start]:
            with self._sessions.begin() as session:
                task = self._task_for(session, plan, run)
                if task is None:
                    continue
                before = task_snapshot(task)
                outcome: Outcome
                if not run.passed:
                    self._note(task, run, now)
                    outcome = "noted"
                elif run.start == "auto" and task.state in _WORKABLE:
                    self._complete(task, run, now)
                    outcome = "completed"
                elif run.start == "manual":
                    self._figures(task, run, now)
                    outcome = "figures"
                else:
                    self._note(task, run, now)
                    outcome = "noted"
                task.updated_at = now
                sync_cycle(task)  # the current cycle of work keeps the record too
                session.flush()
                action = "auto_recorded" if outcome == "completed" else "test_run_seen"
                audit.record_change(session, audit.SYSTEM, "task", task.id, action, before,
                                    task_snapshot(task), now)
                log.info("pump %s test run (%s, %.1f min): %s task %s", run.pump, run.start, run.minutes,
                         outcome, task.id)
                return RunRecorded(run, plan.id, task.id, outcome)
        return RunRecorded(run, None, None, "no_task")

    def _task_for(self, session: Session, plan: Plan, run: RunSeen) -> Task | None:
        """The open task of `plan` whose window holds the run's start, else the pump's latest overdue one.

        A missed week stays missed: this week's run is this week's.
        """
        opened = utc_from_epoch(run.started)
        rows = session.scalars(
            select(Task).where(Task.plan_key.startswith(
                estate_key(self.site.site.id, f"{plan.id}:{run.pump}@"), autoescape=True),
                               Task.state.in_([s.value for s in OPEN_TASK_STATES]))
            .order_by(Task.due_at, Task.id).with_for_update()).all()
        lead = plan.lead_hours * 3600
        started = [t for t in rows if t.due_at is not None and t.due_at.timestamp() - lead <= run.started]
        current = [t for t in started if t.due_at is not None and t.due_at >= opened]
        if current:
            return current[0]
        return started[-1] if started else None

    def _complete(self, task: Task, run: RunSeen, now: datetime) -> None:
        at = now.isoformat()
        task.checklist = [self._answer(item, run, at) for item in task.checklist]
        task.state = TaskState.DONE.value
        # The work began when the pump started: that answers the response clock and is the start of work.
        task.started_at = task.started_at or utc_from_epoch(run.started)
        task.responded_at = task.responded_at or utc_from_epoch(run.started)
        summary = self._summary(run)
        task.fault_cause = "例行试验，无故障 / Routine test, no fault"
        task.action_taken = f"{summary.zh}\n{summary.en}"
        task.remarks = f"{AUTO_RECORDED.zh} / {AUTO_RECORDED.en}"
        task.technician_signed_by = None  # no person signed: the record says it was auto-recorded
        task.technician_signed_at = now
        task.notes = [*task.notes, self._note_entry(task, run, summary, at, auto_recorded=True)]

    def _figures(self, task: Task, run: RunSeen, now: datetime) -> None:
        at = now.isoformat()
        figures = self._values(run)
        task.checklist = [item | {"value": figures[str(item["key"])][0], "note": figures[str(item["key"])][1],
                                  "auto": True}
                          if str(item["key"]) in figures and item.get("result") is None else item
                          for item in task.checklist]
        task.notes = [*task.notes, self._note_entry(task, run, self._summary(run), at)]

    def _note(self, task: Task, run: RunSeen, now: datetime) -> None:
        summary = self._summary(run)
        if run.problems:
            why_zh = "；".join(p.zh for p in run.problems)
            why_en = "; ".join(p.en for p in run.problems)
            summary = Text(zh=f"{summary.zh}；不计为试验：{why_zh}",
                           en=f"{summary.en}; not counted: {why_en}")
        task.notes = [*task.notes, self._note_entry(task, run, summary, now.isoformat())]

    @staticmethod
    def _note_entry(task: Task, run: RunSeen, summary: Text, at: str,
                    auto_recorded: bool = False) -> JsonDict:
        return {"text": f"{summary.zh}\n{summary.en}", "by": None, "at": at, "cycle": task.cycle,
                "auto": True, "auto_recorded": auto_recorded,
                "test_run": {"start": run.start, "started": utc_from_epoch(run.started).isoformat(),
                             "stopped": utc_from_epoch(run.stopped).isoformat(),
                             "minutes": round(run.minutes, 2),
                             "peak_current": _rounded(run.peak_current, 2),
                             "mean_current": _rounded(run.mean_current, 2),
                             "pressure": _rounded(run.pressure, 3),
                             "voltage": list(run.voltage) if run.voltage is not None else None,
                             "counted": run.passed}}

    def _values(self, run: RunSeen) -> dict[str, tuple[float | None, str]]:
        """Checklist key -> (value, note) for what the readings tell."""
        rated = self.points[run.pump].pump.rated_current
        out: dict[str, tuple[float | None, str]] = {
            STARTED: (None, f"{self._local(run.started)} ({'AUTO' if run.start == 'auto' else 'MANUAL'})"),
            RUN_MINUTES: (round(run.minutes, 1), f"{self._local(run.started)}-{self._local(run.stopped)}"),
        }
        if run.mean_current is not None and run.peak_current is not None:
            out[RUNNING_CURRENT] = (round(run.mean_current, 1),
                                    f"mean {run.mean_current:.1f} A, peak {run.peak_current:.1f} A, "
                                    f"rated {rated:g} A")
        if run.pressure is not None:
            out[PRESSURE_REACHED] = (round(run.pressure, 3), f"highest {run.pressure:.3f} MPa")
        if run.voltage is not None:
            low, high = run.voltage
            out[SUPPLY_VOLTAGE] = (round(low, 1), f"{low:.1f}-{high:.1f} V while it ran")
        if run.switch_auto_after is not None:
            out[BACK_TO_AUTO] = (None, "AUTO" if run.switch_auto_after else "not AUTO")
        return out

    def _answer(self, item: JsonDict, run: RunSeen, at: str) -> JsonDict:
        """The item as the system answers it: measured and passed, or not observable (na)."""
        figures = self._values(run)
        key = str(item["key"])
        if key in figures:
            value, note = figures[key]
            result = "ok" if key != BACK_TO_AUTO or run.switch_auto_after else "fault"
            return item | {"result": result, "value": value, "note": note, "by": None, "at": at, "auto": True}
        return item | {"result": "na", "value": None, "note": f"{_NOT_SEEN.zh} / {_NOT_SEEN.en}", "by": None,
                       "at": at, "auto": True}

    def _summary(self, run: RunSeen) -> Text:
        how = "自动" if run.start == "auto" else "手动"
        zh = [f"{self._local(run.started)} {how}启动，运行 {run.minutes:.1f} 分钟"]
        en = [f"{'Automatic' if run.start == 'auto' else 'Manual'} start at {self._local(run.started)}, "
              f"ran {run.minutes:.1f} min"]
        if run.mean_current is not None and run.peak_current is not None:
            zh.append(f"电流平均 {run.mean_current:.1f} A、最高 {run.peak_current:.1f} A")
            en.append(f"current mean {run.mean_current:.1f} A, peak {run.peak_current:.1f} A")
        if run.pressure is not None:
            zh.append(f"压力达到 {run.pressure:.2f} MPa")
            en.append(f"pressure reached {run.pressure:.2f} MPa")
        if run.voltage is not None:
            zh.append(f"电压 {run.voltage[0]:.0f}-{run.voltage[1]:.0f} V")
            en.append(f"voltage {run.voltage[0]:.0f}-{run.voltage[1]:.0f} V")
        return Text(zh="，".join(zh), en=", ".join(en))

    def _local(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S")


def pump_points(site: Site, settings: PumpTestSettings) -> dict[str, PumpPoints]:
    """The test-run sensors of every fire and sprinkler pump with run feedback or a current sensor."""
    out: dict[str, PumpPoints] = {}
    for room in site.rooms:
        for eq in room.equipment:
            if not isinstance(eq, Pump) or eq.kind.value not in ("fire", "sprinkler"):
                continue
            running, current = _own(eq, SensorKind.RUN_STATUS), _own(eq, SensorKind.CURRENT)
            if running is None and current is None:
                continue  # not instrumented: the test run stays a technician's task
            switch = next((s for s in eq.sensors if s.kind is SensorKind.SWITCH_POSITION), None)
            auto = switch.state_codes.get("AUTO") if switch is not None else None
            out[eq.id] = PumpPoints(
                pump=eq, room=room.id, running=running, current=current,
                switch=switch.id if switch is not None and auto is not None else None,
                switch_auto=float(auto) if auto is not None else None,
                pressure=_own(eq, SensorKind.PRESSURE) or _room_sensor(room, SensorKind.PRESSURE,
                                                                       (Header, PressureTank)),
                voltage=_own(eq, SensorKind.VOLTAGE) or _room_sensor(room, SensorKind.VOLTAGE, None),
                test_pressure=settings.pressure.get(eq.id, settings.pressure_share * eq.shutoff_pressure))
    return out


def _own(eq: EquipmentBase, kind: SensorKind) -> str | None:
    return next((s.id for s in eq.sensors if s.kind is kind), None)


def _room_sensor(room: Room, kind: SensorKind, types: tuple[type[EquipmentBase], ...] | None) -> str | None:
    found: list[Sensor] = [s for s in room.sensors if s.kind is kind and types is None]
    for eq in room.equipment:
        if types is None or isinstance(eq, types):
            found += [s for s in eq.sensors if s.kind is kind and not isinstance(eq, Pump)]
    return found[0].id if found else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
