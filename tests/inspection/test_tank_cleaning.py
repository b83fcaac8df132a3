"""Cleaning and disinfection of the secondary water supply's tanks (GB 17051): every six months by default.

Only drinking-water tanks (in rooms with domestic pumps) are in the plan; the interval is the site's; the
task cannot be verified before the water-quality test report is attached to its item.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import InspectionScheduler
from maintenance.calendar import nominal_days, plan_targets, site_occurrences
from maintenance.errors import Conflict
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from pumpwatch.plans import EveryMonths, ItemType
from pumpwatch.sitefile import SiteFileError, parse_site
from tests.inspection.fire_sites import fire_site, fire_site_data, site_yaml
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks
from tests.support.state import People

START = datetime(2026, 1, 1, tzinfo=SHANGHAI)


def _cleanings(plans: dict[str, Any] | None = None, days: int = 365) -> list[tuple[str, date | None]]:
    site = fire_site(plans)
    found = site_occurrences(site, START, START + timedelta(days=days),
                             plans=[site.plans.plan("tank-cleaning")])
    return [(o.target.id, o.day) for o in found]


def test_domestic_tanks_are_cleaned_every_six_months_and_fire_water_tanks_are_not() -> None:
    site = fire_site()
    plan = site.plans.plan("tank-cleaning")
    assert [t.id for t in plan_targets(site, plan)] == ["dom-tank"]
    assert _cleanings() == [("dom-tank", date(2026, 4, 15)), ("dom-tank", date(2026, 10, 15))]
    [april] = [o for o in site_occurrences(site, START, START + timedelta(days=200), plans=[plan])]
    assert april.opens_at.astimezone(SHANGHAI) == datetime(2026, 3, 16, 17, tzinfo=SHANGHAI)  # a month ahead
    assert april.due_at.astimezone(SHANGHAI) == datetime(2026, 4, 15, 17, tzinfo=SHANGHAI)


def test_the_interval_and_the_dates_are_the_sites() -> None:
    yearly = {"plans": [{"id": "tank-cleaning", "schedule": {"type": "every_months", "months": 12,
                                                             "anchor": "2026-09-01"}}]}
    assert _cleanings(yearly, days=800) == [("dom-tank", date(2026, 9, 1)), ("dom-tank", date(2027, 9, 1))]
    quarterly = {"plans": [{"id": "tank-cleaning", "schedule": {"type": "every_months", "months": 3}}]}
    assert [day for _t, day in _cleanings(quarterly)] == [date(2026, 1, 15), date(2026, 4, 15),
                                                         date(2026, 7, 15), date(2026, 10, 15)]


def test_every_months_falls_on_the_anchor_day_or_the_months_last_day() -> None:
    schedule = EveryMonths(type="every_months", months=1, anchor=date(2025, 10, 31))
    assert list(nominal_days(schedule, date(2026, 1, 1), date(2026, 4, 30))) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    schedule = EveryMonths(type="every_months", months=5, anchor=date(2026, 6, 10))
    assert list(nominal_days(schedule, date(2025, 1, 1), date(2026, 12, 31))) == [
        date(2025, 3, 10), date(2025, 8, 10), date(2026, 1, 10), date(2026, 6, 10), date(2026, 11, 10)]


async def test_the_task_asks_for_the_water_quality_report_as_a_required_attachment(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 3, 16, 17))  # the April cleaning opens
    scheduler = InspectionScheduler(fire_site(), sessions, TaskService(sessions, clock), clock, offload=False)
    await scheduler.tick()
    [task] = plan_tasks(sessions, "tank-cleaning:")
    assert own_key(task) == "tank-cleaning:dom-tank@2026-04-15"
    assert (task.asset, task.room, task.priority) == ("dom-tank", "dom", "high")
    items = {item["key"]: item for item in task.checklist}
    report = items["water-quality-report"]
    assert report["type"] == ItemType.DOCUMENT.value
    assert report["attachment"] == "required"
    assert "水质检测报告" in report["zh"]
    assert "water-quality test report" in report["en"]
    assert [key for key, item in items.items() if "attachment" in item] == ["water-quality-report"]


async def test_the_cleaning_cannot_be_verified_before_the_report_is_attached_to_its_item(
        sessions: sessionmaker[Session], people: People) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 3, 16, 17))
    tasks = TaskService(sessions, clock)
    scheduler = InspectionScheduler(fire_site(), sessions, tasks, clock, offload=False)
    await scheduler.tick()
    [task] = plan_tasks(sessions, "tank-cleaning:")
    tasks.start(task.id, people.technician)
    for item in task.checklist:
        tasks.record_check(task.id, people.technician, str(item["key"]), CheckResult.OK)
    tasks.complete(task.id, people.technician, "half-yearly cleaning", "drained, cleaned, disinfected")
    with pytest.raises(Conflict, match="water-quality-report"):
        tasks.verify(task.id, people.supervisor)
    tasks.add_attachment(task.id, people.technician, "report.pdf", "application/pdf", 1024, "0" * 64,
                         "uploads/report.pdf", checklist_key="water-quality-report")
    assert tasks.verify(task.id, people.supervisor).state == "verified"


def test_a_site_document_item_requires_a_file_unless_it_says_optional() -> None:
    plans = {"plans": [{"id": "tank-cleaning", "checklist": [
        {"key": "report", "type": "document", "text": {"zh": "报告", "en": "Report"}},
        {"key": "invoice", "type": "document", "attachment": "optional",
         "text": {"zh": "发票", "en": "Invoice"}},
        {"key": "photo", "type": "photo", "attachment": "required", "text": {"zh": "照片", "en": "Photo"}}]}]}
    checklist = fire_site(plans).plans.plan("tank-cleaning").checklist
    assert [item.attachment_required for item in checklist] == [True, False, True]


def test_tank_plan_mistakes_are_located() -> None:
    text = site_yaml(fire_site_data({"plans": [
        {"id": "tank-cleaning", "assets": ["dom-tank", "no-tank"]},
        {"id": "fire-monthly", "checklist": [{"key": "a", "type": "number", "unit": "A", "expected": [0.1, 1],
                                              "of_rated_current": True, "text": {"zh": "甲", "en": "A"}}]},
        {"id": "weekly-sweep", "checklist": [{"key": "a", "type": "number", "unit": "A", "expected": [0.1, 1],
                                              "of_rated_current": True, "text": {"zh": "甲", "en": "A"}}]}]}))
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "site.yaml")
    found = {(i.field, i.message) for i in info.value.issues}
    assert found == {("plans.plans[0].assets[1]", "unknown tank 'no-tank'"),
                     ("plans.plans[2].checklist[0].of_rated_current",
                      "a share of rated current needs scope pump")}
