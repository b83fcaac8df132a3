"""Duty/standby rotation: pick the next duty pump of a group, command or request the swap, verify it.

The regulation swaps domestic pumps every other day. A group with a writable duty_select point is
switched through `command` (the collector's Modbus write); otherwise the rotation task asks a technician
and verification starts when the task is reported done. Either way the new duty pump must prove itself
from readings within `verify_minutes`: when there is demand (supply pressure below the group's start
pressure, or its run command set) it must draw current, and the pressure must come back up. A swap that
fails raises a `rotation_failed` alarm event and a corrective task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inspection.duty_points import group_points
from maintenance.estates import estate_key
from maintenance.models import Alarm, Task
from maintenance.tasks import TaskService
from maintenance.vocab import OPEN_TASK_STATES, AlarmState, Priority, TaskKind, TaskState
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import Clock
from pumpwatch.plans import RotationSettings
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text

log = logging.getLogger(__name__)

Command = Callable[[str, float], Awaitable[None]]
EventListener = Callable[[AlarmEvent], None]
ALARM_TYPE = "rotation_failed"


class Outcome(StrEnum):
    """Where a rotation stands."""

    AWAITING_CONFIRMATION = "awaiting_confirmation"  # a technician swaps by hand
    VERIFYING = "verifying"
    VERIFIED = "verified"
    FAILED = "failed"
    NO_STANDBY = "no_standby"  # every other pump is under maintenance or in alarm


@dataclass(frozen=True, slots=True)
class RotationChoice:
    """The outcome of choosing: who was duty, who will be, who was passed over and why."""

    group: str
    room: str
    previous: str | None
    chosen: str | None
    passed_over: tuple[tuple[str, str], ...] = ()  # (pump, reason)
    automatic: bool = False  # commanded through the duty_select point

    @property
    def duty(self) -> str | None:
        """The pump on duty after this rotation."""
        return self.chosen or self.previous


@dataclass(frozen=True, slots=True)
class RotationResult:
    """How one rotation ended (or stands), for logs, status and tests."""

    group: str
    pump: str | None
    outcome: Outcome
    at: float
    reason: Text | None = None


@dataclass
class _Watch:
    choice: RotationChoice
    plan_key: str
    started: float
    deadline: float
    pressure: float | None = None
    commanded: bool = False  # the pump's own run command is set
    running: bool = False
    ran_at: float | None = None
    demand_since: float | None = None
    readback_bad_since: float | None = None


@dataclass
class _Awaiting:
    choice: RotationChoice
    plan_key: str
    task_id: int


@dataclass
class _Pending:
    watches: dict[str, _Watch] = field(default_factory=dict)
    awaiting: dict[str, _Awaiting] = field(default_factory=dict)


class DutyRotation:
    """Chooses, starts and verifies rotations; feed it readings through `on_readings`."""

    def __init__(self, site: Site, sessions: sessionmaker[Session], tasks: TaskService, clock: Clock, *,
                 command: Command | None = None, settings: RotationSettings | None = None,
                 plan_id: str = "duty-rotation", failure_tasks: bool = True) -> None:
        self.site = site
        self.settings = settings or site.plans.rotation
        self.clock = clock
        self.command = command
        self.plan_id = plan_id
        self.failure_tasks = failure_tasks
        self.listeners: list[EventListener] = []
        self.results: list[RotationResult] = []
        self.groups = group_points(site, self.settings)
        self.estate = site.site.id
        self._sessions = sessions
        self._tasks = tasks
        self._latest: dict[str, Reading] = {}
        self._pending = _Pending()
        self._alarmed: set[str] = set()
        self._watched = set().union(*(g.sensors() for g in self.groups.values())) if self.groups else set()

    # -- choosing ----------------------------------------------------------------------------------
    def duty(self, group_id: str) -> str | None:
        """The duty pump now: the PLC's duty_select readback, else the last rotation's pump."""
        points = self.groups[group_id]
        if points.duty_select is not None and points.duty_select in self._latest:
            pump = points.pump_of_code(self._latest[points.duty_select].value)
            if pump is not None:
                return pump
        with self._sessions() as session:
            return session.scalar(select(Task.asset)
                                  .where(Task.plan_key.startswith(self._key_prefix(group_id),
                                                                  autoescape=True),
                                         Task.kind != TaskKind.CORRECTIVE.value)
                                  .order_by(Task.created_at.desc(), Task.id.desc()).limit(1))

    def carry_over(self, old: DutyRotation) -> None:
        """Keep the readings seen and the rotations under way of the rotation this one replaces (a reload).

        A rotation of a group the site file no longer has is dropped.
        """
        self._latest = dict(old._latest)
        self._alarmed = {group for group in old._alarmed if group in self.groups}
        self._pending.watches = {g: w for g, w in old._pending.watches.items() if g in self.groups}
        self._pending.awaiting = {g: a for g, a in old._pending.awaiting.items() if g in self.groups}

    def _key_prefix(self, group_id: str) -> str:
        """How the task keys of this group's rotations begin: `<estate>:<plan>:<group>@`."""
        return estate_key(self.estate, f"{self.plan_id}:{group_id}@")

    def unavailable(self, group_id: str) -> dict[str, str]:
        """Pumps of the group that must not take duty, with why: maintenance, alarm, failed rotation."""
        points = self.groups[group_id]
        pumps = list(points.pumps)
        owner = {s.id: p for p, pump in points.pumps.items() for s in pump.sensors}
        out: dict[str, str] = {}
        with self._sessions() as session:
            for pump in session.scalars(select(Task.asset).where(
                    Task.estate == self.estate, Task.asset.in_(pumps),
                    Task.state == TaskState.IN_PROGRESS.value)):
                if pump is not None:
                    out.setdefault(pump, "under maintenance")
            for asset in session.scalars(select(Alarm.asset).where(
                    Alarm.estate == self.estate, Alarm.asset.in_(pumps + list(owner)),
                    Alarm.state == AlarmState.ACTIVE.value)):
                out.setdefault(owner.get(asset, asset), "active alarm")
            for pump in session.scalars(select(Task.asset).where(
                    Task.plan_key.startswith(self._key_prefix(group_id), autoescape=True),
                    Task.plan_key.endswith(":failed"), Task.asset.in_(pumps),
                    Task.state.in_([s.value for s in OPEN_TASK_STATES]))):
                if pump is not None:
                    out.setdefault(pump, "failed its last rotation")
        return out

    def choose(self, group_id: str) -> RotationChoice:
        """The next duty pump: the next in order (or fewest hours) that is free of maintenance and alarms."""
        points = self.groups[group_id]
        order = list(points.group.pumps)
        previous = self.duty(group_id)
        blocked = self.unavailable(group_id)
        start = order.index(previous) + 1 if previous in order else 0
        cyclic = [order[(start + i) % len(order)] for i in range(len(order))]
        candidates = [p for p in cyclic if p != previous and p not in blocked]
        if self.settings.strategy == "fewest_hours" and candidates:
            def hours(pump: str) -> float:
                sensor = points.hours.get(pump)
                reading = self._latest.get(sensor) if sensor else None
                return reading.value if reading is not None else float("inf")
            candidates.sort(key=hours)  # stable: ties keep the rotation order
        chosen = candidates[0] if candidates else None
        passed = tuple((p, blocked[p]) for p in cyclic if p in blocked and p != previous)
        return RotationChoice(group_id, points.room.id, previous, chosen, passed,
                              automatic=points.duty_select is not None and self.command is not None)

    def describe(self, choice: RotationChoice) -> tuple[Text, str]:
        """The task title suffix and description of a rotation."""
        def name(pump: str | None, en: bool) -> str:
            if pump is None:
                return "?" if en else "未知"
            pump_name = self.groups[choice.group].pumps[pump].name
            return pump_name.get("en" if en else "zh") if pump_name else pump

        if choice.chosen is None:
            keep_zh, keep_en = name(choice.previous, False), name(choice.previous, True)
            title = Text(zh=f"{choice.group}：无可用备用泵，保持 {keep_zh}",
                         en=f"{choice.group}: no standby available, {keep_en} stays on duty")
        else:
            title = Text(zh=f"{choice.group}：{name(choice.previous, False)} → {name(choice.chosen, False)}",
                         en=f"{choice.group}: {name(choice.previous, True)} -> {name(choice.chosen, True)}")
        if choice.automatic:
            how = ("Switched automatically through the PLC duty select; confirm on the next round. "
                   "由PLC主用泵选择自动切换，下次巡检时确认。")
        else:
            how = ("Swap the duty pump at the control cabinet, leave switches in AUTO, then report the task "
                   "done. 请在控制柜切换主用泵，开关置于自动位，完成后提交任务。")
        passed = "; ".join(f"{p}: {why}" for p, why in choice.passed_over)
        return title, how + (f" Passed over: {passed}." if passed else "")

    # -- starting and confirming -------------------------------------------------------------------
    async def start(self, choice: RotationChoice, plan_key: str, task_id: int) -> Outcome:
        """Command the swap (duty_select point) or wait for the technician's confirmation of task_id."""
        self._pending.watches.pop(choice.group, None)  # a newer rotation supersedes an unfinished one
        self._pending.awaiting.pop(choice.group, None)
        if choice.chosen is None:
            return self._record(choice, Outcome.NO_STANDBY)
        points = self.groups[choice.group]
        if not choice.automatic:
            self._pending.awaiting[choice.group] = _Awaiting(choice, plan_key, task_id)
            return self._record(choice, Outcome.AWAITING_CONFIRMATION)
        assert self.command is not None
        assert points.duty_select is not None
        try:
            await self.command(points.duty_select, points.codes[choice.chosen])
        except Exception as err:  # the PLC is offline or refused: that is a failed rotation, not a crash
            watch = self._watch(choice, plan_key)
            self._fail(watch, Text(zh=f"切换指令失败：{err}", en=f"the duty command failed: {err}"),
                       self.clock.now())
            return Outcome.FAILED
        self._pending.watches[choice.group] = self._watch(choice, plan_key)
        return self._record(choice, Outcome.VERIFYING)

    def confirm(self, group_id: str) -> bool:
        """The technician reports the swap done: start verifying from now. False if none was awaited."""
        awaiting = self._pending.awaiting.pop(group_id, None)
        if awaiting is None:
            return False
        self._pending.watches[group_id] = self._watch(awaiting.choice, awaiting.plan_key)
        self._record(awaiting.choice, Outcome.VERIFYING)
        return True

    def _watch(self, choice: RotationChoice, plan_key: str) -> _Watch:
        now = self.clock.now()
        watch = _Watch(choice, plan_key, started=now, deadline=now + self.settings.verify_minutes * 60)
        points = self.groups[choice.group]
        for sensor in (points.pressure,):  # the last pressure seen still tells whether there is demand
            if sensor is not None and sensor in self._latest:
                watch.pressure = self._latest[sensor].value
        return watch

    # -- verifying ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a rotation waits for confirmation or verification."""
        return bool(self._pending.watches or self._pending.awaiting)

    def next_deadline(self) -> float | None:
        """When the earliest verification window ends (clock seconds), if any is open."""
        return min((w.deadline for w in self._pending.watches.values()), default=None)

    def sensors(self) -> set[str]:
        """Every sensor whose readings rotation needs."""
        return set(self._watched)

    def latest(self, sensor: str) -> Reading | None:
        """The newest reading seen of `sensor`."""
        return self._latest.get(sensor)

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Readings hook: remember the newest values, and judge any rotation being verified."""
        for reading in sorted((r for r in readings if r.sensor in self._watched), key=lambda r: r.ts):
            known = self._latest.get(reading.sensor)
            if known is None or reading.ts >= known.ts:
                self._latest[reading.sensor] = reading
            for watch in list(self._pending.watches.values()):
                if reading.ts >= watch.started:
                    self._judge(watch, reading)

    def check(self, now: float | None = None) -> None:
        """Timer: start verifying swaps confirmed by hand, fail windows that ran out."""
        now = self.clock.now() if now is None else now
        if self._pending.awaiting:
            ids = {a.task_id: group for group, a in self._pending.awaiting.items()}
            with self._sessions() as session:
                rows = session.execute(select(Task.id, Task.state).where(Task.id.in_(ids))).all()
            states = {task_id: state for task_id, state in rows}
            for task_id, group in ids.items():
                state = states.get(task_id)
                if state in (TaskState.DONE.value, TaskState.VERIFIED.value):
                    self.confirm(group)
                elif state in (TaskState.CANCELLED.value, None):
                    self._pending.awaiting.pop(group, None)
        for watch in list(self._pending.watches.values()):
            if now >= watch.deadline:
                minutes = self.settings.verify_minutes
                reason = Text(zh=f"{minutes:g} 分钟内未见其运行并保持压力",
                              en=f"not seen running and holding pressure within {minutes:g} min")
                self._fail(watch, reason, now)

    def _judge(self, watch: _Watch, reading: Reading) -> None:
        points = self.groups[watch.choice.group]
        pump = watch.choice.chosen
        assert pump is not None
        value, ts = reading.value, reading.ts
        if reading.sensor == points.current.get(pump):
            rated = points.pumps[pump].rated_current
            watch.running = value >= self.settings.running_current * rated
        elif reading.sensor == points.running.get(pump) and pump not in points.current:
            watch.running = value >= 0.5  # no current sensor: the run feedback is all there is
        elif reading.sensor == points.command.get(pump):
            watch.commanded = value >= 0.5
        elif reading.sensor == points.pressure:
            watch.pressure = value
        elif reading.sensor == points.duty_select and watch.choice.automatic:
            if points.pump_of_code(value) == pump:
                watch.readback_bad_since = None
            elif watch.readback_bad_since is None:
                watch.readback_bad_since = ts
            elif ts - watch.readback_bad_since >= self.settings.failed_start_seconds:
                other = points.pump_of_code(value) or f"{value:g}"
                self._fail(watch, Text(zh=f"PLC 主用泵选择仍为 {other}", en=f"the PLC still reports {other} "
                                                                          "as duty"), ts)
                return
        start_pressure = points.group.control.start_pressure
        demanded = watch.commanded or (watch.pressure is not None and watch.pressure < start_pressure)
        if watch.running:
            watch.demand_since = None
            watch.ran_at = watch.ran_at if watch.ran_at is not None else ts
            if watch.pressure is not None and watch.pressure >= start_pressure:
                self._verified(watch, ts)
        elif demanded:
            watch.demand_since = watch.demand_since if watch.demand_since is not None else ts
            waited = ts - watch.demand_since
            if waited >= self.settings.failed_start_seconds:
                reason = Text(zh=f"需要运行 {waited:.0f} 秒仍无电流，未能启动",
                              en=f"demanded for {waited:.0f} s but drew no current: failed to start")
                self._fail(watch, reason, ts)
        else:
            watch.demand_since = None

    def _verified(self, watch: _Watch, ts: float) -> None:
        group = watch.choice.group
        self._pending.watches.pop(group, None)
        self._record(watch.choice, Outcome.VERIFIED, at=ts)
        if group in self._alarmed:
            self._alarmed.discard(group)
            back = Text(zh="轮换已恢复正常", en="rotation works again")
            self._emit(AlarmAction.CLEARED, watch.choice, ts, back)

    def _fail(self, watch: _Watch, reason: Text, ts: float) -> None:
        choice = watch.choice
        self._pending.watches.pop(choice.group, None)
        self._record(choice, Outcome.FAILED, at=ts, reason=reason)
        self._alarmed.add(choice.group)
        self._emit(AlarmAction.RAISED, choice, ts, reason)
        if self.failure_tasks and choice.chosen is not None:
            title = Text(zh=f"主备泵轮换失败：{choice.group} → {choice.chosen}",
                         en=f"Duty rotation failed: {choice.group} -> {choice.chosen}")
            try:
                self._tasks.create_from_plan(f"{watch.plan_key}:failed", title, kind=TaskKind.CORRECTIVE,
                                             priority=Priority.HIGH, asset=choice.chosen, room=choice.room,
                                             description=f"{reason.en} / {reason.zh}", estate=self.estate)
            except Exception:  # the alarm event is out; the next check may not see this failure again
                log.exception("could not create the task for the failed rotation of %s", choice.group)

    def _emit(self, action: AlarmAction, choice: RotationChoice, ts: float, reason: Text) -> None:
        message = Text(zh=f"{choice.group} 主备泵轮换失败：{choice.chosen} {reason.zh}",
                       en=f"Duty rotation of {choice.group} failed: {choice.chosen} {reason.en}")
        key = AlarmKey(choice.group, ALARM_TYPE, self.estate)
        event = AlarmEvent(action, key, Severity.MAJOR, ts, choice.room, message)
        log.log(logging.INFO if action is AlarmAction.CLEARED else logging.WARNING, "rotation %s %s: %s",
                choice.group, action.value, reason.en)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # one failing listener must not keep the event from the others
                log.exception("rotation alarm listener %r failed", listener)

    def _record(self, choice: RotationChoice, outcome: Outcome, at: float | None = None,
                reason: Text | None = None) -> Outcome:
        self.results.append(RotationResult(choice.group, choice.chosen, outcome,
                                           self.clock.now() if at is None else at, reason))
        return outcome
