"""Windows that cannot be missed: the seasonal anti-rust treatment and the half-yearly tank cleaning.

A window open when a site starts is created at once, and not late: nothing was missed before the site had
a scheduler. A window that opened while no scheduler ran is created at the restart, however long the
outage (`catch_up_days` caps only everyday work), and marked late; one that also closed meanwhile is
still created, late and overdue: the regulation wants the record of the missed work, not silence.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import InspectionScheduler, Scheduled
from maintenance.models import utc_from_epoch
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from pumpwatch.site import Site
from tests.inspection.fire_sites import fire_site
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks
from tests.support.state import advance

RUST_DOM, RUST_FIRE = "pipe-anti-rust:dom@2027-01-31", "pipe-anti-rust:fire@2027-01-31"
# Everyday plans off, where a test is about the long windows alone (fewer tasks: a quicker test).
QUIET = {"plans": [{"id": plan, "enabled": False}
                   for plan in ("daily-round", "weekly-sweep", "fire-weekly-test")]}


def _scheduler(site: Site, sessions: sessionmaker[Session], clock: FakeClock) -> InspectionScheduler:
    return InspectionScheduler(site, sessions, TaskService(sessions, clock), clock, offload=False)


def _keys(created: list[Scheduled], prefix: str) -> dict[str, bool]:
    """Created plan keys with `prefix` -> late."""
    return {s.occurrence.plan_key: s.late for s in created if s.occurrence.plan_key.startswith(prefix)}


def _run_from(site: Site, sessions: sessionmaker[Session], clock: FakeClock, until: float) -> None:
    """A scheduler that runs (catches up daily) from the clock's time until `until`, then stops."""
    scheduler = _scheduler(site, sessions, clock)
    scheduler.catch_up()
    while clock.now() < until:
        advance(clock, min(until - clock.now(), 86_400))
        scheduler.catch_up()
    scheduler.close()


def test_a_site_started_on_15_december_gets_its_anti_rust_task_once_and_not_late(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 12, 15, 10))
    scheduler = _scheduler(fire_site(), sessions, clock)
    created = scheduler.catch_up()
    assert _keys(created, "pipe-anti-rust:") == {RUST_DOM: False, RUST_FIRE: False}
    [task] = plan_tasks(sessions, RUST_DOM)
    assert task.due_at is not None
    assert task.due_at.astimezone(SHANGHAI) == datetime(2027, 1, 31, 17, tzinfo=SHANGHAI)
    assert not task.late
    assert scheduler.catch_up() == []
    assert _scheduler(fire_site(), sessions, clock).catch_up() == []  # a restart finds it made
    assert len(plan_tasks(sessions, "pipe-anti-rust:")) == 2


def test_an_outage_from_20_november_to_10_january_creates_it_once_at_the_restart_late(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 11, 1, 9))
    _run_from(fire_site(), sessions, clock, local_epoch(SHANGHAI, 2026, 11, 20, 9))
    assert plan_tasks(sessions, "pipe-anti-rust:") == []  # the window opens on 1 December
    # Down 51 days: longer than catch_up_days (31).
    advance(clock, local_epoch(SHANGHAI, 2027, 1, 10, 9) - clock.now())
    restarted = _scheduler(fire_site(), sessions, clock)
    created = restarted.catch_up()
    assert _keys(created, "pipe-anti-rust:") == {RUST_DOM: True, RUST_FIRE: True}
    rounds = [s for s in created if s.occurrence.plan == "daily-round"]
    assert min(s.occurrence.opens_at for s in rounds) >= utc_from_epoch(clock.now() - 31 * 86_400)
    assert _keys(restarted.catch_up(), "pipe-anti-rust:") == {}
    assert _keys(_scheduler(fire_site(), sessions, clock).catch_up(), "pipe-anti-rust:") == {}
    assert [own_key(t) for t in plan_tasks(sessions, "pipe-anti-rust:dom")] == [RUST_DOM]


def test_a_restart_on_5_february_after_an_outage_across_the_whole_window_still_creates_it_overdue(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 11, 1, 9))
    _run_from(fire_site(QUIET), sessions, clock, local_epoch(SHANGHAI, 2026, 11, 20, 9))
    advance(clock, local_epoch(SHANGHAI, 2027, 2, 5, 9) - clock.now())  # the window closed on 31 January
    created = _scheduler(fire_site(QUIET), sessions, clock).catch_up()
    assert _keys(created, "pipe-anti-rust:") == {RUST_DOM: True, RUST_FIRE: True}
    [task] = plan_tasks(sessions, RUST_DOM)
    assert task.late
    assert task.state == "raised"
    assert task.due_at is not None
    assert task.due_at < utc_from_epoch(clock.now())  # overdue at once: escalation follows


def test_a_site_started_after_the_window_closed_owes_nothing_for_that_winter(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2027, 2, 5, 9))
    assert _keys(_scheduler(fire_site(), sessions, clock).catch_up(), "pipe-anti-rust:") == {}


def test_the_half_yearly_tank_cleaning_survives_an_outage_across_its_window(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 2, 1, 9))
    _run_from(fire_site(QUIET), sessions, clock, local_epoch(SHANGHAI, 2026, 3, 1, 9))
    assert plan_tasks(sessions, "tank-cleaning:") == []  # the April cleaning opens on 16 March
    # Down 80 days, past its due date of 15 April.
    advance(clock, local_epoch(SHANGHAI, 2026, 5, 20, 9) - clock.now())
    created = _scheduler(fire_site(QUIET), sessions, clock).catch_up()
    assert _keys(created, "tank-cleaning:") == {"tank-cleaning:dom-tank@2026-04-15": True}
    keys = [own_key(t) for t in plan_tasks(sessions, "tank-cleaning:")]
    assert keys == ["tank-cleaning:dom-tank@2026-04-15"]
