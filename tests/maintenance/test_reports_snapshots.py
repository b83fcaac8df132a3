"""Reports that stay final: built on the 1st, closed on the 6th or by the director, amended by later changes.

On SQLite and PostgreSQL, with the fake clock; the cases of issue 13 (the January task reopened on
1 February, the March rounds closed on 3 April) and every kind of later change to a closed month.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory
from maintenance.errors import Conflict, Forbidden
from maintenance.models import AuditLog, utc_from_epoch
from maintenance.report_models import ReportAmendment, ReportArchive, ReportSnapshot
from maintenance.reports import Month, MonthlyReport
from maintenance.service import MaintenanceService
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

HV = "harbour-view"  # the estate of examples/site.yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
LEAK = Text(zh="漏水", en="leak")
ROUND = Text(zh="每日巡检", en="Daily round")


def at(clock: FakeClock, when: datetime) -> datetime:
    """Move the fake clock forward to the local time `when`; return it as the services see it."""
    asyncio.run(clock.advance(when.timestamp() - clock.now()))
    return utc_from_epoch(clock.now())


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def figures(report: dict[str, object]) -> dict[str, object]:
    """The parts of a report that are its figures (not status, signatures, amendments or archive)."""
    keys = ("as_of", "tasks_by_kind", "totals", "states_at_end", "sla", "repeat_faults", "rotation",
            "parts_used")
    return {k: report[k] for k in keys}


def work(tasks: TaskService, people: People, task_id: int, complete: bool = True) -> None:
    p = people
    if tasks.get(task_id).state == "raised":
        tasks.assign(task_id, p.supervisor, [p.technician.id])
    tasks.start(task_id, p.technician)
    for item in tasks.get(task_id).checklist:
        tasks.record_check(task_id, p.technician, item["key"], CheckResult.OK)
    if complete:
        tasks.complete(task_id, p.technician, "routine", "done as planned")


def raise_alarm(alarms: AlarmService, clock: FakeClock, action: AlarmAction, asset: str = "dom-p1") -> None:
    alarms.apply(AlarmEvent(action, AlarmKey(asset, "leak", HV), Severity.MAJOR, clock.now(), "dom", LEAK))


def snapshot_row(sessions: sessionmaker[Session], month: str) -> ReportSnapshot:
    with sessions() as session:
        row = session.scalar(select(ReportSnapshot).where(ReportSnapshot.month == month))
        assert row is not None
        return row


def test_a_closed_report_keeps_its_figures_after_every_kind_of_later_change(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, alarms: AlarmService,
        people: People) -> None:
    p = people
    reports = MonthlyReport(sessions, clock=clock)
    march, april = Month(2026, 3, SHANGHAI), Month(2026, 4, SHANGHAI)
    at(clock, local(2026, 3, 10, 9))
    late = tasks.create_task(p.operator, LEAK, asset="dom-p2", estate=HV)
    work(tasks, people, late.id, complete=False)  # in progress at the month's end
    unverified = tasks.create_task(p.operator, LEAK, asset="dom-p3", estate=HV)
    work(tasks, people, unverified.id)  # done, awaiting the supervisor
    doomed = tasks.create_task(p.operator, LEAK, asset="dom-p4", estate=HV)
    raise_alarm(alarms, clock, AlarmAction.RAISED)
    [repeating] = [t for t in tasks.list_tasks()[0] if t.kind == "alarm"]
    work(tasks, people, repeating.id)

    assert reports.close_due(at(clock, local(2026, 4, 1, 0, 1))) == ["built 2026-03"]
    assert reports.close_due(at(clock, local(2026, 4, 6, 0, 1))) == ["closed 2026-03"]
    closed = reports.report(march, utc_from_epoch(clock.now()))
    assert closed["status"] == "closed"
    assert closed["final"] is True
    assert closed["closed_by"] == "due"
    assert closed["totals"]["completed"] == 2
    assert closed["totals"]["raised"] == 4
    assert closed["amendments"] == []

    at(clock, local(2026, 4, 8, 8))
    raise_alarm(alarms, clock, AlarmAction.CLEARED)  # the leak stopped only now ...
    at(clock, local(2026, 4, 8, 9))
    tasks.complete(late.id, p.technician, "late", "fixed late")  # a late completion
    tasks.verify(unverified.id, p.supervisor2)  # a verification
    tasks.cancel(doomed.id, p.supervisor, "duplicate report")  # a cancellation
    raise_alarm(alarms, clock, AlarmAction.RAISED)  # ... and is back within the hour: its task reopens
    tasks.add_note(late.id, p.supervisor, "checked on site")  # a correction of the record
    reports.close_due(at(clock, local(2026, 4, 8, 10)))

    now = utc_from_epoch(clock.now())
    again = reports.report(march, now)
    assert figures(again) == figures(closed)
    listed = {(a["task_id"], a["action"]): a for a in again["amendments"]}
    assert set(listed) == {(late.id, "completed"), (unverified.id, "verified"), (doomed.id, "cancelled"),
                           (repeating.id, "reopened"), (late.id, "note")}
    assert all(a["counted_in"] == "2026-04" for a in again["amendments"])
    assert listed[(doomed.id, "cancelled")]["why"] == "duplicate report"
    assert listed[(repeating.id, "reopened")]["what"]["en"] == f"task #{repeating.id} reopened on 2026-04-08"
    assert listed[(late.id, "note")]["why"] == "checked on site"
    # ... and each counts in April, where it happened.
    counted = reports.report(april, now)
    assert counted["totals"]["completed"] == 1
    assert counted["totals"]["verified"] == 1
    assert counted["totals"]["cancelled"] == 1
    assert counted["totals"]["reopened"] == 1
    assert counted["repeat_faults"] == [{"asset": "dom-p1", "faults": 1, "repeats": 1, "alarm_repeats": 1,
                                         "fault_reports": 0}]
    assert counted["totals"]["raised"] == 0
    # Recording the amendments twice records nothing twice.
    reports.close_due(now)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReportAmendment)) == 5


def test_a_january_task_reopened_on_1_february_stays_completed_in_january(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, alarms: AlarmService,
        people: People) -> None:
    reports = MonthlyReport(sessions, clock=clock)
    january, february = Month(2027, 1, SHANGHAI), Month(2027, 2, SHANGHAI)
    at(clock, local(2027, 1, 20, 10))
    raise_alarm(alarms, clock, AlarmAction.RAISED)
    [task] = tasks.list_tasks()[0]
    work(tasks, people, task.id)
    tasks.verify(task.id, people.supervisor2)
    at(clock, local(2027, 1, 31, 22))
    raise_alarm(alarms, clock, AlarmAction.CLEARED)
    assert reports.close_due(at(clock, local(2027, 2, 1, 0, 1))) == ["built 2027-01"]
    at(clock, local(2027, 2, 1, 9))
    raise_alarm(alarms, clock, AlarmAction.RAISED)  # within the reopen window: the same task reopens
    assert tasks.get(task.id).state == "raised"
    reports.close_due(at(clock, local(2027, 2, 6, 0, 1)))

    now = utc_from_epoch(clock.now())
    jan = reports.report(january, now)
    assert jan["status"] == "closed"
    alarm_jan = jan["tasks_by_kind"]["alarm"]
    counts = (alarm_jan["raised"], alarm_jan["completed"], alarm_jan["verified"], alarm_jan["reopened"])
    assert counts == (1, 1, 1, 0)
    assert jan["repeat_faults"] == []  # the repeat happened in February
    [amendment] = jan["amendments"]
    assert amendment["what"] == {"zh": f"任务 #{task.id} 于 2027-02-01 重新打开",
                                 "en": f"task #{task.id} reopened on 2027-02-01"}
    assert amendment["counted_in"] == "2027-02"
    feb = reports.report(february, now)
    assert feb["tasks_by_kind"]["alarm"]["reopened"] == 1
    assert feb["repeat_faults"] == [{"asset": "dom-p1", "faults": 1, "repeats": 1, "alarm_repeats": 1,
                                     "fault_reports": 0}]


def test_march_rounds_closed_on_3_april_count_in_april_and_amend_march(
        sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService, people: People) -> None:
    reports = MonthlyReport(sessions, clock=clock)
    march, april = Month(2026, 3, SHANGHAI), Month(2026, 4, SHANGHAI)
    rounds = []
    for day in range(1, 15):
        at(clock, local(2026, 3, day, 8))
        rounds.append(tasks.create_from_plan(f"harbour-view:daily-round:dom@2026-03-{day:02d}", ROUND,
                                             kind=TaskKind.INSPECTION, estate=HV).id)
        if day <= 4:
            work(tasks, people, rounds[-1])
    for task_id in rounds[4:]:
        work(tasks, people, task_id, complete=False)
    reports.close_due(at(clock, local(2026, 4, 1, 0, 1)))
    on_the_2nd = reports.report(march, at(clock, local(2026, 4, 2, 9)))
    assert on_the_2nd["status"] == "preview"  # built, not closed before the 6th
    assert on_the_2nd["tasks_by_kind"]["inspection"]["completed"] == 4

    at(clock, local(2026, 4, 3, 9))
    for task_id in rounds[4:]:
        tasks.complete(task_id, people.technician, "round", "all items checked")
    now = utc_from_epoch(clock.now())
    assert figures(reports.report(march, now)) == figures(on_the_2nd)  # before the close, as after it
    reports.close_due(at(clock, local(2026, 4, 6, 0, 1)))
    closed = reports.report(march, utc_from_epoch(clock.now()))
    assert closed["status"] == "closed"
    assert closed["tasks_by_kind"]["inspection"]["completed"] == 4
    assert closed["states_at_end"]["inspection"] == {"open": 10, "done": 4, "verified": 0, "cancelled": 0}
    late = [a for a in closed["amendments"] if a["action"] == "completed"]
    assert sorted(a["task_id"] for a in late) == rounds[4:]
    assert {a["counted_in"] for a in late} == {"2026-04"}
    in_april = reports.report(april, utc_from_epoch(clock.now()))
    assert in_april["tasks_by_kind"]["inspection"]["completed"] == 10


def test_the_directors_signature_closes_the_month_early(sessions: sessionmaker[Session], clock: FakeClock,
                                                        tasks: TaskService, people: People) -> None:
    p = people
    reports = MonthlyReport(sessions, clock=clock)
    march = Month(2026, 3, SHANGHAI)
    at(clock, local(2026, 3, 3, 9))
    task = tasks.create_task(p.operator, LEAK, asset="dom-p1", estate=HV)
    with pytest.raises(Conflict, match="not over"):
        reports.sign(march, p.director, utc_from_epoch(clock.now()))
    reports.close_due(at(clock, local(2026, 4, 1, 0, 1)))
    now = at(clock, local(2026, 4, 2, 10))
    prepared = reports.sign(march, p.supervisor, now)  # 编制: the supervisor, which does not close it
    assert prepared["status"] == "preview"
    assert prepared["signatures"]["prepared"]["name"] == p.supervisor.display_name
    with pytest.raises(Conflict, match="already signed"):
        reports.sign(march, p.supervisor2, now)
    with pytest.raises(Forbidden, match="director"):
        reports.sign(march, p.admin, now, line="approved")
    approved = reports.sign(march, p.director, at(clock, local(2026, 4, 2, 11)))  # 审核: closes it
    assert approved["status"] == "closed"
    assert approved["closed_by"] == "signed"
    assert approved["signatures"]["approved"]["name"] == p.director.display_name
    assert [e["edition"] for e in approved["archive"]] == [1]
    at(clock, local(2026, 4, 3, 9))
    work(tasks, people, task.id)  # completed after the early close: an amendment, counted in April
    assert reports.close_due() == ["amended"]
    report = reports.report(march, utc_from_epoch(clock.now()))
    assert report["totals"]["completed"] == 0
    assert [a["action"] for a in report["amendments"]] == ["assigned", "started", "completed"]
    assert reports.close_due(at(clock, local(2026, 4, 6, 0, 1))) == []  # already closed: nothing to do
    row = snapshot_row(sessions, "2026-03")
    assert (row.closed_reason, row.approved_by, row.prepared_by) == ("signed", p.director.id, p.supervisor.id)


def test_one_person_signs_one_line_and_a_deputy_may_sign(sessions: sessionmaker[Session], clock: FakeClock,
                                                          auth: AuthService, people: People) -> None:
    p = people
    reports = MonthlyReport(sessions, clock=clock)
    january = Month(2026, 1, SHANGHAI)
    both = auth.create_user("bo", "correct horse battery", roles=["supervisor", "director"],
                            display_name="Bo")
    now = at(clock, local(2026, 2, 2, 9))
    reports.sign(january, both, now, line="prepared")
    with pytest.raises(Forbidden, match="two people"):
        reports.sign(january, both, now, line="approved")
    with pytest.raises(Forbidden, match="director"):
        reports.sign(january, p.technician, now)
    # The director is away: the supervisor2 deputises and approves.
    auth.add_deputy(p.director.id, p.supervisor2.id, Role.DIRECTOR, now, None, p.admin)
    signed = reports.sign(january, p.supervisor2, now, line="approved")
    assert signed["status"] == "closed"
    assert signed["signatures"]["approved"]["name"] == f"{p.supervisor2.display_name}（代 deputy）"
    with pytest.raises(Conflict, match="already signed"):
        reports.sign(january, p.director, now)
    february = Month(2026, 2, SHANGHAI)
    later = at(clock, local(2026, 3, 2, 9))
    reports.sign(february, p.director, later)
    with pytest.raises(Conflict, match="no preparer signs after"):
        reports.sign(february, p.supervisor, later)


def test_a_signature_after_the_due_date_archives_a_new_edition(sessions: sessionmaker[Session],
                                                               clock: FakeClock, people: People) -> None:
    reports = MonthlyReport(sessions, clock=clock)
    january = Month(2026, 1, SHANGHAI)
    assert reports.close_due(at(clock, local(2026, 2, 6, 0, 1))) == ["built 2026-01", "closed 2026-01"]
    signed = reports.sign(january, people.director, at(clock, local(2026, 2, 9, 9)))
    assert [(e["edition"], e["reason"]) for e in signed["archive"]] == [(1, "closed"), (2, "approved")]
    first, digest = reports.pdf(january, utc_from_epoch(clock.now()), edition=1)
    newest, newest_digest = reports.pdf(january, utc_from_epoch(clock.now()))
    assert first != newest
    assert digest != newest_digest
    with sessions() as session:
        hashes = [row.after["sha256"] for row in session.scalars(
            select(AuditLog).where(AuditLog.entity == "report", AuditLog.action == "archived")
            .order_by(AuditLog.id)) if row.after]
    assert hashes == [digest, newest_digest]


def test_no_report_is_built_for_months_before_anything_was_recorded(sessions: sessionmaker[Session],
                                                                     clock: FakeClock,
                                                                     people: People) -> None:
    reports = MonthlyReport(sessions, clock=clock)
    assert reports.close_due() == []  # the people were created on 1 January: no December report
    assert reports.close_due(at(clock, local(2026, 4, 2, 9))) == ["built 2026-03"]  # no back-log invented
    # after an outage, the months between the last report and the previous month are built too
    reports.close_due(at(clock, local(2026, 7, 1, 9)))
    with sessions() as session:
        months = list(session.scalars(select(ReportSnapshot.month).order_by(ReportSnapshot.month)))
    assert months == ["2026-03", "2026-04", "2026-05", "2026-06"]


def test_two_replicas_building_and_closing_at_once_leave_one_report(db_url: str, engine: Engine,
                                                                    clock: FakeClock, people: People) -> None:
    """Every API replica runs the periodic check: racing, they still build, close and archive once."""
    now = at(clock, local(2026, 2, 7, 9))  # January is both ready and due
    engines = [make_engine(db_url) for _ in range(4)]
    try:
        replicas = [MonthlyReport(session_factory(e), clock=clock) for e in engines]
        start = threading.Barrier(len(replicas))
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def run(replica: MonthlyReport) -> None:
            start.wait()
            try:
                results.append(replica.close_due(now))
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        done = sorted(step for steps in results for step in steps)
        assert done == ["built 2026-01", "closed 2026-01"]
    finally:
        for e in engines:
            e.dispose()
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(ReportSnapshot)) == 1
        assert session.scalar(select(func.count()).select_from(ReportArchive)) == 1
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.entity == "report")
                                       .order_by(AuditLog.id)))
    assert actions == ["built", "closed", "archived"]


async def test_the_maintenance_states_periodic_check_builds_and_closes_the_report(
        engine: Engine, clock: FakeClock, people: People, tmp_path: Path) -> None:
    state = MaintenanceService(load_site(EXAMPLE), Settings(collector=CollectorSettings(state_dir=tmp_path)),
                               clock, engine)
    await clock.advance(local(2026, 2, 1, 0, 1).timestamp() - clock.now())
    await state.check_deadlines()
    assert snapshot_row(session_factory(engine), "2026-01").state == "built"
    await clock.advance(local(2026, 2, 6, 0, 1).timestamp() - clock.now())
    await state.check_deadlines()
    await state.check_deadlines()  # again: nothing more to do
    row = snapshot_row(session_factory(engine), "2026-01")
    assert (row.state, row.closed_reason) == ("closed", "due")
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(ReportArchive)) == 1
