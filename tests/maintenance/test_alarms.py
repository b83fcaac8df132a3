"""AlarmService on both databases: dedup, severity changes, clear, reopen window, acknowledge, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.alarms import AlarmFilter, AlarmService
from maintenance.errors import Forbidden, NotFound
from maintenance.models import Alarm, Task
from maintenance.tasks import TaskService
from maintenance.vocab import AlarmState, Priority, TaskState
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from tests.support.state import People, advance, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml

KEY = AlarmKey("pump-d1", "dry_run", HV)
MESSAGE = Text(zh="一号生活泵干转", en="Domestic pump 1 running dry")


def _event(clock: FakeClock, action: AlarmAction, severity: Severity = Severity.MAJOR,
           key: AlarmKey = KEY, value: float | None = 0.05, room: str = "room-a") -> AlarmEvent:
    return AlarmEvent(action=action, key=key, severity=severity, ts=clock.now(), room=room, message=MESSAGE,
                      value=value, sensor="pt-d-out")


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        return (session.scalar(select(func.count()).select_from(Alarm)) or 0,
                session.scalar(select(func.count()).select_from(Task)) or 0)


def _task_of(sessions: sessionmaker[Session], alarm_id: int) -> Task:
    with sessions() as session:
        task = session.scalar(select(Task).where(Task.alarm_id == alarm_id))
        assert task is not None
        return task


def _actions(sessions: sessionmaker[Session], entity: str, entity_id: int) -> list[str]:
    with sessions() as session:
        return [row.action for row in audit.history(session, entity, entity_id)]


@pytest.mark.parametrize(("severity", "priority", "due_in"), [
    (Severity.CRITICAL, Priority.CRITICAL, timedelta(minutes=30)),
    (Severity.MAJOR, Priority.HIGH, timedelta(hours=2)),
    (Severity.MINOR, Priority.NORMAL, timedelta(hours=24)),
    (Severity.WARNING, Priority.LOW, timedelta(hours=72))])
def test_a_raised_alarm_opens_one_task_with_its_priority(
        severity: Severity, priority: Priority, due_in: timedelta, alarms: AlarmService, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED, severity, value=0.05))
    assert alarm is not None
    assert (alarm.asset, alarm.alarm_type) == ("pump-d1", "dry_run")
    assert (alarm.room, alarm.sensor) == ("room-a", "pt-d-out")
    assert (alarm.state, alarm.severity, alarm.peak_severity) == ("active", severity.value, severity.value)
    assert (alarm.started_at, alarm.ended_at, alarm.repeat_count) == (clock_time(clock), None, 0)
    assert (alarm.peak_value, alarm.last_value, alarm.message_zh) == (0.05, 0.05, MESSAGE.zh)
    task = _task_of(sessions, alarm.id)
    assert (task.kind, task.state, task.priority) == ("alarm", "raised", priority.value)
    assert (task.title_zh, task.title_en) == (MESSAGE.zh, MESSAGE.en)
    assert (task.asset, task.room, task.alarm_id) == ("pump-d1", "room-a", alarm.id)
    assert task.response_due_at == clock_time(clock) + due_in
    assert alarms.task_for(alarm.id) is not None
    assert _actions(sessions, "alarm", alarm.id) == ["raised"]
    assert _actions(sessions, "task", task.id) == ["created"]


def test_raising_twice_keeps_one_alarm_and_one_task(alarms: AlarmService, clock: FakeClock,
                                                     sessions: sessionmaker[Session]) -> None:
    first = alarms.apply(_event(clock, AlarmAction.RAISED, value=0.05))
    advance(clock, 5)
    second = alarms.apply(_event(clock, AlarmAction.RAISED, value=0.04))
    assert first is not None
    assert second is not None
    assert second.id == first.id
    assert second.last_value == 0.04
    assert second.started_at == first.started_at
    assert _counts(sessions) == (1, 1)
    assert _actions(sessions, "alarm", first.id) == ["raised", "updated"]


def test_other_keys_get_their_own_alarm(alarms: AlarmService, clock: FakeClock,
                                        sessions: sessionmaker[Session]) -> None:
    alarms.apply(_event(clock, AlarmAction.RAISED))
    alarms.apply(_event(clock, AlarmAction.RAISED, key=AlarmKey("pump-d1", "overheat", HV)))
    alarms.apply(_event(clock, AlarmAction.RAISED, key=AlarmKey("pump-d2", "dry_run", HV)))
    assert _counts(sessions) == (3, 3)


def test_escalation_raises_severity_peak_and_task_priority(alarms: AlarmService, clock: FakeClock,
                                                           sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MINOR))
    assert alarm is not None
    task = _task_of(sessions, alarm.id)
    assert (task.priority, task.response_due_at) == ("normal", clock_time(clock) + timedelta(hours=24))
    advance(clock, 600)
    escalated = alarms.apply(_event(clock, AlarmAction.ESCALATED, Severity.CRITICAL, value=0.01))
    assert escalated is not None
    assert (escalated.severity, escalated.peak_severity) == ("critical", "critical")
    assert escalated.last_value == 0.01
    task = _task_of(sessions, alarm.id)
    assert (task.priority, task.response_due_at) == ("critical", clock_time(clock) + timedelta(minutes=30))
    advance(clock, 600)
    calmer = alarms.apply(_event(clock, AlarmAction.DEESCALATED, Severity.WARNING))
    assert calmer is not None
    assert (calmer.severity, calmer.peak_severity) == ("warning", "critical")
    assert _task_of(sessions, alarm.id).priority == "critical"  # never lowered by the alarm calming down
    assert _actions(sessions, "alarm", alarm.id) == ["raised", "escalated", "deescalated"]
    assert _actions(sessions, "task", task.id) == ["created", "priority_raised"]


def test_escalation_never_extends_the_due_time(alarms: AlarmService, clock: FakeClock,
                                               sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MAJOR))  # high: due in 2 h
    assert alarm is not None
    due = _task_of(sessions, alarm.id).response_due_at
    advance(clock, 110 * 60)
    alarms.apply(_event(clock, AlarmAction.ESCALATED, Severity.CRITICAL))  # 30 min from now would be later
    assert _task_of(sessions, alarm.id).response_due_at == due


def test_peak_records_the_worst_value(alarms: AlarmService, clock: FakeClock) -> None:
    alarms.apply(_event(clock, AlarmAction.RAISED, value=0.05))
    peaked = alarms.apply(_event(clock, AlarmAction.PEAK, value=0.01))
    assert peaked is not None
    assert (peaked.peak_value, peaked.last_value, peaked.severity) == (0.01, 0.01, "major")


def test_clear_ends_the_alarm_and_leaves_the_task_open(alarms: AlarmService, clock: FakeClock,
                                                       sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert alarm is not None
    advance(clock, 900)
    cleared = alarms.apply(_event(clock, AlarmAction.CLEARED, value=0.3))
    assert cleared is not None
    assert (cleared.id, cleared.state, cleared.ended_at, cleared.last_value) == (
        alarm.id, "cleared", clock_time(clock), 0.3)
    assert _task_of(sessions, alarm.id).state == "raised"
    assert alarms.apply(_event(clock, AlarmAction.CLEARED)) is None  # nothing open any more
    assert _actions(sessions, "alarm", alarm.id) == ["raised", "cleared"]


def test_news_of_an_alarm_not_held_open_opens_it(alarms: AlarmService, clock: FakeClock,
                                                 sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.ESCALATED, Severity.CRITICAL))
    assert alarm is not None
    assert (alarm.state, alarm.severity) == ("active", "critical")
    assert _counts(sessions) == (1, 1)
    assert alarms.apply(_event(clock, AlarmAction.CLEARED, key=AlarmKey("x", "y", HV))) is None


def _work_and_sign(tasks: TaskService, people: People, task_id: int) -> None:
    tasks.assign(task_id, people.supervisor, [people.technician.id])
    tasks.start(task_id, people.technician)
    tasks.complete(task_id, people.technician, "dry tank", "refilled the break tank")
    tasks.verify(task_id, people.supervisor)


def test_a_repeat_within_the_window_reopens_the_alarm_and_its_task(
        alarms: AlarmService, tasks: TaskService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MINOR))
    assert alarm is not None
    task = _task_of(sessions, alarm.id)
    alarms.acknowledge(alarm.id, people.operator)
    alarms.apply(_event(clock, AlarmAction.ESCALATED, Severity.MAJOR))
    _work_and_sign(tasks, people, task.id)
    advance(clock, 3600)
    alarms.apply(_event(clock, AlarmAction.CLEARED))
    advance(clock, 24 * 3600 - 1)  # just inside the window
    again = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MINOR, value=0.06))
    assert again is not None
    assert again.id == alarm.id
    assert (again.state, again.ended_at, again.repeat_count) == ("active", None, 1)
    assert (again.severity, again.peak_severity, again.started_at) == ("minor", "minor", clock_time(clock))
    assert (again.acknowledged_by, again.acknowledged_at) == (None, None)  # a new occurrence to acknowledge
    reopened = _task_of(sessions, alarm.id)
    assert reopened.id == task.id
    assert (reopened.state, reopened.repeat_count, reopened.assignee_ids) == ("raised", 1, [])
    assert reopened.priority == "high"  # kept from the escalation, never lowered
    assert (reopened.technician_signed_by, reopened.supervisor_signed_by, reopened.fault_cause) == (None,) * 3
    assert reopened.response_due_at == clock_time(clock) + timedelta(hours=2)
    assert reopened.escalation_level == 0
    assert _counts(sessions) == (1, 1)
    assert _actions(sessions, "alarm", alarm.id)[-2:] == ["cleared", "reopened"]
    assert _actions(sessions, "task", task.id)[-1] == "reopened"
    with sessions() as session:
        last = audit.history(session, "task", task.id)[-1]
    assert last.before is not None
    assert last.before["state"] == "verified"  # the old record stays in the trail
    assert last.before["fault_cause"] == "dry tank"


def test_a_repeat_while_the_task_is_worked_keeps_its_state(alarms: AlarmService, tasks: TaskService,
                                                           people: People, clock: FakeClock,
                                                           sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert alarm is not None
    task = _task_of(sessions, alarm.id)
    tasks.start(task.id, people.technician)
    alarms.apply(_event(clock, AlarmAction.CLEARED))
    advance(clock, 60)
    alarms.apply(_event(clock, AlarmAction.RAISED, Severity.CRITICAL))
    current = _task_of(sessions, alarm.id)
    assert (current.state, current.repeat_count, current.priority) == ("in_progress", 1, "critical")
    assert current.assignee_ids == [people.technician.id]
    assert alarms.get(alarm.id).repeat_count == 1


def test_a_repeat_after_the_window_is_a_new_alarm_and_task(alarms: AlarmService, clock: FakeClock,
                                                           sessions: sessionmaker[Session]) -> None:
    first = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert first is not None
    alarms.apply(_event(clock, AlarmAction.CLEARED))
    advance(clock, 24 * 3600 + 1)
    second = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert second is not None
    assert second.id != first.id
    assert (second.repeat_count, alarms.get(first.id).state) == (0, "cleared")
    assert _task_of(sessions, second.id).id != _task_of(sessions, first.id).id
    assert _counts(sessions) == (2, 2)


def test_the_reopen_window_is_configurable(sessions: sessionmaker[Session], clock: FakeClock,
                                           tasks: TaskService) -> None:
    short = AlarmService(sessions, clock, tasks, reopen_window=timedelta(minutes=10))
    first = short.apply(_event(clock, AlarmAction.RAISED))
    short.apply(_event(clock, AlarmAction.CLEARED))
    advance(clock, 11 * 60)
    second = short.apply(_event(clock, AlarmAction.RAISED))
    assert first is not None
    assert second is not None
    assert second.id != first.id


def test_acknowledge(alarms: AlarmService, people: People, clock: FakeClock,
                     sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert alarm is not None
    for who in (people.technician, people.director):
        with pytest.raises(Forbidden):
            alarms.acknowledge(alarm.id, who)
    advance(clock, 30)
    acked = alarms.acknowledge(alarm.id, people.operator)
    assert (acked.acknowledged_by, acked.acknowledged_at) == (people.operator.id, clock_time(clock))
    advance(clock, 30)
    again = alarms.acknowledge(alarm.id, people.supervisor)
    assert (again.acknowledged_by, again.acknowledged_at) == (people.operator.id, clock_time(clock) -
                                                              timedelta(seconds=30))
    with pytest.raises(NotFound):
        alarms.acknowledge(alarm.id + 100, people.admin)
    with sessions() as session:
        rows = audit.history(session, "alarm", alarm.id)
    assert [(r.action, r.actor) for r in rows] == [("raised", "system"),
                                                   ("acknowledged", str(people.operator.id))]
    other = alarms.apply(_event(clock, AlarmAction.RAISED, key=AlarmKey("pump-d2", "dry_run", HV)))
    assert other is not None
    assert alarms.acknowledge(other.id, people.admin).acknowledged_by == people.admin.id


def test_list_filters_and_pages(alarms: AlarmService, people: People, clock: FakeClock) -> None:
    old = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MINOR, key=AlarmKey("pump-d1", "a", HV)))
    alarms.apply(_event(clock, AlarmAction.CLEARED, key=AlarmKey("pump-d1", "a", HV)))
    advance(clock, 3600)
    since = clock_time(clock)
    acked = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.CRITICAL,
                                key=AlarmKey("pump-d2", "b", HV)))
    advance(clock, 60)
    fire = alarms.apply(_event(clock, AlarmAction.RAISED, Severity.MAJOR, key=AlarmKey("pump-f1", "c", HV),
                               room="room-b"))
    assert old is not None
    assert acked is not None
    assert fire is not None
    alarms.acknowledge(acked.id, people.operator)

    def ids(filters: AlarmFilter | None = None, offset: int = 0, limit: int = 50) -> tuple[list[int], int]:
        items, total = alarms.list_alarms(filters or AlarmFilter(), offset, limit)
        return [a.id for a in items], total

    assert ids() == ([fire.id, acked.id, old.id], 3)
    assert ids(offset=1, limit=1) == ([acked.id], 3)
    assert ids(AlarmFilter(state=AlarmState.ACTIVE)) == ([fire.id, acked.id], 2)
    assert ids(AlarmFilter(state=AlarmState.CLEARED)) == ([old.id], 1)
    assert ids(AlarmFilter(acknowledged=True)) == ([acked.id], 1)
    assert ids(AlarmFilter(acknowledged=False)) == ([fire.id, old.id], 2)
    assert ids(AlarmFilter(severity=Severity.CRITICAL)) == ([acked.id], 1)
    assert ids(AlarmFilter(room="room-b")) == ([fire.id], 1)
    assert ids(AlarmFilter(asset="pump-d1")) == ([old.id], 1)
    assert ids(AlarmFilter(since=since)) == ([fire.id, acked.id], 2)
    assert ids(AlarmFilter(since=since, acknowledged=False, room="room-a")) == ([], 0)


def _apply_from_threads(alarms: AlarmService, event: AlarmEvent, workers: int) -> list[int]:
    barrier = threading.Barrier(workers)
    ids: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            alarm = alarms.apply(event)
            assert alarm is not None
            ids.append(alarm.id)
        except BaseException as err:  # collected, so a failure in a thread fails the test
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return ids


def test_concurrent_raises_of_one_key_make_one_alarm_and_one_task(
        alarms: AlarmService, clock: FakeClock, sessions: sessionmaker[Session]) -> None:
    keys = [AlarmKey(f"pump-{n}", "dry_run", HV) for n in range(8)]
    for key in keys:
        ids = _apply_from_threads(alarms, _event(clock, AlarmAction.RAISED, key=key), workers=4)
        assert len(ids) == 4
        assert len(set(ids)) == 1
    assert _counts(sessions) == (len(keys), len(keys))
    with sessions() as session:
        per_alarm = session.execute(select(Task.alarm_id, func.count()).group_by(Task.alarm_id)).all()
    assert all(count == 1 for _, count in per_alarm)


def test_concurrent_repeats_reopen_once(alarms: AlarmService, clock: FakeClock,
                                        sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED))
    alarms.apply(_event(clock, AlarmAction.CLEARED))
    advance(clock, 60)
    ids = _apply_from_threads(alarms, _event(clock, AlarmAction.RAISED), workers=4)
    assert alarm is not None
    assert set(ids) == {alarm.id}
    assert alarms.get(alarm.id).repeat_count == 1
    assert _task_of(sessions, alarm.id).repeat_count == 1
    assert _counts(sessions) == (1, 1)


def test_losing_the_insert_race_rereads_the_winner(alarms: AlarmService, clock: FakeClock,
                                                   sessions: sessionmaker[Session],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    winner = alarms.apply(_event(clock, AlarmAction.RAISED, value=0.05))
    assert winner is not None
    real_active = AlarmService._active
    calls: list[int] = []

    def stale_first_read(self: AlarmService, session: Session, key: AlarmKey) -> Alarm | None:
        # As if the other process committed its row just after this one looked.
        calls.append(1)
        return None if len(calls) == 1 else real_active(self, session, key)

    monkeypatch.setattr(AlarmService, "_active", stale_first_read)
    loser = alarms.apply(_event(clock, AlarmAction.RAISED, value=0.02))
    assert loser is not None
    assert loser.id == winner.id
    assert loser.last_value == 0.02
    assert len(calls) == 2
    assert _counts(sessions) == (1, 1)
    assert _actions(sessions, "alarm", winner.id) == ["raised", "updated"]


def test_tasks_opened_by_alarms_follow_the_lifecycle(alarms: AlarmService, tasks: TaskService,
                                                     people: People, clock: FakeClock,
                                                     sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_event(clock, AlarmAction.RAISED))
    assert alarm is not None
    task = _task_of(sessions, alarm.id)
    _work_and_sign(tasks, people, task.id)
    assert tasks.get(task.id).state == TaskState.VERIFIED
