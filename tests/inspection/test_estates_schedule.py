"""One scheduler for every estate: each estate's plans, its own task keys, its own catch-up floors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import InspectionScheduler
from maintenance import audit
from maintenance.models import AuditLog, utc_from_epoch
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B, C = "harbour-view", "twin-towers", "new-court"


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


def _scheduler(portfolio: Portfolio, sessions: sessionmaker[Session],
               clock: FakeClock) -> InspectionScheduler:
    return InspectionScheduler(portfolio, sessions, TaskService(sessions, clock), clock, offload=False)


async def test_each_estate_gets_its_own_plan_tasks_keyed_by_its_estate(
        sessions: sessionmaker[Session]) -> None:
    site = load_site(EXAMPLE)
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 10, 12))
    scheduler = _scheduler(Portfolio.of(site, _twin(site, B)), sessions, clock)
    scheduler.catch_up()
    await clock.advance(20 * 3600)  # 08:00 on the 11th: each estate's rounds and rotation
    made = scheduler.catch_up()
    assert sorted((s.occurrence.plan_key, s.task_id > 0) for s in made) == sorted(
        [(key, True) for key in ("daily-round:dom@2026-01-11", "daily-round:fire@2026-01-11",
                                 "duty-rotation:dom-duty@2026-01-11")] * 2)
    rows = plan_tasks(sessions)
    by_estate = Counter(task.estate for task in rows)
    assert by_estate == {A: 5, B: 5}  # the anti-rust windows and today's three, of each estate
    assert all(task.plan_key == f"{task.estate}:{own_key(task)}" for task in rows)
    assert {own_key(t) for t in rows if t.estate == A} == {own_key(t) for t in rows if t.estate == B}
    assert _scheduler(Portfolio.of(site, _twin(site, B)), sessions, clock).catch_up() == []  # a restart


async def test_an_estate_added_later_starts_its_own_floors_without_a_backlog(
        sessions: sessionmaker[Session]) -> None:
    site = load_site(EXAMPLE)
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 10, 12))
    scheduler = _scheduler(Portfolio.of(site), sessions, clock)
    scheduler.catch_up()
    await clock.advance(3 * 86_400)  # the 13th, 12:00: three days of rounds for harbour-view
    scheduler.catch_up()
    scheduler.update_estate(_twin(site, C))  # a reload brings a new estate
    made = scheduler.catch_up()
    assert {s.occurrence.plan_key for s in made} == {"pipe-anti-rust:dom@2026-01-31",
                                                     "pipe-anti-rust:fire@2026-01-31"}  # only unmissable work
    assert all(plan_tasks(sessions, "pipe-anti-rust:", estate=C))
    with sessions() as session:
        floors = {row.entity_id for row in session.scalars(select(AuditLog).where(
            AuditLog.entity == "plan", AuditLog.action == "scheduled_from"))}
    assert f"{C}:daily-round:dom" in floors
    assert f"{A}:daily-round:dom" in floors
    assert len(plan_tasks(sessions, "daily-round:", estate=C)) == 0
    assert len(plan_tasks(sessions, "daily-round:", estate=A)) == 6  # 11th, 12th and 13th, two rooms
    scheduler.remove_estate(C)
    await clock.advance(86_400)
    assert {s.occurrence.target.room for s in scheduler.catch_up()} == {"dom", "fire"}
    assert len(plan_tasks(sessions, "daily-round:", estate=C)) == 0  # removed: no more work


async def test_the_adopted_estate_keeps_the_floors_written_before_estates(
        sessions: sessionmaker[Session]) -> None:
    site = load_site(EXAMPLE)
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 14, 12))
    before = utc_from_epoch(local_epoch(SHANGHAI, 2026, 1, 10, 12))
    with sessions.begin() as session:  # a scheduler ran before estates, then the upgrade adopted its records
        audit.record(session, audit.SYSTEM, "plan", "daily-round:dom", "scheduled_from", None,
                     {"plan": "daily-round", "target": "dom"}, before)
        audit.record(session, audit.SYSTEM, "estate", A, "adopted", None, {"tasks": 0}, before)
    made = _scheduler(Portfolio.of(site), sessions, clock).catch_up()
    missed = sorted(s.occurrence.plan_key for s in made if s.occurrence.plan == "daily-round")
    assert missed == [f"daily-round:dom@2026-01-{day}" for day in (11, 12, 13, 14)]  # caught up, late
    assert all(s.late for s in made if s.occurrence.plan == "daily-round")


async def test_readings_reach_only_their_estates_schedule(sessions: sessionmaker[Session]) -> None:
    site = load_site(EXAMPLE)
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 10, 12))
    scheduler = _scheduler(Portfolio.of(site, _twin(site, B)), sessions, clock)
    scheduler.on_readings([Reading(f"{B}/dom-p1-current", clock.now(), 12.0)])
    assert scheduler.estate(B).rotation.latest("dom-p1-current") is not None
    assert scheduler.estate(A).rotation.latest("dom-p1-current") is None
