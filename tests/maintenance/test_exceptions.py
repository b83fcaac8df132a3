"""Approved exceptions on SQLite and PostgreSQL: requested, approved by another supervisor, silencing
exactly one switch alarm, surviving a restart, and opening the task when they end."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from collector.rules.rulebook import Rulebook
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory
from maintenance.errors import Conflict, Forbidden, InvalidInput
from maintenance.exceptions import ExceptionService, switch_targets
from maintenance.models import AuditLog, Task
from maintenance.service import MaintenanceService
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskState
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, JsonWebhookSettings, NotifySettings, Settings
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site, parse_site
from tests.support.state import People, advance, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
P1 = AlarmKey("dom-p1", "switch_not_auto", HV)
P2 = AlarmKey("dom-p2", "switch_not_auto", HV)


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


@pytest.fixture
def exceptions(sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService,
               site: Site) -> ExceptionService:
    return ExceptionService(sessions, clock, tasks, site)


def switch_event(clock: FakeClock, key: AlarmKey, action: AlarmAction = AlarmAction.RAISED) -> AlarmEvent:
    return AlarmEvent(action, key, Severity.MINOR, clock.now(), "dom",
                      Text(zh=f"{key.asset} 转换开关未置于自动", en=f"{key.asset} switch not in AUTO"), 1.0,
                      f"{key.asset}-switch")


def approved(exceptions: ExceptionService, people: People, clock: FakeClock, hours: float = 8,
             sensor: str = "dom-p1-switch", starts_in: float = 0) -> int:
    start = clock_time(clock) + timedelta(seconds=starts_in)
    row = exceptions.request(people.technician, "pump 1 on MANUAL while its check valve is replaced",
                             start, start + timedelta(hours=hours), sensor=sensor)
    return exceptions.approve(row.id, people.supervisor).id


def task_of(sessions: sessionmaker[Session], alarm_id: int) -> Task | None:
    with sessions() as session:
        return session.scalar(select(Task).where(Task.alarm_id == alarm_id))


def actions(sessions: sessionmaker[Session], entity: str, entity_id: int) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog.action).where(
            AuditLog.entity == entity, AuditLog.entity_id == str(entity_id)).order_by(AuditLog.id)))


# --- which alarm an exception names --------------------------------------------------------------


def test_switch_targets_carry_the_keys_the_rulebook_gives_switch_alarms(site: Site) -> None:
    # A second switch on pump 1 gets its own alarm type in the rulebook; the exceptions name it the same way.
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "          - {id: dom-p1-switch, kind: switch_position, source: modbus,\n",
        "          - {id: dom-p1-switch, kind: switch_position, source: modbus,\n"
        "             name: {zh: 1号泵转换开关, en: Pump 1 selector switch}}\n"
        "          - {id: dom-p1-local, kind: switch_position, source: mqtt,\n", 1)
    for variant in (site, parse_site(text)):
        rulebook = {(r.key.asset, r.key.alarm_type, r.sensor) for r in Rulebook(variant).rules
                    if r.key.alarm_type.startswith("switch_not_auto")}
        ours = {(t.asset, t.alarm_type, t.sensor) for t in switch_targets(variant).values()}
        assert ours == rulebook
    assert ("dom-p1", "switch_not_auto:dom-p1-local", "dom-p1-local") in ours


def test_the_switch_is_named_by_sensor_or_by_its_pump(exceptions: ExceptionService, people: People,
                                                      clock: FakeClock) -> None:
    start = clock_time(clock)
    by_asset = exceptions.request(people.operator, "valve work", start, start + timedelta(hours=1),
                                  asset="dom-p2")
    assert (by_asset.asset, by_asset.alarm_type, by_asset.sensor, by_asset.room) == (
        "dom-p2", "switch_not_auto", "dom-p2-switch", "dom")
    cases = ((None, "dom-p1-temp", "not a switch"), ("dom-p2", "dom-p1-switch", "belongs"),
             ("dom-tank", None, "no switch"), (None, None, "name the switch"))
    for asset, sensor, match in cases:
        with pytest.raises(InvalidInput, match=match):
            exceptions.request(people.operator, "x", start, start + timedelta(hours=1), asset, sensor)


def test_bad_requests_are_refused(exceptions: ExceptionService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    cases = [("", now, now + timedelta(hours=1), "why"),
             ("valve", now, now, "end after"),
             ("valve", now, now + timedelta(days=32), "31 days"),
             ("valve", now - timedelta(hours=3), now - timedelta(hours=1), "over")]
    for reason, start, end, match in cases:
        with pytest.raises(InvalidInput, match=match):
            exceptions.request(people.technician, reason, start, end, sensor="dom-p1-switch")


# --- who decides -----------------------------------------------------------------------------------


def test_the_supervisor_does_not_approve_an_exception_they_asked_for(
        exceptions: ExceptionService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    start = clock_time(clock)
    row = exceptions.request(people.supervisor, "pump 1 on MANUAL for the valve", start,
                             start + timedelta(hours=4), sensor="dom-p1-switch")
    with pytest.raises(Forbidden, match="filed"):
        exceptions.approve(row.id, people.supervisor)
    decided = exceptions.approve(row.id, people.supervisor2)
    assert (decided.state, decided.decided_by) == ("approved", people.supervisor2.id)
    assert actions(sessions, "exception", row.id) == ["requested", "approved"]


def test_only_a_supervisor_approves_not_an_admin_nor_the_requesters_deputy(
        exceptions: ExceptionService, auth: AuthService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    end = now + timedelta(hours=4)
    row = exceptions.request(people.supervisor, "valve", now, end, sensor="dom-p1-switch")
    for someone in (people.admin, people.director, people.technician, people.operator):
        with pytest.raises(Forbidden, match="supervisor"):
            exceptions.approve(row.id, someone)
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, now,
                    now + timedelta(days=1), people.admin)
    with pytest.raises(Forbidden, match="deputy"):
        exceptions.approve(row.id, people.technician2)  # acting in the requester's own name
    mine = exceptions.request(people.technician2, "valve", now, end, sensor="dom-p2-switch")
    with pytest.raises(Forbidden, match="filed"):
        exceptions.approve(mine.id, people.technician2)
    # Deputising for a supervisor who did not ask is a supervisor's approval.
    other = exceptions.request(people.operator, "valve", now, end, sensor="fire-p1-switch")
    assert exceptions.approve(other.id, people.technician2).state == "approved"


def test_decisions_follow_the_state(exceptions: ExceptionService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    first = approved(exceptions, people, clock)
    with pytest.raises(Conflict):
        exceptions.approve(first, people.supervisor2)
    overlapping = exceptions.request(people.operator, "again", now + timedelta(hours=2),
                                     now + timedelta(hours=10), sensor="dom-p1-switch")
    with pytest.raises(Conflict, match="already covers"):
        exceptions.approve(overlapping.id, people.supervisor)
    refused = exceptions.reject(overlapping.id, people.supervisor, "one is enough")
    assert (refused.state, refused.decided_reason) == ("rejected", "one is enough")
    with pytest.raises(Forbidden):
        exceptions.revoke(first, people.operator, "not mine to end")
    assert exceptions.revoke(first, people.technician, "valve done early").state == "revoked"  # the requester


# --- silencing -------------------------------------------------------------------------------------


def test_an_approved_exception_silences_exactly_that_alarm(
        exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    exception_id = approved(exceptions, people, clock)
    silenced, change = alarms.apply_change(switch_event(clock, P1))
    assert silenced is not None
    assert change == "silenced"
    assert silenced.state == "active"
    assert task_of(sessions, silenced.id) is None
    # The same alarm type on the other pump is not covered: it opens its task.
    other, other_change = alarms.apply_change(switch_event(clock, P2))
    assert other is not None
    assert other_change == "raised"
    assert task_of(sessions, other.id) is not None
    # Another alarm of the silenced pump is not covered either.
    dry = alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", HV), Severity.MAJOR,
                                  clock.now(), "dom", Text(zh="干转", en="dry run")))
    assert dry is not None
    assert task_of(sessions, dry.id) is not None
    # The board shows the silence with the exception's id and end.
    shown = alarms.silences([silenced, other, dry])
    assert set(shown) == {silenced.id}
    assert shown[silenced.id].exception_id == exception_id
    assert shown[silenced.id].until == exceptions.get(exception_id).ends_at
    assert exceptions.get(exception_id).alarm_id == silenced.id
    assert actions(sessions, "alarm", silenced.id) == ["silenced"]
    # A repeated RAISED while silenced still opens nothing.
    again, _ = alarms.apply_change(switch_event(clock, P1))
    assert again is not None
    assert again.id == silenced.id
    assert task_of(sessions, silenced.id) is None


def test_an_exception_that_has_not_started_silences_nothing(
        exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    approved(exceptions, people, clock, starts_in=3600)
    alarm, change = alarms.apply_change(switch_event(clock, P1))
    assert alarm is not None
    assert change == "raised"
    assert task_of(sessions, alarm.id) is not None
    assert alarms.silences([alarm]) == {}


def test_the_exception_survives_a_restart(db_url: str, exceptions: ExceptionService, people: People,
                                          clock: FakeClock, site: Site) -> None:
    approved(exceptions, people, clock)
    # A new process: its own engine and services over the same database.
    engine = make_engine(db_url)
    try:
        sessions = session_factory(engine)
        tasks = TaskService(sessions, clock)
        restarted = AlarmService(sessions, clock, tasks)
        alarm, change = restarted.apply_change(switch_event(clock, P1))
        assert alarm is not None
        assert change == "silenced"
        assert task_of(sessions, alarm.id) is None
        advance(clock, 8 * 3600)
        ended = ExceptionService(sessions, clock, tasks, site).expire()
        assert [e.task_id is not None for e in ended] == [True]
    finally:
        engine.dispose()


def test_expiry_opens_the_task_of_the_alarm_still_active_once(
        exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session], tasks: TaskService, site: Site) -> None:
    exception_id = approved(exceptions, people, clock, hours=2)
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    advance(clock, 3600)
    assert exceptions.expire() == []  # not yet
    assert task_of(sessions, alarm.id) is None
    advance(clock, 3600)
    ended = exceptions.expire()
    assert [(e.exception_id, e.alarm.id if e.alarm else None) for e in ended] == [(exception_id, alarm.id)]
    task = task_of(sessions, alarm.id)
    assert task is not None
    assert task.state == TaskState.RAISED
    assert ended[0].task_id == task.id
    row = exceptions.get(exception_id)
    assert (row.state, row.task_id, row.ended_at) == ("expired", task.id, row.ends_at)
    # A second replica's check, and the next round: nothing more.
    assert ExceptionService(sessions, clock, tasks, site).expire() == []
    assert exceptions.expire() == []
    assert actions(sessions, "exception", exception_id) == ["requested", "approved", "holds_alarm", "expired"]
    assert alarms.silences([alarms.get(alarm.id)]) == {}
    # Now a repeat RAISED is an ordinary update of an alarm with its task.
    again, change = alarms.apply_change(switch_event(clock, P1))
    assert again is not None
    assert again.id == alarm.id
    assert change == "updated"


def test_concurrent_expiry_checks_open_one_task(
        engine: Engine, exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session], site: Site) -> None:
    approved(exceptions, people, clock, hours=1)
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    advance(clock, 3600)
    replicas = [ExceptionService(session_factory(engine), clock, TaskService(session_factory(engine), clock),
                                 site) for _ in range(4)]
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(replicas))

    def run(service: ExceptionService) -> None:
        try:
            barrier.wait()
            results.extend(e.exception_id for e in service.expire())
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task).where(Task.alarm_id == alarm.id)) == 1


def test_revoking_opens_the_task_at_once(exceptions: ExceptionService, alarms: AlarmService,
                                         people: People, clock: FakeClock,
                                         sessions: sessionmaker[Session]) -> None:
    exception_id = approved(exceptions, people, clock)
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    revoked = exceptions.revoke(exception_id, people.supervisor2, "the valve is back; put it in AUTO")
    assert (revoked.state, revoked.ended_by) == ("revoked", people.supervisor2.id)
    task = task_of(sessions, alarm.id)
    assert task is not None
    assert revoked.task_id == task.id
    assert exceptions.expire() == []


def test_an_alarm_cleared_during_the_exception_leaves_nothing_to_do(
        exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    approved(exceptions, people, clock, hours=1)
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    advance(clock, 600)
    alarms.apply(switch_event(clock, P1, AlarmAction.CLEARED))
    advance(clock, 3600)
    ended = exceptions.expire()
    assert [(e.alarm, e.task_id) for e in ended] == [(None, None)]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0


def test_a_following_exception_keeps_the_alarm_silenced(
        exceptions: ExceptionService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    first = approved(exceptions, people, clock, hours=1)
    second = approved(exceptions, people, clock, hours=2, starts_in=3600)
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    advance(clock, 3600)
    assert [e.exception_id for e in exceptions.expire()] == [first]
    assert task_of(sessions, alarm.id) is None
    assert exceptions.get(second).alarm_id == alarm.id
    assert alarms.silences([alarm])[alarm.id].exception_id == second
    advance(clock, 2 * 3600)
    assert [e.task_id is not None for e in exceptions.expire()] == [True]


def test_an_alarm_raised_before_the_exception_keeps_its_task_and_reopens_if_closed(
        exceptions: ExceptionService, alarms: AlarmService, tasks: TaskService, people: People,
        clock: FakeClock, sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(switch_event(clock, P1))
    assert alarm is not None
    task = task_of(sessions, alarm.id)
    assert task is not None
    exception_id = approved(exceptions, people, clock, hours=1)
    assert exceptions.get(exception_id).alarm_id == alarm.id
    assert alarms.silences([alarm])[alarm.id].exception_id == exception_id
    tasks.cancel(task.id, people.supervisor, "covered by the approved exception")
    advance(clock, 3600)
    exceptions.expire()
    reopened = task_of(sessions, alarm.id)
    assert reopened is not None
    assert reopened.id == task.id
    assert reopened.state == TaskState.RAISED


def test_lists_filter_by_state_and_asset(exceptions: ExceptionService, people: People,
                                         clock: FakeClock) -> None:
    first = approved(exceptions, people, clock)
    now = clock_time(clock)
    pending = exceptions.request(people.operator, "valve", now, now + timedelta(hours=1), asset="fire-p1")
    rows, total = exceptions.list_exceptions()
    assert ([r.id for r in rows], total) == ([pending.id, first], 2)
    assert [r.id for r in exceptions.list_exceptions(state="approved")[0]] == [first]
    assert [r.id for r in exceptions.list_exceptions(asset="fire-p1")[0]] == [pending.id]
    assert exceptions.list_exceptions(room="fire")[1] == 1
    with pytest.raises(InvalidInput):
        exceptions.list_exceptions(limit=0)


async def test_the_periodic_check_ends_the_exception_and_tells_the_alarm_once(
        tmp_path: Path, engine: Engine, site: Site, clock: FakeClock, people: People) -> None:
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path), notify=NotifySettings(
        min_severity="minor", channels=[JsonWebhookSettings(url=SecretStr("http://127.0.0.1:9/never"))]))
    state = MaintenanceService(site, settings, clock, engine)
    start = clock_time(clock)
    row = state.exceptions.request(people.technician, "valve", start, start + timedelta(hours=1),
                                   sensor="dom-p1-switch")
    state.exceptions.approve(row.id, people.supervisor)
    alarm, change = state.alarms.apply_change(switch_event(clock, P1))
    state.notifier.alarm_changed(change, alarm)  # what the intake does with every applied event
    assert change == "silenced"
    assert state.notifier.pending == 0  # a silenced alarm is not told
    await clock.advance(3600)
    await state.check_deadlines()
    await state.check_deadlines()
    told = [n.data for n in state.notifier.outboxes["json"].queue]
    assert alarm is not None
    assert [(d["kind"], d["id"]) for d in told] == [("alarm", alarm.id)]
    assert state.exceptions.get(row.id).state == "expired"
