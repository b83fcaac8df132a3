"""The maintenance state of several estates on both databases: records keyed by estate, never mixed.

Asset and room ids repeat across estates (each estate's site file names its own `dom-p1`), so an alarm,
a task, an approval, an exception, a handover and a monthly report each name their estate.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmFilter, AlarmService
from maintenance.approvals import ApprovalService
from maintenance.errors import InvalidInput
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.models import Alarm, Task
from maintenance.reports import MonthlyReport
from maintenance.reports.month import Month
from maintenance.service import MaintenanceService
from maintenance.tasks import TaskFilter, TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People, advance, clock_time

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
DRY = Text(zh="一号生活泵干转", en="Domestic pump 1 running dry")


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    site = load_site(EXAMPLE)
    return Portfolio.of(site, _twin(site, B))


def _event(clock: FakeClock, action: AlarmAction, estate: str, asset: str = "dom-p1",
           alarm_type: str = "dry_run", room: str = "dom") -> AlarmEvent:
    return AlarmEvent(action, AlarmKey(asset, alarm_type, estate), Severity.CRITICAL, clock.now(), room, DRY,
                      0.05, "dom-pt-out")


def test_the_same_alarm_on_the_same_asset_id_in_two_estates_opens_two_alarms_and_two_tasks(
        alarms: AlarmService, tasks: TaskService, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    first = alarms.apply(_event(clock, AlarmAction.RAISED, A))
    second = alarms.apply(_event(clock, AlarmAction.RAISED, B))
    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert (first.estate, second.estate) == (A, B)
    again = alarms.apply(_event(clock, AlarmAction.ESCALATED, B))  # news of B's alarm: B's row only
    assert again is not None
    assert again.id == second.id
    with sessions() as session:
        rows = session.execute(select(Task.estate, Task.asset, Task.alarm_id).order_by(Task.id)).all()
    assert [tuple(r) for r in rows] == [(A, "dom-p1", first.id), (B, "dom-p1", second.id)]
    assert alarms.apply(_event(clock, AlarmAction.CLEARED, A)) is not None
    active, _ = alarms.list_alarms(AlarmFilter(state=None, estate=B))
    assert [(a.estate, a.state) for a in active] == [(B, "active")]
    mine, count = tasks.list_tasks(TaskFilter(estate=A))
    assert count == 1
    assert mine[0].alarm_id == first.id


def test_an_event_without_its_estate_is_refused(alarms: AlarmService, sessions: sessionmaker[Session],
                                                clock: FakeClock) -> None:
    with pytest.raises(InvalidInput, match="names no estate"):
        alarms.apply(_event(clock, AlarmAction.RAISED, ""))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0


async def test_the_maintenance_state_places_an_event_without_estate_only_in_a_single_estate(
        portfolio: Portfolio, engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path))
    several = MaintenanceService(portfolio, settings, clock, engine)
    several.accept_event(_event(clock, AlarmAction.RAISED, ""))
    assert several.pending_events == 0
    assert several.metrics.registry.get_sample_value("pumpwatch_alarm_events_refused_total") == 1
    single = MaintenanceService(portfolio.first, settings, clock, engine)
    single.accept_event(_event(clock, AlarmAction.RAISED, ""))
    assert single.pending_events == 1  # taken as harbour-view's


def test_approvals_exceptions_and_handovers_name_their_estate_and_are_listed_by_it(
        portfolio: Portfolio, sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService,
        alarms: AlarmService, people: People) -> None:
    approvals = ApprovalService(sessions, clock, tasks)
    start = clock_time(clock) + timedelta(hours=1)
    visit = approvals.request_access(people.operator, "李工", "检修", "dom", start,
                                     start + timedelta(hours=2), people.technician.id, estate=B)
    assert visit.estate == B
    assert [r.id for r in approvals.list_access(estate=B)] == [visit.id]
    assert approvals.list_access(estate=A) == []
    change = approvals.request_change(people.operator, "换阀门", "出口阀门渗漏", room="dom", asset="dom-p1",
                                      estate=B)
    decided = approvals.decide_change(change.id, people.supervisor, True)
    assert decided.task_id is not None
    assert tasks.get(decided.task_id).estate == B  # the work task is the estate's too

    exceptions = ExceptionService(sessions, clock, tasks, portfolio)
    with pytest.raises(InvalidInput, match="2 estates"):
        exceptions.request(people.operator, "检修", start, start + timedelta(hours=4), asset="dom-p1")
    held = exceptions.request(people.operator, "检修", clock_time(clock), start + timedelta(hours=4),
                              asset="dom-p1", estate=B)
    exceptions.approve(held.id, people.supervisor)
    assert held.estate == B
    silenced = alarms.apply(_event(clock, AlarmAction.RAISED, B, alarm_type="switch_not_auto"))
    loud = alarms.apply(_event(clock, AlarmAction.RAISED, A, alarm_type="switch_not_auto"))
    assert silenced is not None
    assert loud is not None
    assert alarms.task_for(silenced.id) is None  # B's exception silences B's switch
    assert alarms.task_for(loud.id) is not None  # and not A's switch of the same id

    handovers = HandoverService(sessions, clock, portfolio)
    with pytest.raises(InvalidInput, match="2 estates"):
        handovers.draft("dom")
    advance(clock, 60)
    draft_a = handovers.draft("dom", estate=A)
    draft_b = handovers.draft("dom", estate=B)
    assert {a["id"] for a in draft_a.open_alarms} == {loud.id}
    assert {a["id"] for a in draft_b.open_alarms} == {silenced.id}
    row = handovers.submit(people.operator, "dom", None, estate=A)
    assert row.estate == A


def test_each_estate_has_its_own_monthly_report(portfolio: Portfolio, sessions: sessionmaker[Session],
                                                clock: FakeClock, tasks: TaskService, people: People) -> None:
    created = {estate: [tasks.create_task(people.operator, DRY, asset="dom-p1", room="dom", estate=estate)
                        for _ in range(n)] for estate, n in ((A, 2), (B, 1))}
    reports = MonthlyReport(sessions, tasks.sla, site=portfolio, clock=clock)
    with pytest.raises(InvalidInput, match="2 estates"):
        reports.estate(None)
    january = Month(2026, 1, reports.zone(A))
    now = clock_time(clock) + timedelta(hours=1)
    assert reports.report(january, now, A)["totals"]["raised"] == 2
    assert reports.report(january, now, B)["totals"]["raised"] == 1
    assert reports.report(january, now, B)["site"]["en"] == portfolio.estate(B).site.name.en
    done = reports.close_due(Month(2026, 2, reports.zone(A)).start + timedelta(days=6))
    assert sorted(done) == sorted([f"built 2026-01 ({A})", f"closed 2026-01 ({A})", f"built 2026-01 ({B})",
                                   f"closed 2026-01 ({B})"])
    # B's January task assigned after the close: an amendment of B's report only (one sweep for both).
    week_into_february = Month(2026, 2, reports.zone(A)).start + timedelta(days=7)
    advance(clock, (week_into_february - clock_time(clock)).total_seconds())
    tasks.assign(created[B][0].id, people.supervisor, [people.technician.id])
    assert reports.close_due() == [f"amended ({B})"]
    assert [a["action"] for a in reports.report(january, clock_time(clock), B)["amendments"]] == ["assigned"]
    assert reports.report(january, clock_time(clock), A)["amendments"] == []
