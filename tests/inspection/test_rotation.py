"""Duty rotation: alternation, pumps passed over, commands and their verification from readings."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from inspection.rotation import ALARM_TYPE, Outcome
from inspection.scheduler import InspectionScheduler
from maintenance.alarms import AlarmService
from maintenance.task_flow import CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from tests.support.sites import SHANGHAI, local_epoch, own_key, plan_tasks, site_with
from tests.support.state import People

ROTATION_DAY = local_epoch(SHANGHAI, 2026, 1, 1, 8)
TWO_DAYS = 2 * 86_400.0


class Plc:
    """Stands in for ModbusCollector.write: records commands, or refuses them."""

    def __init__(self, refuse: bool = False) -> None:
        self.writes: list[tuple[str, float]] = []
        self.refuse = refuse

    async def __call__(self, sensor: str, value: float) -> None:
        if self.refuse:
            raise ConnectionError("PLC offline")
        self.writes.append((sensor, value))


class Setup:
    """A scheduler on a rotation day, its fake PLC and the alarm events it raised."""

    def __init__(self, site: Site, sessions: sessionmaker[Session], plc: Plc | None = None) -> None:
        self.clock = FakeClock(ROTATION_DAY)
        self.plc = plc
        self.events: list[AlarmEvent] = []
        self.sessions = sessions
        self.tasks = TaskService(sessions, self.clock)
        self.scheduler = InspectionScheduler(site, sessions, self.tasks, self.clock, command=plc,
                                             offload=False, listeners=[self.events.append])
        self.rotation = self.scheduler.rotation

    def feed(self, after: float, **values: float) -> None:
        """Readings `after` seconds from now; keyword names use _ for - (p2_current -> p2-current)."""
        ts = self.clock.now() + after
        readings = [Reading(f"t/{name.replace('_', '-')}", ts, value) for name, value in values.items()]
        self.scheduler.on_readings(readings)

    def outcomes(self) -> list[tuple[str | None, Outcome]]:
        return [(r.pump, r.outcome) for r in self.rotation.results]

    def rotation_tasks(self) -> list[Any]:
        return [t for t in plan_tasks(self.sessions, "duty-rotation:") if t.kind != "corrective"]


async def test_rotation_alternates_and_each_swap_is_verified(sessions: sessionmaker[Session]) -> None:
    plc = Plc()
    s = Setup(site_with(pumps=2), sessions, plc)
    s.feed(-5, duty_select=1)  # the PLC reports pump 1 on duty
    for expected in (2.0, 1.0, 2.0):
        await s.scheduler.tick()
        pump = f"p{int(expected)}"
        assert plc.writes[-1] == ("duty-select", expected)
        assert s.outcomes()[-1] == (pump, Outcome.VERIFYING)
        s.feed(1, duty_select=expected, header_pressure=0.27, **{f"{pump}_current": 8.5})
        s.feed(8, header_pressure=0.36)
        assert s.outcomes()[-1] == (pump, Outcome.VERIFIED)
        await s.clock.advance(TWO_DAYS)
    assert [t.asset for t in s.rotation_tasks()] == ["p2", "p1", "p2"]
    assert [own_key(t) for t in s.rotation_tasks()] == [
        "duty-rotation:grp@2026-01-01", "duty-rotation:grp@2026-01-03", "duty-rotation:grp@2026-01-05"]
    first = s.rotation_tasks()[0]
    assert "Pump p1 -> Pump p2" in first.title_en
    assert "p1号泵 → p2号泵" in first.title_zh
    assert s.events == []


async def test_a_pump_under_maintenance_or_in_alarm_is_passed_over(
        sessions: sessionmaker[Session], people: People, alarms: AlarmService) -> None:
    plc = Plc()
    s = Setup(site_with(pumps=3), sessions, plc)
    s.feed(-5, duty_select=1)
    repair = s.tasks.create_task(people.supervisor, Text(zh="换轴承", en="Replace bearing"),
                                 kind=TaskKind.CORRECTIVE, asset="p2", room="dom", estate="t")
    s.tasks.start(repair.id, people.technician)  # p2 is being worked on
    await s.scheduler.tick()
    assert plc.writes == [("duty-select", 3.0)]
    [task] = s.rotation_tasks()
    assert task.asset == "p3"
    assert task.description is not None
    assert "p2: under maintenance" in task.description

    alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("p1-current", "no_data", "t"), Severity.MINOR,
                            s.clock.now(), "dom", Text(zh="无数据", en="no data")))
    assert s.rotation.unavailable("grp") == {"p2": "under maintenance", "p1": "active alarm"}
    s.feed(1, duty_select=3.0, p3_current=9.0, header_pressure=0.4)
    await s.clock.advance(TWO_DAYS)
    await s.scheduler.tick()  # p3 is duty, p1 in alarm, p2 in maintenance: nobody to take over
    assert s.outcomes()[-1] == (None, Outcome.NO_STANDBY)
    assert plc.writes == [("duty-select", 3.0)]
    second = s.rotation_tasks()[-1]
    assert second.asset == "p3"
    assert "no standby" in second.title_en


async def test_a_duty_pump_that_does_not_start_fails_the_rotation(sessions: sessionmaker[Session]) -> None:
    plc = Plc()
    s = Setup(site_with(pumps=2), sessions, plc)
    s.feed(-5, duty_select=1)
    await s.scheduler.tick()
    s.feed(1, duty_select=2, header_pressure=0.42, p2_current=0.0)
    s.feed(60, header_pressure=0.40, p2_current=0.0)  # no demand yet: no current is fine
    assert s.outcomes()[-1] == ("p2", Outcome.VERIFYING)
    s.feed(61, header_pressure=0.28, p2_current=0.0)  # demand: below the 0.30 MPa start pressure
    s.feed(70, header_pressure=0.25, p2_current=0.1)
    assert s.outcomes()[-1] == ("p2", Outcome.VERIFYING)
    s.feed(77, header_pressure=0.22, p2_current=0.0)  # 16 s demanded, still no current
    result = s.rotation.results[-1]
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "no current" in result.reason.en
    [event] = s.events
    assert event.action is AlarmAction.RAISED
    assert event.key == AlarmKey("grp", ALARM_TYPE, "t")
    assert event.room == "dom"
    assert "p2" in event.message.en
    assert "主备泵轮换失败" in event.message.zh
    [failed] = [t for t in plan_tasks(sessions, "duty-rotation:") if t.kind == "corrective"]
    assert own_key(failed) == "duty-rotation:grp@2026-01-01:failed"
    assert (failed.asset, failed.priority, failed.state) == ("p2", "high", "raised")

    s.feed(80, header_pressure=0.36, p2_current=9.0)  # a late start no longer changes the verdict
    assert s.outcomes()[-1] == ("p2", Outcome.FAILED)
    assert s.rotation.unavailable("grp") == {"p2": "failed its last rotation"}
    await s.clock.advance(TWO_DAYS)
    await s.scheduler.tick()  # the PLC reports p2 (which failed) as duty: back to p1
    assert s.outcomes()[-1] == ("p1", Outcome.VERIFYING)
    assert plc.writes == [("duty-select", 2.0), ("duty-select", 1.0)]


async def test_after_the_failed_pump_is_fixed_a_good_rotation_clears_the_alarm(
        sessions: sessionmaker[Session], people: People) -> None:
    plc = Plc()
    s = Setup(site_with(pumps=2), sessions, plc)
    s.feed(-5, duty_select=1)
    await s.scheduler.tick()
    await s.clock.advance(31 * 60)
    await s.scheduler.tick()  # nothing seen within the 30 minutes
    result = s.rotation.results[-1]
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "within 30 min" in result.reason.en
    [failed] = [t for t in plan_tasks(sessions, "duty-rotation:") if t.kind == "corrective"]
    s.tasks.cancel(failed.id, people.supervisor, "contactor replaced, tested by hand")
    s.feed(1, duty_select=1)
    await s.clock.advance(TWO_DAYS - 31 * 60)
    await s.scheduler.tick()
    assert plc.writes == [("duty-select", 2.0), ("duty-select", 2.0)]
    s.feed(1, duty_select=2, p2_current=8.0, header_pressure=0.33)
    assert s.outcomes()[-1] == ("p2", Outcome.VERIFIED)
    assert [e.action for e in s.events] == [AlarmAction.RAISED, AlarmAction.CLEARED]


async def test_a_plc_that_keeps_the_old_duty_pump_fails_the_rotation(sessions: sessionmaker[Session]) -> None:
    s = Setup(site_with(pumps=2), sessions, Plc())
    s.feed(-5, duty_select=1)
    await s.scheduler.tick()
    s.feed(1, duty_select=1)
    s.feed(10, duty_select=1)
    assert s.outcomes()[-1] == ("p2", Outcome.VERIFYING)
    s.feed(17, duty_select=1)
    result = s.rotation.results[-1]
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "still reports p1" in result.reason.en


async def test_a_refused_command_is_a_failed_rotation(sessions: sessionmaker[Session]) -> None:
    s = Setup(site_with(pumps=2), sessions, Plc(refuse=True))
    s.feed(-5, duty_select=1)
    created = await s.scheduler.tick()
    assert any(c.occurrence.plan == "duty-rotation" for c in created)
    result = s.rotation.results[-1]
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "PLC offline" in result.reason.en
    assert [e.key.alarm_type for e in s.events] == [ALARM_TYPE]


async def test_without_a_duty_select_point_the_technician_swaps_and_readings_confirm(
        sessions: sessionmaker[Session], people: People) -> None:
    s = Setup(site_with(pumps=2, duty_select=False), sessions)
    await s.scheduler.tick()  # no one known on duty: pump 1 first
    [task] = s.rotation_tasks()
    assert task.asset == "p1"
    assert s.outcomes()[-1] == ("p1", Outcome.AWAITING_CONFIRMATION)
    assert "control cabinet" in (task.description or "")
    s.feed(1, p1_current=8.0, header_pressure=0.4)  # running before the swap is reported: not yet
    assert s.outcomes()[-1] == ("p1", Outcome.AWAITING_CONFIRMATION)

    s.tasks.start(task.id, people.technician)
    for item in task.checklist:
        s.tasks.record_check(task.id, people.technician, item["key"], CheckResult.OK)
    s.tasks.complete(task.id, people.technician, "scheduled rotation", "switched pump 1 to duty")
    await s.clock.advance(60)
    await s.scheduler.tick()
    assert s.outcomes()[-1] == ("p1", Outcome.VERIFYING)
    s.feed(1, p1_current=8.0, header_pressure=0.29)
    s.feed(5, header_pressure=0.35)
    assert s.outcomes()[-1] == ("p1", Outcome.VERIFIED)

    await s.clock.advance(TWO_DAYS - 60)
    await s.scheduler.tick()
    assert s.rotation_tasks()[-1].asset == "p2"  # the last rotation's pump is duty: alternate


async def test_fewest_run_hours_picks_the_least_used_free_pump(sessions: sessionmaker[Session]) -> None:
    plc = Plc()
    site = site_with(pumps=3, plans={"rotation": {"strategy": "fewest_hours"}})
    s = Setup(site, sessions, plc)
    s.feed(-5, duty_select=1, p1_hours=100.0, p2_hours=900.0, p3_hours=400.0)
    await s.scheduler.tick()
    assert plc.writes == [("duty-select", 3.0)]


@pytest.mark.parametrize("strategy", ["alternate"])
async def test_unknown_duty_starts_with_the_first_pump(sessions: sessionmaker[Session],
                                                       strategy: str) -> None:
    plc = Plc()
    s = Setup(site_with(pumps=2, plans={"rotation": {"strategy": strategy}}), sessions, plc)
    await s.scheduler.tick()
    assert plc.writes == [("duty-select", 1.0)]
