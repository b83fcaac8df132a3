"""The scheduler: a simulated year, downtime, DST, exceptions, replicas, the APScheduler timer."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from inspection.scheduler import JOB_TABLE, InspectionScheduler
from maintenance.calendar import site_occurrences
from maintenance.db import make_engine, session_factory
from maintenance.models import AuditLog, Task, utc_from_epoch
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock, SystemClock
from pumpwatch.readings import Reading
from pumpwatch.sitefile import load_site
from tests.support.sites import BERLIN, SHANGHAI, advance_days, local_epoch, own_key, plan_tasks, site_with

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
NEW_YEAR = local_epoch(SHANGHAI, 2026, 1, 1)
FIRST_ROUND = local_epoch(SHANGHAI, 2026, 1, 1, 8)  # the rounds and the first rotation open at 08:00


def _scheduler(site_file: object, sessions: sessionmaker[Session], clock: FakeClock,
               **kwargs: object) -> InspectionScheduler:
    site = load_site(EXAMPLE) if site_file is None else site_file
    tasks = TaskService(sessions, clock)
    options: dict[str, object] = {"offload": False, "tick": 86_400.0} | kwargs
    return InspectionScheduler(site, sessions, tasks, clock, **options)  # type: ignore[arg-type]


def _by_plan(rows: list[Task]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for task in rows:
        assert own_key(task)
        plan, key = own_key(task).split(":", 1)
        out[(plan, key.split("@")[0])] += 1
    return out


@pytest.mark.e2e  # A long simulated span: a year of the calendar, day by day (5-10 s a backend).
async def test_a_simulated_year_creates_each_occurrence_once_and_on_time(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(NEW_YEAR)
    scheduler = _scheduler(None, sessions, clock)
    runner = asyncio.create_task(scheduler.run())
    await advance_days(clock, 365)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    rows = plan_tasks(sessions)
    counts = _by_plan(rows)
    assert counts[("duty-rotation", "dom-duty")] == 183
    assert counts[("contactor-check", "dom-p1")] == counts[("contactor-check", "dom-p2")] == 12
    assert counts[("weekly-sweep", "dom")] == counts[("weekly-sweep", "fire")] == 52
    assert counts[("unit-cleaning", "dom")] == counts[("unit-cleaning", "fire")] == 12
    assert counts[("fire-monthly", "fire-p1")] == counts[("fire-monthly", "fire-jockey")] == 12
    assert counts[("fire-weekly-test", "fire-p1")] == counts[("fire-weekly-test", "fire-jockey")] == 52
    assert counts[("daily-round", "dom")] == counts[("daily-round", "fire")] == 365
    # The winter of 2025/26 (its window open at the start) and the winter of 2026/27.
    assert counts[("pipe-anti-rust", "dom")] == counts[("pipe-anti-rust", "fire")] == 2
    assert counts[("tank-cleaning", "dom-tank")] == 2
    assert sum(counts.values()) == len(rows) == 183 + 24 + 104 + 24 + 24 + 104 + 730 + 4 + 2
    assert not any(task.late for task in rows)
    for task in rows:  # each task appeared when its occurrence opened (the timer woke just after)
        assert own_key(task)
        if own_key(task).startswith("duty-rotation:"):
            local = task.created_at.astimezone(SHANGHAI)
            assert (local.hour, local.minute) == (8, 0)
            assert local.date().isoformat() == own_key(task).rsplit("@", 1)[1]
    [first_winter] = [t for t in rows if own_key(t) == "pipe-anti-rust:dom@2026-01-31"]
    assert first_winter.created_at == utc_from_epoch(NEW_YEAR)  # at the first catch-up, not late
    [rust] = [t for t in rows if own_key(t) == "pipe-anti-rust:dom@2027-01-31"]
    rust_opened = rust.created_at.astimezone(SHANGHAI).replace(microsecond=0)
    assert rust_opened == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    assert rust.due_at is not None
    assert rust.due_at.astimezone(SHANGHAI) == datetime(2027, 1, 31, 17, tzinfo=SHANGHAI)
    assert rust.state == "raised"
    [sweep] = [t for t in rows if own_key(t) == "weekly-sweep:dom@2026-01-05"]
    assert sweep.kind == "plan"
    assert sweep.priority == "low"
    assert sweep.created_at.astimezone(SHANGHAI).replace(microsecond=0) == datetime(2026, 1, 5, 8,
                                                                                     tzinfo=SHANGHAI)


async def test_a_three_day_downtime_creates_each_missed_occurrence_once_marked_late(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(NEW_YEAR)
    first = _scheduler(None, sessions, clock)
    runner = asyncio.create_task(first.run())
    await advance_days(clock, 2, step=3600)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    before = {own_key(t): t for t in plan_tasks(sessions)}
    assert before
    assert not any(t.late for t in before.values())

    await clock.advance(3 * 86_400)  # nobody runs for three days
    down_from, down_to = utc_from_epoch(NEW_YEAR + 2 * 86_400), utc_from_epoch(clock.now())
    missed = {o.plan_key for o in site_occurrences(first.site, down_from, down_to, field="opens")}
    assert len(missed) > 10

    second = _scheduler(None, sessions, clock)  # a new process: nothing in memory
    created = await second.tick()
    assert {s.occurrence.plan_key for s in created} == missed
    assert all(s.late for s in created)
    after = {own_key(t): t for t in plan_tasks(sessions)}
    assert set(after) == set(before) | missed
    assert all(after[k].late for k in missed)
    assert not any(after[k].late for k in before)
    rotations = sorted(k for k in missed if k is not None and k.startswith("duty-rotation:"))
    assert rotations == ["duty-rotation:dom-duty@2026-01-03", "duty-rotation:dom-duty@2026-01-05"]

    assert await second.tick() == []  # again: nothing
    third = _scheduler(None, sessions, clock)  # and another restart: nothing either
    assert third.catch_up() == []
    assert len(plan_tasks(sessions)) == len(after)
    with sessions() as session:  # the late mark is on the audit trail
        marks = session.scalars(select(AuditLog).where(AuditLog.action == "scheduled")).all()
    assert {m.entity_id for m in marks if (m.after or {}).get("late")} == {str(after[k].id) for k in missed}


async def test_a_fresh_database_does_not_invent_work_from_before_the_first_start(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 10, 12))
    scheduler = _scheduler(None, sessions, clock)
    # Only the anti-rust windows, open since 1 December: work that cannot be missed, and not late (nothing
    # was missed before the site existed). Rounds, sweeps and weekly tests that opened earlier are not.
    first = scheduler.catch_up()
    assert sorted(s.occurrence.plan_key for s in first) == ["pipe-anti-rust:dom@2026-01-31",
                                                            "pipe-anti-rust:fire@2026-01-31"]
    assert not any(s.late for s in first)
    await clock.advance(5 * 3600)  # 17:00: nothing opens between 12:00 and 17:00 on a Saturday
    created = scheduler.catch_up()
    assert created == []
    await clock.advance(15 * 3600)  # 08:00 on the 11th: the rounds and a rotation day
    keys = sorted(s.occurrence.plan_key for s in scheduler.catch_up())
    assert keys == ["daily-round:dom@2026-01-11", "daily-round:fire@2026-01-11",
                    "duty-rotation:dom-duty@2026-01-11"]
    assert len(plan_tasks(sessions, "pipe-anti-rust:")) == 2


async def test_a_plan_added_to_the_site_file_starts_from_now_while_the_others_catch_up(
        sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(FIRST_ROUND)
    without = site_with(plans={"plans": [{"id": "weekly-sweep", "enabled": False}]})
    first = _scheduler(without, sessions, clock)
    await first.tick()
    first.close()
    await clock.advance(10 * 86_400)  # down for ten days, and the sweep plan is switched on meanwhile
    created = await _scheduler(site_with(), sessions, clock).tick()
    plans = Counter(s.occurrence.plan for s in created)
    assert plans["daily-round"] == 2 * 10  # both rooms, 2-11 January
    assert plans["weekly-sweep"] == 0  # the Monday sweep of the 5th is not invented after the fact
    missed = [s for s in created if s.occurrence.opens_at < utc_from_epoch(clock.now())]
    assert len(missed) == len(created) - 3  # today's two rounds and rotation are on time
    assert all(s.late for s in missed)
    assert not any(s.late for s in created if s not in missed)


@pytest.mark.parametrize(("start", "days"), [((2026, 3, 20), 20), ((2026, 10, 16), 20)])
async def test_berlin_rotations_happen_at_eight_local_across_dst_without_drift(
        sessions: sessionmaker[Session], start: tuple[int, int, int], days: int) -> None:
    site = site_with(timezone="Europe/Berlin", duty_select=False)
    clock = FakeClock(local_epoch(BERLIN, *start))
    scheduler = _scheduler(site, sessions, clock)
    runner = asyncio.create_task(scheduler.run())
    await advance_days(clock, days, step=6 * 3600)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    rows = plan_tasks(sessions, "duty-rotation:")
    assert len(rows) == 10
    local = [t.created_at.astimezone(BERLIN) for t in rows]
    assert {(t.hour, t.minute) for t in local} == {(8, 0)}
    assert all((b.date() - a.date()).days == 2 for a, b in itertools.pairwise(local))
    assert len({t.utcoffset() for t in local}) == 2  # both sides of the change are in the run
    assert not any(t.late for t in rows)


async def test_skipped_rescheduled_and_blacked_out_occurrences(sessions: sessionmaker[Session]) -> None:
    site = site_with(plans={"plans": [{
        "id": "weekly-sweep",
        "skip": [{"date": date(2026, 1, 12), "reason": "台风停工 typhoon"}],
        "reschedule": [{"date": date(2026, 1, 19), "to": datetime(2026, 1, 21, 10, 0),
                        "reason": "inspection"}],
        "blackout": [{"start": date(2026, 1, 24), "end": date(2026, 1, 27), "reason": "Spring Festival"}]}]})
    clock = FakeClock(NEW_YEAR)
    scheduler = _scheduler(site, sessions, clock)
    runner = asyncio.create_task(scheduler.run())
    await advance_days(clock, 35)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    rows = {own_key(t): t for t in plan_tasks(sessions, "weekly-sweep:dom@")}
    keys = sorted(k for k in rows if k is not None)
    assert keys == [f"weekly-sweep:dom@2026-{day}" for day in ("01-05", "01-19", "01-26", "02-02")]
    moved = rows["weekly-sweep:dom@2026-01-19"]
    assert moved.due_at is not None
    assert moved.due_at.astimezone(SHANGHAI) == datetime(2026, 1, 21, 10, tzinfo=SHANGHAI)
    assert moved.created_at.astimezone(SHANGHAI).replace(microsecond=0) == datetime(2026, 1, 21, 1,
                                                                                     tzinfo=SHANGHAI)
    assert moved.description is not None
    assert "inspection" in moved.description
    postponed = rows["weekly-sweep:dom@2026-01-26"]
    assert postponed.due_at is not None
    assert postponed.due_at.astimezone(SHANGHAI) == datetime(2026, 1, 28, 17, tzinfo=SHANGHAI)
    assert postponed.description is not None
    assert "Spring Festival" in postponed.description
    assert not any(t.late for t in rows.values())


async def test_the_round_checklist_carries_types_ranges_and_sensors(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(FIRST_ROUND)
    scheduler = _scheduler(None, sessions, clock)
    await scheduler.tick()
    [task] = plan_tasks(sessions, "daily-round:dom@2026-01-01")
    assert task.kind == "inspection"
    items = {item["key"]: item for item in task.checklist}
    assert len(items) == 10
    assert {item["type"] for item in items.values()} == {"pass_fail", "number", "text", "photo"}
    gauge = items["pressure-gauge"]
    assert gauge["type"] == "number"
    assert gauge["unit"] == "MPa"
    assert gauge["expected"] == [0.25, 1.2]
    assert gauge["compare"] == ["dom-header-pressure"]
    assert "0.25-1.2 MPa" in gauge["en"]
    assert "0.25–1.2 MPa" in gauge["zh"]
    assert items["motor-temperature"]["compare"] == ["dom-p1-temp", "dom-p2-temp"]
    assert items["animal-guards"]["type"] == "photo"
    assert items["animal-guards"]["compare"] == []
    assert all(item["result"] is None for item in items.values())


async def test_run_hour_plans_follow_the_pumps_hours(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(NEW_YEAR)
    scheduler = _scheduler(None, sessions, clock)

    def hours(value: float) -> None:
        scheduler.on_readings([Reading("harbour-view/dom-p1-hours", clock.now(), value),
                               Reading("harbour-view/dom-p2-hours", clock.now(), 10.0)])

    hours(1900.0)
    await scheduler.tick()
    assert plan_tasks(sessions, "bearing-lubrication:") == []
    hours(1960.0)  # within the 50 h lead of 2000 h
    await scheduler.tick()
    hours(1990.0)
    await scheduler.tick()
    [task] = plan_tasks(sessions, "bearing-lubrication:")
    assert own_key(task) == "bearing-lubrication:dom-p1@2000h"
    assert task.asset == "dom-p1"
    assert task.room == "dom"
    assert task.due_at == utc_from_epoch(clock.now()) + timedelta(days=14)
    hours(3955.0)
    await scheduler.tick()
    assert [own_key(t) for t in plan_tasks(sessions, "bearing-lubrication:")] == [
        "bearing-lubrication:dom-p1@2000h", "bearing-lubrication:dom-p1@4000h"]
    again = _scheduler(None, sessions, clock)  # a restarted scheduler sees the same hours: no duplicate
    again.on_readings([Reading("harbour-view/dom-p1-hours", clock.now(), 3960.0)])
    await again.tick()
    assert len(plan_tasks(sessions, "bearing-lubrication:")) == 2


def test_two_schedulers_on_separate_engines_never_duplicate(db_url: str) -> None:
    """Both replicas catch up at the same instants from their own threads, leader lock or not."""
    site = load_site(EXAMPLE)
    engines = [make_engine(db_url) for _ in range(2)]
    clocks = [FakeClock(NEW_YEAR), FakeClock(NEW_YEAR)]
    schedulers = [_scheduler(site, session_factory(e), c) for e, c in zip(engines, clocks, strict=True)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    created: list[int] = [0, 0]

    def replica(i: int) -> None:
        try:
            for _ in range(10 * 24):
                asyncio.run(clocks[i].advance(3600))
                barrier.wait(timeout=30)
                created[i] += len(schedulers[i].catch_up())
        except BaseException as err:
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        sessions = session_factory(engines[0])
        rows = plan_tasks(sessions)
        keys = [own_key(t) for t in rows]
        assert len(keys) == len(set(keys))
        start, end = utc_from_epoch(NEW_YEAR), utc_from_epoch(NEW_YEAR + 10 * 86_400)
        expected = {o.plan_key for o in site_occurrences(site, start, end, field="opens")
                    if o.opens_at > start}
        expected |= {"pipe-anti-rust:dom@2026-01-31", "pipe-anti-rust:fire@2026-01-31"}  # open at the start
        assert set(keys) == expected
        assert sum(created) >= len(expected)  # each created or found it; the database kept one
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_only_the_leader_schedules_and_a_successor_takes_over(db_url: str) -> None:
    site = load_site(EXAMPLE)
    engines = [make_engine(db_url) for _ in range(2)]
    clock = FakeClock(FIRST_ROUND)
    try:
        a, b = (_scheduler(site, session_factory(e), clock, engine=e) for e in engines)
        assert await a.tick() != []  # the 08:00 rotation and rounds of 1 January
        await clock.advance(86_400)
        assert await b.tick() == []  # a leads: b does nothing
        assert plan_tasks(session_factory(engines[0]), "daily-round:dom@2026-01-02") == []
        assert await a.tick() != []
        a.close()  # a stops (or dies: its connection's lock goes with it)
        await clock.advance(86_400)
        created = await b.tick()
        assert {s.occurrence.plan_key for s in created} >= {"daily-round:dom@2026-01-03"}
        assert b.lock.held
        assert not a.lock.acquire()  # and now a is the one that waits
    finally:
        for s in (locals().get("a"), locals().get("b")):
            if isinstance(s, InspectionScheduler):
                s.close()
        for engine in engines:
            engine.dispose()


@pytest.mark.e2e  # Waits for the wall clock (3 s a backend).
async def test_the_apscheduler_timer_on_the_wall_clock_creates_the_task_when_it_opens(
        sessions: sessionmaker[Session]) -> None:
    soon = datetime.now(SHANGHAI) + timedelta(seconds=3)
    site = site_with(plans={"regulation": False, "plans": [{
        "id": "check", "name": {"zh": "检查", "en": "Check"}, "scope": "site",
        "schedule": {"type": "every_days", "days": 1,
                     "at": soon.time().replace(microsecond=0).isoformat()}}]})
    clock = SystemClock()
    scheduler = InspectionScheduler(site, sessions, TaskService(sessions, clock), clock, timer="apscheduler",
                                    tick=1.0)
    runner = asyncio.create_task(scheduler.run())
    try:
        for _ in range(200):
            rows = plan_tasks(sessions, "check:")
            if rows:
                break
            await asyncio.sleep(0.05)
        [task] = rows
        assert own_key(task) == f"check:t@{soon.date().isoformat()}"
        assert not task.late
        assert abs((task.created_at - soon.replace(microsecond=0)).total_seconds()) < 2.5
        assert JOB_TABLE in inspect(scheduler.engine).get_table_names()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert not scheduler.lock.held or scheduler.engine.dialect.name == "sqlite"


def test_sleep_wakes_just_after_the_next_opening(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(local_epoch(SHANGHAI, 2026, 1, 1, 7, 0))
    scheduler = _scheduler(None, sessions, clock)
    assert scheduler.sleep_seconds() == pytest.approx(3600, abs=0.01)  # 08:00: rotation and rounds
    assert scheduler.next_wakeup(utc_from_epoch(clock.now())) == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert time(8) == datetime(2026, 1, 1, 0, tzinfo=UTC).astimezone(SHANGHAI).time()
