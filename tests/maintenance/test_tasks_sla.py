"""SLA as response and resolution (both databases): each step of each clock once per cycle; site limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.models import Task
from maintenance.notify.notices import NoticeFormatter
from maintenance.service import MaintenanceService
from maintenance.task_flow import Escalation, EscalationLevel, SlaPolicy
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, SlaClock, TaskKind
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import SiteFileError, load_site, parse_site
from pumpwatch.sla_config import SlaSettings
from tests.support.state import People, advance, clock_time

TITLE = Text(zh="出水压力低", en="Low outlet pressure")
MINIMAL = Path(__file__).resolve().parents[2] / "examples" / "minimal.yaml"
R, L = SlaClock.RESPONSE, SlaClock.RESOLUTION
NONE, REMIND, SUP, DIR = (EscalationLevel.NONE, EscalationLevel.REMINDER, EscalationLevel.SUPERVISOR,
                          EscalationLevel.DIRECTOR)


def _steps(tasks: TaskService) -> list[tuple[SlaClock, EscalationLevel]]:
    return [(e.clock, e.level) for e in tasks.escalate()]


def _at_minutes(tasks: TaskService, clock: FakeClock, start: float,
                minutes: list[float]) -> dict[float, list[tuple[SlaClock, EscalationLevel]]]:
    """Run the SLA check at each minute mark (from `start`), returning what each run escalated."""
    seen = {}
    for minute in minutes:
        advance(clock, start + minute * 60 - clock.now())
        seen[minute] = _steps(tasks)
    return seen


def test_a_critical_task_started_at_minute_5_is_never_escalated_for_response(
        tasks: TaskService, people: People, clock: FakeClock) -> None:
    start = clock.now()
    task = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    advance(clock, 5 * 60)
    started = tasks.start(task.id, people.technician)
    assert started.responded_at == clock_time(clock)
    seen = _at_minutes(tasks, clock, start, [24, 30, 61, 120, 191.99, 192, 240, 480, 1000])
    assert all(clock is not R for steps in seen.values() for clock, _ in steps)  # never for response
    # It is still being worked, so the 4 h resolution limit runs: reminded at 80 %, then up the chain.
    assert seen == {24: [], 30: [], 61: [], 120: [], 191.99: [], 192: [(L, REMIND)], 240: [(L, SUP)],
                    480: [(L, DIR)], 1000: []}
    row = tasks.get(task.id)
    assert (row.response_escalation, row.resolution_escalation) == (0, 3)


def test_response_steps_each_exactly_once_when_nobody_responds(tasks: TaskService, people: People,
                                                               clock: FakeClock,
                                                               sessions: sessionmaker[Session]) -> None:
    start = clock.now()
    task = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    minutes = [float(m) for m in range(0, 300, 1)]
    seen = _at_minutes(tasks, clock, start, minutes)
    response = [(m, level) for m, steps in seen.items() for clock, level in steps if clock is R]
    assert response == [(24.0, REMIND), (30.0, SUP), (60.0, DIR)]
    resolution = [(m, level) for m, steps in seen.items() for clock, level in steps if clock is L]
    assert resolution == [(192.0, REMIND), (240.0, SUP)]  # 4 h limit: the director hears at 8 h
    with sessions() as session:
        escalated = [r.after for r in audit.history(session, "task", task.id) if r.action == "escalated"]
    assert [(a["clock"], a.get("response_escalation", a.get("resolution_escalation"))) for a in escalated
            if a is not None] == [("response", 1), ("response", 2), ("response", 3), ("resolution", 1),
                                  ("resolution", 2)]
    # Taking it on late stops the response clock; it never went further than it had.
    tasks.assign(task.id, people.supervisor, [people.technician.id])
    advance(clock, 10 * 3600)
    assert _steps(tasks) == [(L, DIR)]


def test_resolution_steps_each_once_while_the_work_drags_on(tasks: TaskService, people: People,
                                                            clock: FakeClock) -> None:
    start = clock.now()
    task = tasks.create_task(people.operator, TITLE, priority=Priority.HIGH)
    tasks.assign(task.id, people.supervisor, [people.technician.id])  # responded at once
    tasks.start(task.id, people.technician)
    seen = _at_minutes(tasks, clock, start, [float(m) for m in range(0, 3 * 24 * 60, 30)])
    steps = [(m, s) for m, found in seen.items() for s in found]
    # 24 h limit: the reminder is due at 19.2 h (the first check after it runs at 19.5 h), the supervisor
    # hears at 24 h, the director at 48 h.
    assert steps == [(1170.0, (L, REMIND)), (1440.0, (L, SUP)), (2880.0, (L, DIR))]
    tasks.complete(task.id, people.technician, "air in the line", "bled the pump")
    advance(clock, 30 * 86400)
    assert _steps(tasks) == []  # done: both clocks have stopped
    assert tasks.get(task.id).resolution_escalation == 3


def test_a_plan_task_due_in_2_h_of_normal_priority_is_not_reminded_at_creation(
        tasks: TaskService, clock: FakeClock) -> None:
    due = clock_time(clock) + timedelta(hours=2)
    task = tasks.create_from_plan("daily-round/dom@2026-01-01", TITLE, TaskKind.INSPECTION, Priority.NORMAL,
                                  due_at=due)
    assert (task.response_due_at, task.resolution_due_at, task.due_at) == (due, due, due)
    assert _steps(tasks) == []
    advance(clock, 95 * 60)
    assert _steps(tasks) == []
    advance(clock, 60)  # 96 min: 80 % of its own 2 h
    assert _steps(tasks) == [(R, REMIND), (L, REMIND)]
    advance(clock, 24 * 60)
    assert _steps(tasks) == [(R, SUP), (L, SUP)]


def test_a_plan_task_due_in_days_is_taken_on_within_a_day_and_done_by_its_date(
        tasks: TaskService, people: People, clock: FakeClock) -> None:
    due = clock_time(clock) + timedelta(days=5)
    task = tasks.create_from_plan("contactor-check/dom-p1@2026-01", TITLE, priority=Priority.NORMAL,
                                  due_at=due)
    assert (task.response_due_at, task.due_at) == (clock_time(clock) + timedelta(hours=24), due)
    tasks.assign(task.id, people.supervisor, [people.technician.id])
    advance(clock, 3 * 86400)
    assert _steps(tasks) == []
    advance(clock, 86400)  # 4 days of 5: 80 %
    assert _steps(tasks) == [(L, REMIND)]


def test_each_step_once_per_cycle_and_a_new_cycle_runs_fresh_clocks(tasks: TaskService, people: People,
                                                                    clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    advance(clock, 3600)
    assert _steps(tasks) == [(R, REMIND), (R, SUP), (R, DIR)]
    tasks.start(task.id, people.technician)
    tasks.complete(task.id, people.technician, "cause", "action")
    advance(clock, 60)
    back = tasks.send_back(task.id, people.supervisor, "redo the seal")
    assert (back.cycle, back.response_escalation, back.resolution_escalation, back.escalation_level) == (
        2, 0, 0, 0)
    assert back.response_due_at == clock_time(clock) + timedelta(minutes=30)
    advance(clock, 24 * 60)
    escalated = tasks.escalate()
    assert [(e.clock, e.level, e.cycle) for e in escalated] == [(R, REMIND, 2)]  # again, for the new cycle
    first, second = tasks.cycles(task.id)
    assert (first.response_escalation, second.response_escalation) == (3, 1)


def test_raising_the_priority_tightens_both_deadlines_but_never_extends_them(
        tasks: TaskService, people: People, clock: FakeClock, sessions: sessionmaker[Session]) -> None:
    task = tasks.create_task(people.operator, TITLE, priority=Priority.NORMAL)
    created = clock_time(clock)
    advance(clock, 600)
    with sessions.begin() as session:
        row = session.get(Task, task.id)
        assert row is not None
        assert tasks.raise_priority(session, row, Severity.CRITICAL, clock_time(clock))
    raised = tasks.get(task.id)
    assert raised.response_due_at == clock_time(clock) + timedelta(minutes=30)
    assert raised.due_at == raised.resolution_due_at == clock_time(clock) + timedelta(hours=4)
    assert raised.cycles[0].resolution_due_at == raised.resolution_due_at
    assert created + timedelta(hours=24) > raised.response_due_at


def test_the_notice_says_which_clock() -> None:
    formatter = NoticeFormatter("Asia/Shanghai", "示范小区")
    due = clock_time(FakeClock()) + timedelta(minutes=30)
    step = Escalation(task_id=7, level=SUP, priority=Priority.CRITICAL, due_at=due, title=TITLE, room="dom",
                      asset="dom-p1", assignees=(), clock=R)
    notice = formatter.escalation(step)
    assert "响应" in notice.headline
    assert "response" in notice.headline
    assert "08:30" in notice.text  # the deadline in the site's zone
    assert (notice.data["clock"], notice.data["level"], notice.data["notify"]) == (
        "response", 2, "supervisor")
    resolution = formatter.escalation(Escalation(task_id=7, level=REMIND, priority=Priority.CRITICAL,
                                                 due_at=due, title=TITLE, room=None, asset=None,
                                                 assignees=(3,), clock=L))
    assert "完成" in resolution.headline
    assert "resolution" in resolution.headline
    assert resolution.data["clock"] == "resolution"


# -- per site ---------------------------------------------------------------------------------------------
def _site_text(sla: object) -> str:
    data = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))
    data["sla"] = sla
    return yaml.safe_dump(data, allow_unicode=True)


def test_a_site_files_sla_section_is_applied_to_its_task_service(engine: Engine, clock: FakeClock,
                                                                 tmp_path: Path, people: People) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(_site_text({"reminder_at": 0.5, "critical": {"response": "15min"},
                                "normal": {"response": "8h", "resolution": "2d"}}), encoding="utf-8")
    site = load_site(path)
    assert site.sla.response("critical") == timedelta(minutes=15)
    assert site.sla.resolution("critical") == timedelta(hours=4)  # not set: the default
    state = MaintenanceService(site, Settings(collector=CollectorSettings(state_dir=tmp_path)), clock, engine)
    tasks = state.tasks
    assert tasks.sla == SlaPolicy.from_settings(site.sla)
    critical = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    normal = tasks.create_task(people.operator, TITLE, priority=Priority.NORMAL)
    now = clock_time(clock)
    assert critical.response_due_at == now + timedelta(minutes=15)
    assert (normal.response_due_at, normal.due_at) == (now + timedelta(hours=8), now + timedelta(days=2))
    advance(clock, 7.5 * 60)  # half of 15 min: the site's reminder share
    assert [(e.task_id, e.clock, e.level) for e in tasks.escalate()] == [(critical.id, R, REMIND)]
    assert state.reports.sla.window("critical") == timedelta(minutes=15)


def test_a_site_without_an_sla_section_gets_the_defaults() -> None:
    site = load_site(MINIMAL)
    assert SlaPolicy.from_settings(site.sla) == SlaPolicy()
    assert site.sla == SlaSettings()


@pytest.mark.parametrize(("sla", "message"), [
    ({"critical": {"response": 30}}, "has no unit"),
    ({"critical": {"response": "half an hour"}}, "is not a duration"),
    ({"critical": {"response": "0min"}}, "longer than zero"),
    ({"low": {"resolution": "400d"}}, "at most 366 days"),
    ({"critical": {"response": "5h"}}, "response limit (5h) is longer than the resolution limit (4h)"),
    ({"high": {"response": "10min"}}, "critical response (30min) is longer than high response (10min)"),
    ({"reminder_at": 1.2}, "less than 1"),
    ({"urgent": {"response": "1h"}}, "sla.urgent: unknown field"),
    ({"normal": {"respond": "1h"}}, "sla.normal.respond: unknown field"),
])
def test_a_bad_sla_section_is_refused_with_a_readable_message(sla: object, message: str) -> None:
    with pytest.raises(SiteFileError) as err:
        parse_site(_site_text(sla), "site.yaml")
    text = str(err.value)
    assert message in text
    assert "sla" in text  # the message names where
