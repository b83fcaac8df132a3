"""The portfolio report's figures and ranking on a seeded January with four estates, on SQLite and PostgreSQL.

Each estate's tasks, alarms and plan occurrences are built so every figure has a known value, and so the
ranking by score differs from a ranking by SLA attainment alone.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.errors import InvalidInput
from maintenance.models import utc_from_epoch
from maintenance.reports import MonthlyReport
from maintenance.reports.portfolio import CSV_HEADER, PortfolioReport, portfolio_csv
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People, advance

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
ESTATES = ["alpha", "bravo", "charlie", "delta"]
WORK = Text(zh="工作", en="work")


def at(clock: FakeClock, when: datetime) -> datetime:
    """Move the fake clock forward to the local time `when`."""
    asyncio.run(clock.advance(when.timestamp() - clock.now()))
    return utc_from_epoch(clock.now())


def now(clock: FakeClock) -> datetime:
    return utc_from_epoch(clock.now())


def finish(tasks: TaskService, people: People, task_id: int) -> None:
    """Assign (if not yet), start and complete a task at the clock's time."""
    if tasks.get(task_id).state == "raised":
        tasks.assign(task_id, people.supervisor, [people.technician.id])
    tasks.start(task_id, people.technician)
    for item in tasks.get(task_id).checklist:
        tasks.record_check(task_id, people.technician, item["key"], CheckResult.OK)
    tasks.complete(task_id, people.technician, "routine", "done")


def occurrence(tasks: TaskService, clock: FakeClock, estate: str, key: str, due_in: timedelta,
               kind: TaskKind = TaskKind.INSPECTION) -> int:
    """A plan occurrence's task, due `due_in` from now."""
    return tasks.create_from_plan(f"{estate}:{key}", WORK, kind=kind, due_at=now(clock) + due_in,
                                  estate=estate).id


def alarm(alarms: AlarmService, clock: FakeClock, action: AlarmAction, asset: str, kind: str,
          severity: Severity = Severity.CRITICAL) -> None:
    alarms.apply(AlarmEvent(action, AlarmKey(asset, kind, "bravo"), severity, clock.now(), "room", WORK))


def seed_alpha(tasks: TaskService, clock: FakeClock, p: People) -> None:
    """Everything on time: SLA 6/6, rotation 1/1, inspection 1/1."""
    at(clock, datetime(2026, 1, 5, 9, tzinfo=SHANGHAI))
    fault = tasks.create_task(p.operator, WORK, priority=Priority.HIGH, asset="a-p1", estate="alpha")
    tasks.assign(fault.id, p.supervisor, [p.technician.id])
    advance(clock, 3600)
    finish(tasks, p, fault.id)
    rotation = occurrence(tasks, clock, "alpha", "duty-rotation:pumps@2026-01-05", timedelta(days=2),
                          TaskKind.PLAN)
    finish(tasks, p, rotation)
    rounds = occurrence(tasks, clock, "alpha", "rounds:dom@2026-01-05", timedelta(days=1))
    finish(tasks, p, rounds)


def seed_bravo(tasks: TaskService, alarms: AlarmService, clock: FakeClock, p: People) -> int:
    """A critical leak that came back twice and nobody took on; one late round, one cancelled round.

    SLA 5/10 (the leak 0/2, the warning 0/2, the rotation 2/2, the rounds 2/2 and 1/2); rotation 1/1;
    inspection 1/2; repeat pairs 1 with 2 repeats (the pressure alarm on the same asset is another type);
    1 critical open at the month's end. Returns the leak's task id.
    """
    at(clock, datetime(2026, 1, 8, 9, tzinfo=SHANGHAI))
    for action in (AlarmAction.RAISED, AlarmAction.CLEARED, AlarmAction.RAISED, AlarmAction.CLEARED,
                   AlarmAction.RAISED):
        alarm(alarms, clock, action, "b-p1", "leak")
        advance(clock, 600)
    alarm(alarms, clock, AlarmAction.RAISED, "b-p1", "pressure_low", Severity.WARNING)
    rotation = occurrence(tasks, clock, "bravo", "duty-rotation:pumps@2026-01-08", timedelta(days=2),
                          TaskKind.PLAN)
    finish(tasks, p, rotation)
    on_time = occurrence(tasks, clock, "bravo", "rounds:dom@2026-01-08", timedelta(days=1))
    finish(tasks, p, on_time)
    late = occurrence(tasks, clock, "bravo", "rounds:dom@2026-01-09", timedelta(hours=2))
    tasks.assign(late, p.supervisor, [p.technician.id])
    advance(clock, 3 * 3600)
    finish(tasks, p, late)
    dropped = occurrence(tasks, clock, "bravo", "rounds:dom@2026-01-10", timedelta(days=1))
    tasks.cancel(dropped, p.supervisor, "pump room closed for works")
    found, _count = tasks.list_tasks(limit=100)
    return next(t.id for t in found if t.estate == "bravo" and t.priority == Priority.CRITICAL.value)


def seed_charlie(tasks: TaskService, clock: FakeClock, p: People) -> None:
    """Good SLA (6/8), but the rotation never done (0/1) and no rounds; a rotation due in February pending."""
    at(clock, datetime(2026, 1, 12, 9, tzinfo=SHANGHAI))
    for _ in range(2):
        quick = tasks.create_task(p.operator, WORK, asset="c-p1", estate="charlie")
        finish(tasks, p, quick.id)
    slow = tasks.create_task(p.operator, WORK, asset="c-p2", estate="charlie")
    advance(clock, 30 * 3600)  # taken on after 30 h: the normal priority's 24 h response missed
    finish(tasks, p, slow.id)
    rotation = occurrence(tasks, clock, "charlie", "duty-rotation:pumps@2026-01-13", timedelta(days=1),
                          TaskKind.PLAN)
    tasks.assign(rotation, p.supervisor, [p.technician.id])  # taken on, never confirmed
    at(clock, datetime(2026, 1, 31, 20, tzinfo=SHANGHAI))
    occurrence(tasks, clock, "charlie", "duty-rotation:pumps@2026-01-31", timedelta(days=2), TaskKind.PLAN)


def test_the_figures_and_the_ranking_of_a_month(sessions: sessionmaker[Session], clock: FakeClock,
                                                tasks: TaskService, alarms: AlarmService,
                                                people: People) -> None:
    report = PortfolioReport(sessions, MonthlyReport(sessions, clock=clock))
    seed_alpha(tasks, clock, people)
    leak = seed_bravo(tasks, alarms, clock, people)
    at(clock, datetime(2026, 1, 20, 9, tzinfo=SHANGHAI))
    current = report.report("2026-01", ESTATES, now(clock))
    assert current["final"] is False
    assert current["data"][0]["as_of"] == now(clock).isoformat()
    seed_charlie(tasks, clock, people)
    at(clock, datetime(2026, 2, 3, 9, tzinfo=SHANGHAI))
    finish(tasks, people, leak)  # done in February: January still ends with it open

    january = report.report("2026-01", ESTATES, now(clock))
    assert january["final"] is True
    rows = {row["estate"]: row for row in january["data"]}
    figures = {e: (r["sla"]["on_time"], r["sla"]["due"], r["rotation"]["on_time"], r["rotation"]["due"],
                   r["inspection"]["on_time"], r["inspection"]["due"], r["repeat_faults"], r["repeats"],
                   r["open_critical"]) for e, r in rows.items()}
    assert figures == {"alpha": (6, 6, 1, 1, 1, 1, 0, 0, 0),
                       "bravo": (5, 10, 1, 1, 1, 2, 1, 2, 1),
                       "charlie": (6, 8, 0, 1, 0, 0, 0, 0, 0),
                       "delta": (0, 0, 0, 0, 0, 0, 0, 0, 0)}
    assert (rows["bravo"]["response"]["share"], rows["bravo"]["resolution"]["share"]) == (0.6, 0.4)
    assert [rows[e]["score"] for e in ESTATES] == [1.0, 0.667, 0.375, None]
    # By SLA alone charlie (0.75) would come before bravo (0.5); by score bravo is second.
    assert [row["estate"] for row in january["data"]] == ["alpha", "bravo", "charlie", "delta"]
    assert [row["rank"] for row in january["data"]] == [1, 2, 3, 4]
    assert datetime.fromisoformat(rows["alpha"]["as_of"]) == datetime(2026, 2, 1, tzinfo=SHANGHAI)

    february = report.report("2026-02", ["bravo"], now(clock))
    assert february["data"][0]["open_critical"] == 0  # the leak is done now
    assert report.report("2026-01", ["alpha"], now(clock))["data"][0]["estate"] == "alpha"


def test_the_csv_has_one_inert_row_per_estate(sessions: sessionmaker[Session], clock: FakeClock,
                                              tasks: TaskService, people: People) -> None:
    seed_alpha(tasks, clock, people)
    report = PortfolioReport(sessions, MonthlyReport(sessions, clock=clock)).report(
        "2026-01", ["alpha", "=cmd"], now(clock))
    rows = list(csv.reader(io.StringIO(portfolio_csv(report).removeprefix("\ufeff"))))
    assert tuple(rows[0]) == CSV_HEADER
    assert [(r[0], r[1]) for r in rows[1:]] == [("1", "alpha"), ("2", "'=cmd")]


def test_a_month_that_has_not_begun_has_no_portfolio_report(sessions: sessionmaker[Session],
                                                             clock: FakeClock) -> None:
    report = PortfolioReport(sessions, MonthlyReport(sessions, clock=clock))
    with pytest.raises(InvalidInput, match="has not begun"):
        report.report("2026-03", ESTATES, now(clock))
    with pytest.raises(InvalidInput):
        report.report("2026-1", ESTATES, now(clock))
    assert report.report("2026-01", [], now(clock))["data"] == []


def test_each_estate_counts_its_own_calendar_month(sessions: sessionmaker[Session], clock: FakeClock,
                                                   tasks: TaskService, people: People) -> None:
    """At 20:00 UTC on 31 January it is already 1 February in Shanghai: the same work counts in January
    for an estate on UTC and in February for one in Shanghai."""
    site = load_site(EXAMPLE)
    info = site.site.model_copy(update={"id": "thames", "timezone": "UTC"})
    report = PortfolioReport(sessions, MonthlyReport(sessions, site=Portfolio.of(
        site, site.model_copy(update={"site": info})), clock=clock))
    at(clock, datetime(2026, 1, 31, 20, tzinfo=ZoneInfo("UTC")))
    for estate in (site.site.id, "thames"):
        task = tasks.create_task(people.operator, WORK, asset="dom-p1", estate=estate)
        tasks.assign(task.id, people.supervisor, [people.technician.id])
    at(clock, datetime(2026, 2, 10, tzinfo=SHANGHAI))

    def responses(month: str) -> dict[str, int]:
        rows = report.report(month, [site.site.id, "thames"], now(clock))["data"]
        return {row["estate"]: row["response"]["due"] for row in rows}

    assert responses("2026-01") == {"thames": 1, site.site.id: 0}
    assert responses("2026-02") == {"thames": 0, site.site.id: 1}
