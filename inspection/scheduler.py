"""InspectionScheduler: every plan occurrence becomes exactly one task, on time or (after a downtime) late.

The core is `catch_up(now)`: it creates the task of every occurrence that has opened since the last
catch-up (after a restart: within `catch_up_days`, and never before that plan first applied to that
target, as the audit trail records), keyed "<plan>:<occurrence key>", so calling it again, after a
crash or from a second process changes nothing. Work due once or twice a year (a seasonal window, the
half-yearly tank cleaning) cannot be missed: a window still open when the plan began to apply is created
at once, and one that opened while no scheduler ran is created at the restart, however long the outage.
The timer only calls it: a loop on the injected clock (tests, simulations), or APScheduler 3 with its jobs
in the state database for a process on the wall clock. One process leads (`LeaderLock`).

One scheduler serves every estate of the deployment: each estate's plans, rotation and test runs come from
its own site file (`EstateSchedule`), its task keys are `<estate>:<plan>:<occurrence>`, and its catch-up
starts from its own `scheduled_from` floors (a new estate, or one added by a reload, starts its own). A
reload (`update_estate`, `remove_estate`) replaces one estate's schedule; the others keep theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from inspection.fire_test_runs import PumpTestRuns, RunRecorded
from inspection.leader import LeaderLock
from inspection.rotation import Command, DutyRotation, EventListener, RotationChoice
from maintenance import audit
from maintenance.calendar import (
    Occurrence,
    Target,
    occurrences,
    plan_schedules,
    plan_targets,
    run_hours_occurrence,
    run_hours_sensor,
    windows_since,
    zone_of,
)
from maintenance.estates import estate_key
from maintenance.models import AuditLog, JsonDict, Task, utc_from_epoch
from maintenance.task_flow import ChecklistItem
from maintenance.task_history import sync_cycle
from maintenance.tasks import TaskService, task_snapshot
from maintenance.vocab import Priority, TaskKind
from pumpwatch.clock import Clock
from pumpwatch.plans import CALENDAR_SCHEDULES, ChecklistEntry, ItemType, Plan, RunHours
from pumpwatch.portfolio import KEY_SEPARATOR, Portfolio, as_portfolio, sensor_key
from pumpwatch.readings import Reading
from pumpwatch.site import Pump, Site, Text

log = logging.getLogger(__name__)

LatestReadings = Callable[[Sequence[str]], Awaitable[dict[str, Reading]]]
Timer = Literal["clock", "apscheduler"]
JOB_TABLE = "inspection_timer_jobs"  # APScheduler's job store in the state database
POLL_WHILE_VERIFYING = 5.0  # seconds between reading polls while a rotation is being verified
_EPSILON = 0.001  # wake a hair after an occurrence opens, never a hair before
_KEY_CHUNK = 500
_T = TypeVar("_T")

# APScheduler's stored jobs name their scheduler: a pickled job cannot hold the object itself.
_RUNNING: dict[str, InspectionScheduler] = {}


async def timer_fired(name: str) -> None:
    """APScheduler job: one tick of this process's scheduler called `name`, then book the next wake-up."""
    scheduler = _RUNNING.get(name)
    if scheduler is not None:
        await scheduler.timer_tick()


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A task the scheduler created for an occurrence."""

    occurrence: Occurrence
    task_id: int
    late: bool


class EstateSchedule:
    """One estate's plans: its occurrences into tasks, run hours, pump test runs and duty rotation."""

    def __init__(self, site: Site, sessions: sessionmaker[Session], tasks: TaskService, clock: Clock, *,
                 command: Command | None = None, rotation: DutyRotation | None = None,
                 listeners: Sequence[EventListener] = (), failure_tasks: bool = True) -> None:
        self.site = site
        self.estate = site.site.id
        self.clock = clock
        self.tasks = tasks
        self.plans = site.plans.effective()
        self.zone = zone_of(site)
        self.late_after = timedelta(minutes=site.plans.late_after_minutes)
        self.catch_up_window = timedelta(days=site.plans.catch_up_days)
        self._sessions = sessions
        self._calendar = [(scheduled, targets) for p in self.plans
                          if isinstance(p.schedule, CALENDAR_SCHEDULES)
                          for scheduled, targets in plan_schedules(site, p)]
        self._run_hours = [(p, t, sensor) for p in self.plans if isinstance(p.schedule, RunHours)
                           for t in plan_targets(site, p)
                           if (sensor := run_hours_sensor(site, p, t.id)) is not None]
        rotate = next((p.id for p in self.plans if p.action == "rotate"), "duty-rotation")
        self.rotation = rotation or DutyRotation(site, sessions, tasks, clock, command=command,
                                                 plan_id=rotate, failure_tasks=failure_tasks)
        self.rotation.listeners.extend(listeners)
        self.test_runs = PumpTestRuns(site, sessions, clock)
        self._done_until: datetime | None = None
        self._since: dict[tuple[str, str], datetime] = {}  # when each plan began to apply to each target
        self._hours: dict[str, Reading] = {}
        self._hours_done: set[str] = set()
        self._rotations: dict[str, tuple[RotationChoice, Occurrence, int]] = {}

    def key(self, occ: Occurrence) -> str:
        """The task key of an occurrence: `<estate>:<plan>:<occurrence>`."""
        return estate_key(self.estate, occ.plan_key)

    # -- the core ----------------------------------------------------------------------------------
    def catch_up(self, now: datetime | None = None) -> list[Scheduled]:
        """Create the task of every occurrence opened since the last catch-up (idempotent)."""
        now = now or utc_from_epoch(self.clock.now())
        end = now + timedelta(microseconds=1)
        due: list[Occurrence] = []
        window = now - self.catch_up_window
        if self._done_until is None:
            self._since = self._floors(now)
            for plan, targets in self._calendar:
                for target in targets:
                    since = self._since[(plan.id, target.id)]
                    if plan.unmissable:
                        due += windows_since(plan, [target], self.zone, since, end)
                    else:
                        due += occurrences(plan, [target], self.zone, max(since, window), end, "opens")
        else:
            floor = self._done_until + timedelta(microseconds=1)
            for plan, targets in self._calendar:
                start = floor if plan.unmissable else max(floor, window)
                due += occurrences(plan, targets, self.zone, start, end, "opens")
        due = [o for o in due if not o.skipped]
        due.sort(key=lambda o: (o.opens_at, o.plan, o.target.id))
        existing = self._existing([self.key(o) for o in due])
        plans = {p.id: p for p in self.plans}
        out: list[Scheduled] = []
        for occ in due:
            if self.key(occ) in existing:
                continue
            # Late counts from the opening, or from when the plan began to apply if that came later: a
            # window already open when a site starts is not missed work.
            since = self._since.get((occ.plan, occ.target.id), occ.opens_at)
            late = now - max(occ.opens_at, since) > self.late_after
            task_id = self._create(plans[occ.plan], occ, now, late)
            out.append(Scheduled(occ, task_id, late))
            if late:
                log.warning("plan %s of estate %s: created %s late (it opened %s)", occ.plan, self.estate,
                            self.key(occ), occ.opens_at.isoformat())
        self._done_until = now
        return out

    def next_wakeup(self, after: datetime) -> datetime | None:
        """When the next occurrence opens after `after` (looking two days ahead), if one does."""
        start = after + timedelta(microseconds=1)
        found = [o.opens_at for plan, targets in self._calendar
                 for o in occurrences(plan, targets, self.zone, start, start + timedelta(days=2), "opens")
                 if not o.skipped]
        return min(found, default=None)

    def run_hours_due(self, now: datetime | None = None) -> list[Scheduled]:
        """Create the task of every run-hour mark a pump's hours have reached (idempotent)."""
        now = now or utc_from_epoch(self.clock.now())
        out: list[Scheduled] = []
        for plan, target, sensor in self._run_hours:
            reading = self._hours.get(sensor)
            occ = run_hours_occurrence(plan, target, reading.value, now) if reading is not None else None
            if occ is None or self.key(occ) in self._hours_done:
                continue
            if self.key(occ) not in self._existing([self.key(occ)]):
                out.append(Scheduled(occ, self._create(plan, occ, now, late=False), False))
            self._hours_done.add(self.key(occ))
        return out

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """The estate's readings (its own sensor ids): run hours for plans, pump test runs, rotation."""
        wanted = {sensor for _p, _t, sensor in self._run_hours}
        for reading in readings:
            if reading.sensor in wanted:
                known = self._hours.get(reading.sensor)
                if known is None or reading.ts >= known.ts:
                    self._hours[reading.sensor] = reading
        self.test_runs.on_readings(readings)
        self.rotation.on_readings(readings)

    def record_test_runs(self) -> list[RunRecorded]:
        """Put the pump test runs seen since the last call on their tasks (the leader's tick does this)."""
        return self.test_runs.record()

    async def start_rotations(self) -> None:
        """Start the newest rotation of each duty group the catch-up created, then check running ones."""
        rotations, self._rotations = self._rotations, {}
        for choice, occ, task_id in rotations.values():
            await self.rotation.start(choice, self.key(occ), task_id)
        self.rotation.check()

    def carry_over(self, old: EstateSchedule) -> None:
        """Keep what the schedule this one replaces was following (a reload of the estate's file)."""
        self._hours, self._hours_done = old._hours, old._hours_done
        self.rotation.carry_over(old.rotation)
        self.test_runs.carry_over(old.test_runs)

    def sensors(self) -> set[str]:
        """The sensors this estate's schedule follows (polled from the store when no collector is here)."""
        return self.rotation.sensors() | self.test_runs.sensors() | {s for _p, _t, s in self._run_hours}

    def seen(self, sensor: str) -> Reading | None:
        """The newest reading of one of its sensors this schedule has."""
        return self.rotation.latest(sensor) or self.test_runs.latest(sensor) or self._hours.get(sensor)

    def _floors(self, now: datetime) -> dict[tuple[str, str], datetime]:
        """When each plan began to apply to each target: where the first catch-up of this process starts.

        The audit trail records it ("plan ... scheduled_from"). A pair seen for the first time (a fresh
        install, a plan just added to the site file) starts now: no invented back-log, except a window of
        unmissable work that is open now. A known one looks back for what was missed while the scheduler
        was down: at most `catch_up_days` (the caller's cap), except unmissable work.
        """
        pairs = {_pair_id(self.estate, plan.id, target.id): (plan.id, target.id)
                 for plan, targets in self._calendar for target in targets}
        with self._sessions.begin() as session:
            known = dict(session.execute(
                select(AuditLog.entity_id, func.min(AuditLog.ts))
                .where(AuditLog.entity == "plan", AuditLog.action == "scheduled_from")
                .group_by(AuditLog.entity_id)).all())
            if _adopted(session, self.estate):  # its floors from before estates were written without it
                for entity_id, (plan_id, target_id) in pairs.items():
                    legacy = known.get(_pair_id("", plan_id, target_id))
                    if legacy is not None and (entity_id not in known or legacy < known[entity_id]):
                        known[entity_id] = legacy
            for entity_id in pairs.keys() - known.keys():
                audit.record(session, audit.SYSTEM, "plan", entity_id, "scheduled_from", None,
                             {"estate": self.estate, "plan": pairs[entity_id][0],
                              "target": pairs[entity_id][1]}, now)
                known[entity_id] = now
        return {pair: known[entity_id] for entity_id, pair in pairs.items()}

    def _existing(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self._sessions() as session:
            for i in range(0, len(wanted), _KEY_CHUNK):
                chunk = wanted[i:i + _KEY_CHUNK]
                found.update(k for k in session.scalars(select(Task.plan_key).where(Task.plan_key.in_(chunk)))
                             if k is not None)
        return found

    def _create(self, plan: Plan, occ: Occurrence, now: datetime, late: bool) -> int:
        title = Text(zh=f"{plan.title.zh}：{occ.target.name.zh}", en=f"{plan.title.en}: {occ.target.name.en}")
        lines = [f"{plan.description.zh}\n{plan.description.en}"] if plan.description else []
        if occ.status != "scheduled" and occ.reason:
            lines.append(f"{occ.status}: {occ.reason}")
        due_at, asset = occ.due_at, occ.target.asset
        choice: RotationChoice | None = None
        if plan.action == "rotate" and occ.target.asset in self.rotation.groups:
            choice = self.rotation.choose(occ.target.asset)
            suffix, how = self.rotation.describe(choice)
            title = Text(zh=f"{plan.title.zh}：{suffix.zh}", en=f"{plan.title.en}: {suffix.en}")
            lines.append(how)
            due_at += timedelta(hours=self.rotation.settings.confirm_hours)
            asset = choice.duty
        items = [ChecklistItem(e.key, _item_text(e)) for e in plan.checklist]
        task = self.tasks.create_from_plan(self.key(occ), title, kind=TaskKind(plan.task_kind),
                                           priority=Priority(plan.priority), due_at=due_at, asset=asset,
                                           room=occ.target.room, description="\n".join(lines) or None,
                                           checklist=items, estate=self.estate)
        self._annotate(task.id, plan, occ.target, late, now)
        if choice is not None and occ.target.asset is not None:
            self._rotations[occ.target.asset] = (choice, occ, task.id)  # the newest one per group wins
        return task.id

    def _annotate(self, task_id: int, plan: Plan, target: Target, late: bool, now: datetime) -> None:
        """Mark the task late if it is, and give each checklist item its type, range and sensors."""
        specs = {e.key: self._item_spec(e, target) for e in plan.checklist}
        with self._sessions.begin() as session:
            task = session.get(Task, task_id, with_for_update=True)
            if task is None:
                return
            checklist = [item | specs.get(str(item["key"]), {}) for item in task.checklist]
            if task.late == late and checklist == task.checklist:
                return
            before = task_snapshot(task)
            task.late, task.checklist = late, checklist
            sync_cycle(task)  # the cycle of work carries the same checklist
            audit.record_change(session, audit.SYSTEM, "task", task.id, "scheduled", before,
                                task_snapshot(task), now)

    def _item_spec(self, entry: ChecklistEntry, target: Target) -> JsonDict:
        expected = entry.expected
        if expected is not None and entry.of_rated_current:
            rated = self._rated_current(target)
            # Without a pump to take the rating from, the range is unknown rather than wrong.
            expected = (round(expected[0] * rated, 2), round(expected[1] * rated, 2)) if rated else None
        low, high = expected if expected is not None else (None, None)
        spec: JsonDict = {"type": entry.type.value, "unit": entry.unit,
                          "expected": list(expected) if expected is not None else None,
                          "min": low, "max": high, "compare": self._compare_sensors(entry, target)}
        if entry.attachment_required:
            spec["attachment"] = "required"
        return spec

    def _rated_current(self, target: Target) -> float | None:
        for room in self.site.rooms:
            for eq in room.equipment:
                if isinstance(eq, Pump) and eq.id == target.asset:
                    return eq.rated_current
        return None

    def _compare_sensors(self, entry: ChecklistEntry, target: Target) -> list[str]:
        if entry.sensors:
            return list(entry.sensors)
        if entry.sensor_kind is None:
            return []
        found: list[tuple[str | None, str]] = []
        for room, eq, sensor in self.site.iter_sensors():
            if target.room is not None and room.id != target.room:
                continue
            if sensor.kind.value != entry.sensor_kind:
                continue
            if entry.equipment_type is not None and getattr(eq, "type", None) != entry.equipment_type:
                continue
            found.append((eq.id if eq is not None else None, sensor.id))
        own = [sid for eq_id, sid in found if target.asset is not None and eq_id == target.asset]
        return own or [sid for _eq, sid in found]


class InspectionScheduler:
    """Turns every estate's plans into tasks, runs duty rotation, and keeps one leader among replicas."""

    def __init__(self, site: Site | Portfolio, sessions: sessionmaker[Session], tasks: TaskService,
                 clock: Clock, *, command: Command | None = None,
                 commands: Callable[[str], Command] | None = None, rotation: DutyRotation | None = None,
                 listeners: Sequence[EventListener] = (), latest: LatestReadings | None = None,
                 tick: float = 60.0, timer: Timer = "clock", offload: bool = True,
                 name: str = "pumpwatch-inspection", engine: Engine | None = None,
                 failure_tasks: bool = True) -> None:
        """The scheduler of the estates of `site` (a site or a whole deployment).

        `command` writes a duty-select point by its sensor id (one estate); `commands` gives each
        estate its own (`commands(estate)`); `latest` reads the newest values by sensor key.
        """
        portfolio = as_portfolio(site)
        self.clock = clock
        self.tasks = tasks
        self.tick_seconds = tick
        self.timer = timer
        self.offload = offload
        self.name = name
        self.latest = latest
        self.listeners = list(listeners)
        self.failure_tasks = failure_tasks
        self._command = command
        self._commands = commands
        self._sessions = sessions
        self.estates: dict[str, EstateSchedule] = {}
        for estate_site in portfolio:
            given = rotation if len(portfolio) == 1 else None
            self.estates[estate_site.site.id] = self._schedule(estate_site, given)
        bound = engine or sessions.kw.get("bind")
        if not isinstance(bound, Engine):
            raise ValueError("pass `engine`: the session factory is not bound to one")
        self.engine = bound
        self.lock = LeaderLock(bound, name)
        self._aps: Any = None

    def _schedule(self, site: Site, rotation: DutyRotation | None = None) -> EstateSchedule:
        estate = site.site.id
        command = self._commands(estate) if self._commands is not None else self._command
        return EstateSchedule(site, self._sessions, self.tasks, self.clock, command=command,
                              rotation=rotation, listeners=self.listeners, failure_tasks=self.failure_tasks)

    # -- one estate ----------------------------------------------------------------------------------
    @property
    def only(self) -> EstateSchedule:
        """The schedule of the only estate (the first, with several)."""
        return next(iter(self.estates.values()))

    def estate(self, estate: str) -> EstateSchedule:
        """One estate's schedule; KeyError when the scheduler does not serve it."""
        return self.estates[estate]

    @property
    def site(self) -> Site:
        """The first estate's site."""
        return self.only.site

    @property
    def plans(self) -> list[Plan]:
        """Every estate's plans in force."""
        return [plan for schedule in self.estates.values() for plan in schedule.plans]

    @property
    def rotation(self) -> DutyRotation:
        """The duty rotation of the only estate."""
        return self.only.rotation

    @property
    def test_runs(self) -> PumpTestRuns:
        """The pump test runs of the only estate."""
        return self.only.test_runs

    @property
    def zone(self) -> Any:
        """The only estate's time zone."""
        return self.only.zone

    def update_estate(self, site: Site) -> None:
        """Take an added estate or its changed site file (a reload); its catch-up starts from its floors.

        What the old schedule was following carries over: the readings it has seen, the run-hour marks
        done, and rotations under way (of groups the new file still has).
        """
        schedule = self._schedule(site)
        old = self.estates.get(site.site.id)
        if old is not None:
            schedule.carry_over(old)
        self.estates[site.site.id] = schedule
        log.info("inspection scheduler: estate %s %s", site.site.id, "reloaded" if old else "added")

    def remove_estate(self, estate: str) -> None:
        """Stop scheduling an estate (its file was removed); its tasks stay."""
        self.estates.pop(estate, None)

    def _schedules(self) -> list[EstateSchedule]:
        return list(self.estates.values())  # a reload may replace one meanwhile

    # -- the core ----------------------------------------------------------------------------------
    def catch_up(self, now: datetime | None = None) -> list[Scheduled]:
        """Create the task of every occurrence opened since the last catch-up, every estate's (idempotent)."""
        now = now or utc_from_epoch(self.clock.now())
        return [made for schedule in self._schedules() for made in schedule.catch_up(now)]

    def next_wakeup(self, after: datetime) -> datetime | None:
        """When the next occurrence of any estate opens after `after` (two days ahead), if one does."""
        found = [w for schedule in self._schedules() if (w := schedule.next_wakeup(after)) is not None]
        return min(found, default=None)

    def run_hours_due(self, now: datetime | None = None) -> list[Scheduled]:
        """Create the task of every run-hour mark a pump's hours have reached (idempotent)."""
        now = now or utc_from_epoch(self.clock.now())
        return [made for schedule in self._schedules() for made in schedule.run_hours_due(now)]

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Readings hook (the collector's pipeline, keys `<estate>/<sensor>`): to each estate's schedule."""
        groups: dict[str, list[Reading]] = {}
        for r in readings:
            estate, _sep, sensor = r.sensor.partition(KEY_SEPARATOR)
            groups.setdefault(estate, []).append(Reading(sensor, r.ts, r.value, r.quality, r.state))
        for estate, batch in groups.items():
            schedule = self.estates.get(estate)
            if schedule is not None:
                schedule.on_readings(batch)

    def record_test_runs(self) -> list[RunRecorded]:
        """Put the pump test runs seen since the last call on their tasks (the leader's tick does this)."""
        return [run for schedule in self._schedules() for run in schedule.record_test_runs()]

    def _create(self, plan: Plan, occ: Occurrence, now: datetime, late: bool) -> int:
        return self.only._create(plan, occ, now, late)

    # -- one tick ----------------------------------------------------------------------------------
    async def tick(self) -> list[Scheduled]:
        """Lead (or not), catch up, start the newest rotation of each group, check running rotations."""
        if self.latest is not None:
            await self._poll_latest()
        if not await self._call(self.lock.acquire):
            return []
        now = utc_from_epoch(self.clock.now())
        created = await self._call(self.catch_up, now)
        created += await self._call(self.run_hours_due, now)
        await self._call(self.record_test_runs)
        for schedule in self._schedules():
            await schedule.start_rotations()
        return created

    async def run(self) -> None:
        """Tick until cancelled: on the injected clock, or through APScheduler (wall clock only)."""
        if self.timer == "apscheduler":
            await self._run_apscheduler()
            return
        try:
            while True:
                await self._tick_logged()
                await self.clock.sleep(self.sleep_seconds())
        finally:
            await self._call(self.close)

    def sleep_seconds(self) -> float:
        """How long the timer may sleep: until the next opening, rotation deadline or poll."""
        now = self.clock.now()
        wakes = [now + self.tick_seconds]
        following = self.next_wakeup(utc_from_epoch(now))
        if following is not None:
            wakes.append(following.timestamp() + _EPSILON)
        for schedule in self._schedules():
            deadline = schedule.rotation.next_deadline()
            if deadline is not None:
                wakes.append(deadline + _EPSILON)
            if (schedule.rotation.busy or schedule.test_runs.busy) and self.latest is not None:
                wakes.append(now + POLL_WHILE_VERIFYING)
            if schedule.test_runs.pending:
                wakes.append(now + _EPSILON)  # a finished test run goes on its task at once
        return max(_EPSILON, min(wakes) - now)

    def close(self) -> None:
        """Give up leadership."""
        self.lock.release()

    # -- APScheduler -------------------------------------------------------------------------------
    async def timer_tick(self) -> None:
        """One APScheduler-driven tick, then a one-off job for the next wake-up."""
        await self._tick_logged()
        if self._aps is not None:
            wake = datetime.now(UTC) + timedelta(seconds=self.sleep_seconds())
            self._aps.add_job(f"{__name__}:timer_fired", "date", args=[self.name], run_date=wake,
                              id=f"{self.name}:next", replace_existing=True)

    async def _run_apscheduler(self) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        _RUNNING[self.name] = self
        store = SQLAlchemyJobStore(engine=self.engine, tablename=JOB_TABLE)
        defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        aps = AsyncIOScheduler(jobstores={"default": store}, timezone=UTC, job_defaults=defaults)
        if logging.getLogger("apscheduler").level == logging.NOTSET:
            logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run at INFO
        aps.start()
        self._aps = aps
        try:
            # The safety net; timer_tick also books a one-off job for the exact next opening.
            aps.add_job(f"{__name__}:timer_fired", "interval", args=[self.name], seconds=self.tick_seconds,
                        id=f"{self.name}:tick", replace_existing=True, next_run_time=datetime.now(UTC))
            await asyncio.Event().wait()
        finally:
            aps.shutdown(wait=False)
            self._aps = None
            _RUNNING.pop(self.name, None)
            await self._call(self.close)

    # -- plumbing ----------------------------------------------------------------------------------
    async def _tick_logged(self) -> None:
        try:
            await self.tick()
        except Exception:  # the database may be away for a while: the next tick catches up
            log.exception("inspection scheduler tick failed")

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self.offload:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _poll_latest(self) -> None:
        assert self.latest is not None
        schedules = self._schedules()
        keys = sorted(sensor_key(schedule.estate, sensor)
                      for schedule in schedules for sensor in schedule.sensors())
        if not keys:
            return
        try:
            found = await self.latest(keys)
        except Exception:  # the series store is away: rotation waits, its deadline still runs
            log.exception("reading the latest values for the scheduler failed")
            return
        fresh = []
        for key, reading in found.items():
            estate, _sep, sensor = key.partition(KEY_SEPARATOR)
            schedule = self.estates.get(estate)
            seen = schedule.seen(sensor) if schedule is not None else None
            if seen is None or reading.ts > seen.ts:
                fresh.append(Reading(key, reading.ts, reading.value, reading.quality, reading.state))
        self.on_readings(fresh)

def _pair_id(estate: str, plan: str, target: str) -> str:
    """The audit entity id of an estate's plan applied to a target (hashed when too long for the column).

    `<estate>:<plan>:<target>`; `<plan>:<target>` for the floors written before estates (estate '').
    """
    text = estate_key(estate, f"{plan}:{target}")
    return text if len(text) <= 64 else "sha1:" + hashlib.sha1(text.encode()).hexdigest()


def _adopted(session: Session, estate: str) -> bool:
    """Whether this estate took the records from before estates (`maintenance.estates.adopt_unassigned`)."""
    return session.scalar(select(AuditLog.id).where(AuditLog.entity == "estate", AuditLog.entity_id == estate,
                                                    AuditLog.action == "adopted").limit(1)) is not None


def _item_text(entry: ChecklistEntry) -> Text:
    """The item's text, with the expected range of a number item written out."""
    if entry.type is not ItemType.NUMBER or entry.expected is None:
        return entry.text
    lo, hi = entry.expected
    if entry.of_rated_current:
        return Text(zh=f"{entry.text.zh}（额定电流的 {lo:.0%}–{hi:.0%}）",
                    en=f"{entry.text.en} ({lo:.0%}-{hi:.0%} of rated current)")
    return Text(zh=f"{entry.text.zh}（{lo:g}–{hi:g} {entry.unit}）",
                en=f"{entry.text.en} ({lo:g}-{hi:g} {entry.unit})")
