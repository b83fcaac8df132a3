"""The monthly report's figures from real task records, on SQLite and PostgreSQL: counted in the month
things happened, repeat faults with hand-reported faults, rotation compliance from the scheduler's tasks."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import InspectionScheduler
from maintenance.alarms import AlarmService
from maintenance.errors import InvalidInput
from maintenance.models import Task, utc_from_epoch
from maintenance.reports import Month, MonthlyReport
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People, advance

HV = "harbour-view"  # the estate of examples/site.yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
JANUARY = Month(2026, 1, SHANGHAI)
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
LEAK = Text(zh="漏水", en="leak")


def at(clock: FakeClock, when: datetime) -> datetime:
    """Move the fake clock forward to the local time `when`; return it as the services see it."""
    asyncio.run(clock.advance(when.timestamp() - clock.now()))
    return utc_from_epoch(clock.now())


def alarm(alarms: AlarmService, clock: FakeClock, action: AlarmAction, asset: str = "dom-ptank") -> None:
    alarms.apply(AlarmEvent(action, AlarmKey(asset, "leak", HV), Severity.CRITICAL, clock.now(), "dom", LEAK))


def finish(tasks: TaskService, people: People, task_id: int, verify: bool = False) -> None:
    """Assign, start, tick the checklist, complete (and verify) a task."""
    p = people
    task = tasks.get(task_id)
    if task.state == "raised":
        tasks.assign(task_id, p.supervisor, [p.technician.id])
    tasks.start(task_id, p.technician)
    for item in tasks.get(task_id).checklist:
        tasks.record_check(task_id, p.technician, item["key"], CheckResult.OK)
    tasks.complete(task_id, p.technician, "routine", "done as planned")
    if verify:
        tasks.verify(task_id, p.supervisor2)


def test_counts_times_repeats_and_parts(sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService,
                                        alarms: AlarmService, people: People) -> None:
    p = people
    # Task 1: high priority, assigned at once, started after 30 min, done after 90 min: inside its SLA.
    quick = tasks.create_task(p.operator, LEAK, priority=Priority.HIGH, asset="dom-p1", estate=HV)
    tasks.assign(quick.id, p.supervisor, [p.technician.id])
    advance(clock, 1800)
    tasks.start(quick.id, p.technician)
    tasks.add_part(quick.id, p.technician, "mechanical seal", 1)
    advance(clock, 3600)
    tasks.complete(quick.id, p.technician, "worn seal", "replaced the seal")
    # Task 2: critical, never taken on: its 30 min response limit passes.
    tasks.create_task(p.operator, Text(zh="压力低", en="low pressure"), priority=Priority.CRITICAL,
                      asset="dom-header", estate=HV)
    # An alarm that clears and comes back: one task, one repeat fault on the asset.
    alarm(alarms, clock, AlarmAction.RAISED)
    advance(clock, 600)
    alarm(alarms, clock, AlarmAction.CLEARED)
    advance(clock, 600)
    alarm(alarms, clock, AlarmAction.RAISED)
    advance(clock, 3 * 3600)

    report = MonthlyReport(sessions).report(JANUARY, utc_from_epoch(clock.now()))
    assert report["status"] == "preview"
    assert report["final"] is False  # still January
    fault = report["tasks_by_kind"]["fault"]
    assert (fault["raised"], fault["responded"], fault["completed"]) == (2, 1, 1)
    assert report["tasks_by_kind"]["alarm"]["raised"] == 1
    assert report["totals"]["raised"] == 3
    assert report["states_at_end"]["fault"] == {"open": 1, "done": 1, "verified": 0, "cancelled": 0}
    response, resolution = report["sla"]["response"], report["sla"]["resolution"]
    assert (response["met"], response["missed"]) == (1, 2)  # the critical fault and the alarm missed 30 min
    assert response["median_min"] == 0.0  # assigned the moment it was raised
    assert (resolution["met"], resolution["count"], resolution["median_min"]) == (1, 1, 90.0)
    assert report["repeat_faults"] == [{"asset": "dom-ptank", "faults": 2, "repeats": 1, "alarm_repeats": 1,
                                        "fault_reports": 0}]
    assert report["parts_used"] == [{"part": "mechanical seal", "unit": "pcs", "quantity": 1.0}]


def test_a_month_that_has_not_begun_has_no_report(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidInput, match="has not begun"):
        MonthlyReport(sessions).report(Month(2026, 2, SHANGHAI), JANUARY.start)
    with pytest.raises(InvalidInput):
        Month.parse("2026-13", SHANGHAI)
    assert Month.parse("2026-12", SHANGHAI).next() == Month(2027, 1, SHANGHAI)
    assert JANUARY.previous() == Month(2025, 12, SHANGHAI)
    assert JANUARY.due.astimezone(SHANGHAI).isoformat() == "2026-02-05T23:59:59+08:00"
    assert JANUARY.closes_at.astimezone(SHANGHAI).isoformat() == "2026-02-06T00:00:00+08:00"


def test_work_counts_in_the_month_it_happened(sessions: sessionmaker[Session], clock: FakeClock,
                                              tasks: TaskService, people: People) -> None:
    """A task raised on 31 January and completed on 1 February: raised in January, completed in February."""
    at(clock, datetime(2026, 1, 31, 22, tzinfo=SHANGHAI))
    task = tasks.create_task(people.operator, LEAK, asset="dom-p2", estate=HV)
    at(clock, datetime(2026, 2, 1, 9, tzinfo=SHANGHAI))
    finish(tasks, people, task.id, verify=True)
    now = utc_from_epoch(clock.now())
    reports = MonthlyReport(sessions)
    january = reports.report(JANUARY, now)["tasks_by_kind"]["fault"]
    february = reports.report(JANUARY.next(), now)["tasks_by_kind"]["fault"]
    assert (january["raised"], january["completed"], january["verified"]) == (1, 0, 0)
    assert (february["raised"], february["completed"], february["verified"]) == (0, 1, 1)
    assert reports.report(JANUARY, now)["states_at_end"]["fault"]["open"] == 1


def test_repeat_faults_count_hand_reported_faults_on_the_same_asset(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, alarms: AlarmService,
        people: People) -> None:
    p = people
    at(clock, datetime(2026, 1, 5, 9, tzinfo=SHANGHAI))
    alarm(alarms, clock, AlarmAction.RAISED, asset="dom-p1")  # the first fault of the month on dom-p1
    advance(clock, 3600)
    tasks.create_task(p.operator, LEAK, asset="dom-p1", estate=HV)  # reported by hand: a repeat
    advance(clock, 86_400)
    tasks.create_task(p.technician, LEAK, asset="dom-p1", estate=HV)  # and again
    tasks.create_task(p.operator, LEAK, asset="dom-p2", estate=HV)  # a single fault elsewhere: no repeat
    tasks.create_task(p.supervisor, Text(zh="清洁", en="clean"), kind=TaskKind.CORRECTIVE, asset="dom-p2",
                      estate=HV)
    report = MonthlyReport(sessions).report(JANUARY, utc_from_epoch(clock.now()))
    assert report["repeat_faults"] == [{"asset": "dom-p1", "faults": 3, "repeats": 2, "alarm_repeats": 0,
                                        "fault_reports": 2}]


def test_rotation_compliance_counts_the_schedulers_rotation_tasks_and_their_verifications(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, people: People) -> None:
    site = load_site(EXAMPLE)
    march = Month(2026, 3, SHANGHAI)
    at(clock, datetime(2026, 3, 1, 7, tzinfo=SHANGHAI))
    scheduler = InspectionScheduler(site, sessions, tasks, clock, offload=False)
    scheduler.catch_up()
    rotations: list[Task] = []
    for day in range(1, 12):  # every morning, just after the 08:00 openings
        scheduler.catch_up(at(clock, datetime(2026, 3, day, 8, 1, tzinfo=SHANGHAI)))
        with sessions() as session:
            todays = list(session.scalars(select(Task).where(
                Task.plan_key == f"harbour-view:duty-rotation:dom-duty@2026-03-{day:02d}")))
        for task in todays:
            rotations.append(task)
            if len(rotations) == 1:
                continue  # nobody confirms the first swap: missed
            finish(tasks, people, task.id, verify=len(rotations) in (2, 3))
            if len(rotations) == 4:  # the new duty pump did not hold pressure: the engine's follow-up task
                tasks.create_from_plan(f"{task.plan_key}:failed", Text(zh="轮换失败", en="rotation failed"),
                                       kind=TaskKind.CORRECTIVE, asset="dom-p1", estate=HV)
    assert len(rotations) == 5  # every other day
    at(clock, datetime(2026, 3, 12, 9, tzinfo=SHANGHAI))
    rotation = MonthlyReport(sessions, site=site).report(march, utc_from_epoch(clock.now()))["rotation"]
    # One missed, one failed, three confirmed on time (two of them verified by the supervisor).
    assert rotation == {"plan": "duty-rotation", "planned": 5, "confirmed": 4, "on_time": 3, "verified": 2,
                        "failed": 1, "pending": 0, "compliance": 0.6}


def test_rotation_of_a_renamed_plan_is_found_through_the_site(sessions: sessionmaker[Session],
                                                               tasks: TaskService) -> None:
    site = load_site(EXAMPLE)
    assert MonthlyReport(sessions, site=site).rotation_plan() == "duty-rotation"
    # The old report's prefix: not the scheduler's rotation key.
    tasks.create_from_plan("harbour-view:rotation:dom-duty@2026-01-01", Text(zh="轮换", en="rotation"),
                           estate=HV)
    report = MonthlyReport(sessions, site=site).report(JANUARY, JANUARY.end)
    assert report["rotation"]["planned"] == 0
