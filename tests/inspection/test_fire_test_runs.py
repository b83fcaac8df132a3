"""Fire and sprinkler pump test runs (GB 50974-2014, 14.0.4): weekly automatic, monthly by hand.

A run seen in the readings of an instrumented pump completes the weekly task by itself (auto-recorded,
for the supervisor to verify) or fills in the monthly task's figures for the technician; a pump without
sensors keeps a technician's task; a sprinkler duty group is tested, never rotated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inspection.fire_test_runs import pump_points
from inspection.scheduler import InspectionScheduler
from maintenance.calendar import site_occurrences
from maintenance.errors import Forbidden
from maintenance.models import AuditLog, Task
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading
from pumpwatch.site import Site
from pumpwatch.sitefile import SiteFileError, load_site, parse_site
from simulators.simulation import Simulation
from tests.inspection.fire_sites import fire_site, fire_site_data, site_yaml
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks
from tests.support.state import People, advance

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
WEEK_OPENS = local_epoch(SHANGHAI, 2026, 1, 2, 17)  # Friday: the test week due on the 9th opens
WEEKLY_FP = "fire-weekly-test:fp@2026-01-09"
MONTHLY_FP = "fire-monthly:fp@2026-01-10"  # opens on the 5th at 17:00
FIRE_SENSORS = ("fire-p1-run", "fire-p1-current", "fire-p1-switch", "fire-main-pressure",
                "fire-supply-voltage", "fire-jockey-run", "fire-jockey-current")
AUTO, MANUAL = 2.0, 1.0  # switch codes


def _scheduler(site: Site, sessions: sessionmaker[Session], clock: FakeClock) -> InspectionScheduler:
    return InspectionScheduler(site, sessions, TaskService(sessions, clock), clock, offload=False)


def _task(sessions: sessionmaker[Session], plan_key: str) -> Task:
    [task] = plan_tasks(sessions, plan_key)
    return task


def _items(task: Task) -> dict[str, dict[str, object]]:
    return {str(item["key"]): item for item in task.checklist}


class Pump:
    """Feeds a fire-room pump's readings (fire_site's `fp`) to a scheduler, one reading a second."""

    def __init__(self, scheduler: InspectionScheduler, clock: FakeClock, pump: str = "fp") -> None:
        self.scheduler, self.clock, self.pump = scheduler, clock, pump

    async def feed(self, seconds: int, running: bool, current: float, pressure: float,
                   switch: float = AUTO) -> None:
        for _ in range(seconds):
            await self.clock.advance(1.0)
            ts = self.clock.now()
            self.scheduler.on_readings([
                Reading(f"t13/{self.pump}-run-status", ts, 1.0 if running else 0.0),
                Reading(f"t13/{self.pump}-current", ts, current if running else 0.0),
                Reading(f"t13/{self.pump}-switch-position", ts, switch),
                Reading("t13/main-pressure", ts, pressure), Reading("t13/fire-voltage", ts, 372.0)])

    async def test_run(self, minutes: float, current: float = 42.0, pressure: float = 0.82,
                       switch: float = AUTO) -> None:
        await self.feed(30, False, 0.0, 0.75, switch)
        await self.feed(round(minutes * 60), True, current, pressure, switch)
        await self.feed(30, False, 0.0, 0.78)


async def test_a_simulated_fire_pump_test_run_completes_the_weekly_task_auto_recorded(
        sessions: sessionmaker[Session], people: People) -> None:
    site = load_site(EXAMPLE)
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(site, sessions, clock)
    await scheduler.tick()
    weekly = "fire-weekly-test:fire-p1@2026-01-09"
    assert _task(sessions, weekly).state == "raised"
    sim = Simulation(site, clock, seed=7)

    async def run(seconds: int) -> None:
        for _ in range(seconds):
            await clock.advance(1.0)
            await sim.step()
            scheduler.on_readings([Reading(f"harbour-view/{s}", clock.now(), sim.signals.value(s))
                                   for s in FIRE_SENSORS])

    await run(120)  # the jockey pump holds the sprinkler main; the fire pump stands still
    assert await sim.enable("fire_test_run") == "fire-p1"
    await run(6 * 60)
    await sim.disable("fire_test_run")
    await run(120)
    await scheduler.tick()

    task = _task(sessions, weekly)
    assert task.state == "done"
    assert task.technician_signed_by is None  # no person signed it
    assert task.technician_signed_at is not None
    assert task.remarks is not None
    assert "Auto-recorded" in task.remarks
    assert "自动记录" in task.remarks
    items = _items(task)
    assert all(item["result"] is not None and item["auto"] for item in items.values())
    minutes = items["run-minutes"]["value"]
    assert isinstance(minutes, float)
    assert 6.0 <= minutes < 7.0
    rated = 56.0
    current = items["running-current"]["value"]
    assert isinstance(current, float)
    assert 0.7 * rated < current < 0.95 * rated
    assert items["running-current"]["result"] == "ok"
    assert items["running-current"]["min"] == pytest.approx(0.35 * rated)  # the range is the pump's
    pressure = items["pressure"]["value"]
    assert isinstance(pressure, float)
    assert pressure >= 0.55
    assert items["no-abnormal"]["result"] == "na"  # the readings cannot hear a noise
    assert items["back-to-auto"]["result"] == "ok"
    [note] = [n for n in task.notes if n.get("auto_recorded")]
    assert note["by"] is None
    assert note["test_run"]["start"] == "auto"
    assert note["test_run"]["counted"] is True
    assert "Automatic start" in note["text"]
    assert "自动启动" in note["text"]
    with sessions() as session:
        [row] = session.scalars(select(AuditLog).where(AuditLog.entity == "task",
                                                       AuditLog.entity_id == str(task.id),
                                                       AuditLog.action == "auto_recorded")).all()
    assert row.actor == "system"
    assert (row.after or {})["state"] == "done"
    # The jockey pump cycled to hold the main, in short runs: not a test, nothing recorded.
    assert _task(sessions, "fire-weekly-test:fire-jockey@2026-01-09").state == "raised"

    tasks = TaskService(sessions, clock)
    [cycle] = tasks.cycles(task.id)  # the cycle of work keeps the auto-recorded completion
    assert cycle.technician_signed_at == task.technician_signed_at
    assert cycle.technician_signed_by is None
    assert cycle.checklist == task.checklist
    verified = tasks.verify(task.id, people.supervisor)  # the system did the work: any supervisor signs
    assert verified.state == "verified"
    assert verified.supervisor_signed_by == people.supervisor.id


async def test_a_run_too_short_is_ignored_and_one_that_builds_no_pressure_is_noted_not_counted(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(fire_site(), sessions, clock)
    await scheduler.tick()
    pump = Pump(scheduler, clock)
    await pump.test_run(minutes=2)  # too short to count as the test (a pump started on demand, say)
    [seen] = scheduler.record_test_runs()
    assert seen.outcome == "ignored"
    assert _task(sessions, WEEKLY_FP).notes == []
    await pump.test_run(minutes=6, pressure=0.40)  # long enough, but the main never came up
    [seen] = scheduler.record_test_runs()
    assert seen.outcome == "noted"
    assert not seen.run.passed
    task = _task(sessions, WEEKLY_FP)
    assert task.state == "raised"
    [note] = task.notes
    assert "not counted" in note["text"]
    assert "0.40 MPa" in note["text"]
    await pump.test_run(minutes=6, current=60.0)  # loaded beyond 110 % of its 50 A rating
    assert [s.outcome for s in scheduler.record_test_runs()] == ["noted"]
    await pump.test_run(minutes=6)
    assert [s.outcome for s in scheduler.record_test_runs()] == ["completed"]
    assert _task(sessions, WEEKLY_FP).state == "done"
    await pump.test_run(minutes=6)  # a second good run the same week: the task is done already
    [seen] = scheduler.record_test_runs()
    assert (seen.outcome, seen.task_id) == ("no_task", None)


async def test_a_manual_start_fills_in_the_monthly_figures_and_the_technician_signs(
        sessions: sessionmaker[Session], people: People) -> None:
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(fire_site(), sessions, clock)
    await scheduler.tick()
    await clock.advance(3 * 86_400)  # Monday the 5th, 17:00: the monthly test's window opens
    await scheduler.tick()
    assert _task(sessions, MONTHLY_FP).state == "raised"
    await Pump(scheduler, clock).test_run(minutes=5.5, switch=MANUAL)
    await scheduler.tick()
    task = _task(sessions, MONTHLY_FP)
    assert task.state == "raised"  # a person started it: the record is theirs to complete and sign
    items = _items(task)
    assert items["run-minutes"]["value"] == 5.5
    assert items["running-current"]["value"] == 42.0
    assert items["pressure"]["value"] == 0.82
    assert items["supply-voltage"]["value"] == 372.0
    assert all(item["result"] is None for item in items.values())
    assert "Manual start" in task.notes[0]["text"]
    # A manual start is no automatic-control test: the weekly task stays open.
    assert _task(sessions, "fire-weekly-test:fp@2026-01-09").state == "raised"

    tasks = TaskService(sessions, clock)
    tasks.start(task.id, people.technician)
    for key in items:
        tasks.record_check(task.id, people.technician, key, CheckResult.OK)
    done = tasks.complete(task.id, people.technician, "monthly test", "started by hand, supply checked")
    assert done.technician_signed_by == people.technician.id
    with pytest.raises(Forbidden):
        tasks.verify(task.id, people.technician)


async def test_a_technician_already_on_the_weekly_test_gets_the_figures_as_a_note(
        sessions: sessionmaker[Session], people: People) -> None:
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(fire_site(), sessions, clock)
    await scheduler.tick()
    tasks = TaskService(sessions, clock)
    tasks.start(_task(sessions, WEEKLY_FP).id, people.technician)
    await Pump(scheduler, clock).test_run(minutes=6)
    assert [s.outcome for s in scheduler.record_test_runs()] == ["noted"]
    task = _task(sessions, WEEKLY_FP)
    assert task.state == "in_progress"
    assert task.technician_signed_at is None
    assert "ran 6.0 min" in task.notes[0]["text"]


async def test_a_scheduler_in_its_own_process_sees_the_run_by_polling_the_latest_values(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(WEEK_OPENS)
    asked: list[set[str]] = []
    pump_state = {"running": False}

    async def latest(sensors: Sequence[str]) -> dict[str, Reading]:  # by sensor key, as the store
        asked.append(set(sensors))
        now, running = clock.now(), pump_state["running"]
        values = {"t13/fp-run-status": 1.0 if running else 0.0, "t13/fp-current": 41.0 if running else 0.0,
                  "t13/fp-switch-position": AUTO, "t13/main-pressure": 0.83 if running else 0.76}
        return {s: Reading(s, now, v) for s, v in values.items() if s in sensors}

    scheduler = InspectionScheduler(fire_site(), sessions, TaskService(sessions, clock), clock,
                                    offload=False, latest=latest)
    await scheduler.tick()
    assert {"t13/fp-run-status", "t13/fp-current", "t13/main-pressure", "t13/fire-voltage"} <= asked[0]
    pump_state["running"] = True
    for _ in range(8):  # polled every 60 s: seen running from the first poll to the one that finds it stopped
        await clock.advance(60)
        await scheduler.tick()
    assert scheduler.test_runs.busy
    pump_state["running"] = False
    await clock.advance(60)
    await scheduler.tick()
    task = _task(sessions, WEEKLY_FP)
    assert task.state == "done"
    assert _items(task)["run-minutes"]["value"] == 8.0  # as precise as the polls


async def test_the_run_counts_for_its_own_week_not_a_missed_one(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(fire_site(), sessions, clock)
    await scheduler.tick()
    await clock.advance(7 * 86_400 + 60)  # no test run all week: the next week's task opens
    await scheduler.tick()
    await Pump(scheduler, clock).test_run(minutes=6)
    await scheduler.tick()
    assert _task(sessions, WEEKLY_FP).state == "raised"  # missed, and stays missed
    assert _task(sessions, "fire-weekly-test:fp@2026-01-16").state == "done"


async def test_a_pump_without_sensors_keeps_a_technician_task(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(WEEK_OPENS)
    scheduler = _scheduler(fire_site(instrumented=False), sessions, clock)
    await scheduler.tick()
    assert scheduler.test_runs.points == {}
    task = _task(sessions, WEEKLY_FP)
    assert task.state == "raised"
    assert [i["key"] for i in task.checklist] == ["started", "run-minutes", "running-current", "pressure",
                                                   "no-abnormal", "back-to-auto"]
    assert task.priority == "high"


def test_the_calendar_of_a_sprinkler_group_has_test_runs_and_no_rotation() -> None:
    site = fire_site()
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    found = site_occurrences(site, start, start + timedelta(days=365), field="opens")
    counts = Counter((o.plan, o.target.id) for o in found)
    for pump in ("sp1", "sp2"):
        assert counts[("fire-weekly-test", pump)] == 52
        assert counts[("fire-monthly", pump)] == 12
    assert counts[("duty-rotation", "dom-grp")] == 183
    assert ("duty-rotation", "spr") not in counts


@pytest.mark.e2e  # A long simulated span: a year of catch-ups creating some 250 tasks (5-15 s a backend).
def test_a_sprinkler_group_gets_no_rotation_and_52_weekly_and_12_monthly_test_runs_in_a_year(
        sessions: sessionmaker[Session]) -> None:
    # Fewer tasks for a quicker year: the everyday plans off, the domestic group rotating weekly.
    quiet = {"plans": [{"id": plan, "enabled": False} for plan in
                       ("daily-round", "weekly-sweep", "unit-cleaning", "contactor-check", "pipe-anti-rust")],
             "rotation": {"groups": {"dom-grp": {"every_days": 7}}}}
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 1))
    scheduler = _scheduler(fire_site(quiet), sessions, clock)
    scheduler.catch_up()
    for _ in range(52):  # a catch-up a week (within catch_up_days, nothing is lost), then the last day
        advance(clock, 7 * 86_400)
        scheduler.catch_up()
    advance(clock, 86_400)
    scheduler.catch_up()
    counts: Counter[tuple[str, str]] = Counter()
    for task in plan_tasks(sessions):
        assert own_key(task)
        plan, key = own_key(task).split(":", 1)
        counts[(plan, key.split("@")[0])] += 1
    for pump in ("sp1", "sp2", "fp"):
        assert counts[("fire-weekly-test", pump)] == 52
        assert counts[("fire-monthly", pump)] == 12
    assert counts[("duty-rotation", "dom-grp")] == 53  # 1 January and every 7 days after
    assert ("duty-rotation", "spr") not in counts
    assert counts[("tank-cleaning", "dom-tank")] == 2  # April and October
    assert ("tank-cleaning", "fire-tank") not in counts  # a fire water tank is not drinking water


def test_test_run_settings_are_checked_with_file_and_line() -> None:
    data = fire_site_data({"test_runs": {"pressure": {"d1": 0.6, "nope": 0.6, "fp": 0.7}}})
    text = site_yaml(data)
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "site.yaml")
    found = {(i.field, i.message) for i in info.value.issues}
    assert found == {("plans.test_runs.pressure.d1", "'d1' is not a fire or sprinkler pump"),
                     ("plans.test_runs.pressure.nope", "'nope' is not a pump of the site")}
    site = fire_site({"test_runs": {"pressure": {"fp": 0.7}}})
    points = pump_points(site, site.plans.test_runs)
    assert points["fp"].test_pressure == 0.7
    assert points["sp1"].test_pressure == pytest.approx(0.55)  # half its 1.1 MPa shut-off pressure
    assert points["sp1"].pressure == "main-pressure"  # no outlet sensor of its own: the main's
    with pytest.raises(SiteFileError, match="current_range"):
        fire_site({"test_runs": {"current_range": [1.1, 0.4]}})
