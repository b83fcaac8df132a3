"""The monthly report from real task records, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.models import utc_from_epoch
from maintenance.reports import Month, MonthlyReport, to_csv, to_html
from maintenance.tasks import TaskService
from maintenance.vocab import Priority
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from tests.support.state import People, advance

JANUARY = Month(2026, 1, ZoneInfo("Asia/Shanghai"))


def test_counts_times_repeats_and_parts(sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService,
                                        alarms: AlarmService, people: People) -> None:
    p = people
    # Task 1: high priority, started after 30 min, done after 90 min: inside its 2 h SLA.
    quick = tasks.create_task(p.operator, Text(zh="漏水", en="leak"), priority=Priority.HIGH, asset="dom-p1")
    tasks.assign(quick.id, p.supervisor, [p.technician.id])
    advance(clock, 1800)
    tasks.start(quick.id, p.technician)
    tasks.add_part(quick.id, p.technician, "mechanical seal", 1)
    advance(clock, 3600)
    tasks.complete(quick.id, p.technician, "worn seal", "replaced the seal")
    # Task 2: critical, never started: overdue after its 30 minutes.
    tasks.create_task(p.operator, Text(zh="压力低", en="low pressure"), priority=Priority.CRITICAL,
                      asset="dom-header")
    # An alarm that clears and comes back: one task, one repeat fault on the asset.
    key = AlarmKey("dom-ptank", "leak")
    message = Text(zh="漏水", en="leak")
    alarms.apply(AlarmEvent(AlarmAction.RAISED, key, Severity.CRITICAL, clock.now(), "dom", message))
    advance(clock, 600)
    alarms.apply(AlarmEvent(AlarmAction.CLEARED, key, Severity.CRITICAL, clock.now(), "dom", message))
    advance(clock, 600)
    alarms.apply(AlarmEvent(AlarmAction.RAISED, key, Severity.CRITICAL, clock.now(), "dom", message))
    advance(clock, 3 * 3600)

    report = MonthlyReport(sessions).build(JANUARY, utc_from_epoch(clock.now()))
    assert report["final"] is False  # still January
    assert report["tasks_by_kind"]["fault"] == {"raised": 2, "done": 1, "overdue": 1, "cancelled": 0}
    assert report["tasks_by_kind"]["alarm"]["raised"] == 1
    assert report["tasks_by_kind"]["alarm"]["overdue"] == 1
    assert report["totals"]["raised"] == 3
    assert report["response_minutes"] == {"count": 1, "median_min": 30.0, "max_min": 30.0, "within_sla": 1}
    assert report["completion_minutes"]["median_min"] == 90.0
    assert report["completion_minutes"]["within_sla"] == 1
    assert report["repeat_faults"] == [{"asset": "dom-ptank", "repeats": 1}]
    assert report["parts_used"] == [{"part": "mechanical seal", "unit": "pcs", "quantity": 1.0}]

    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert ["tasks", "fault", "overdue", "1"] in rows
    assert ["parts_used", "mechanical seal", "pcs", "1.0"] in rows
    page = to_html(report, "海景花园 <b>")
    assert "海景花园 &lt;b&gt;" in page  # names are escaped
    assert "<script" not in page


def test_the_report_is_final_from_the_first_of_the_next_month(sessions: sessionmaker[Session],
                                                              clock: FakeClock) -> None:
    report = MonthlyReport(sessions).build(JANUARY, JANUARY.end)
    assert report["final"] is True
    assert report["totals"]["raised"] == 0
    assert report["due_by"].startswith("2026-02-05")
