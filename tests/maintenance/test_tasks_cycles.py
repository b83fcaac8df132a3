"""A task's record is never rewritten: each cycle of work keeps its report and signatures (both databases)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.alarms import AlarmService
from maintenance.models import Task, TaskCycle
from maintenance.task_flow import ChecklistItem, CheckResult
from maintenance.task_history import repeat_faults
from maintenance.tasks import TaskFilter, TaskService
from maintenance.vocab import Priority, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from tests.support.state import People, advance, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml

KEY = AlarmKey("dom-p1", "dry_run", HV)
MESSAGE = Text(zh="一号生活泵干转", en="Domestic pump 1 running dry")
TITLE = Text(zh="一号生活泵法兰漏水", en="Domestic pump 1 flange leaks")
CHECKLIST = [ChecklistItem("noise", Text(zh="水泵有无异常响声", en="Abnormal pump noise"))]
# What a closed cycle holds; none of it may change once the cycle has ended.
RECORD = ("number", "reason", "opened_at", "opened_by", "responded_at", "responded_by", "started_at",
          "started_by", "checklist", "parts_used", "notes", "workers", "fault_cause", "action_taken",
          "parts_replaced", "remarks", "technician_signed_by", "technician_signed_at", "supervisor_signed_by",
          "supervisor_signed_at", "sent_back_at", "sent_back_by", "sent_back_reason", "cancelled_at",
          "cancel_reason", "closed_at", "response_due_at", "resolution_due_at", "response_escalation",
          "resolution_escalation")


def _alarm(alarms: AlarmService, clock: FakeClock, action: AlarmAction) -> None:
    alarms.apply(AlarmEvent(action, KEY, Severity.MAJOR, clock.now(), "dom", MESSAGE, 0.05, "dom-pt-out"))


def _task_of_alarm(tasks: TaskService) -> Task:
    found, total = tasks.list_tasks(TaskFilter(kind=TaskKind.ALARM.value))
    assert total == 1
    return found[0]


def _record(cycle: TaskCycle) -> dict[str, Any]:
    return {name: getattr(cycle, name) for name in RECORD}


def _work(tasks: TaskService, task_id: int, supervisor: Any, technician: Any, cause: str) -> None:
    tasks.assign(task_id, supervisor, [technician.id])
    tasks.start(task_id, technician)
    tasks.add_part(task_id, technician, "mechanical seal", 1)
    tasks.complete(task_id, technician, cause, f"fixed: {cause}", parts_replaced="1 seal", remarks="ok")


def test_a_reopened_task_keeps_both_cycles_with_their_signatures_and_causes(
        tasks: TaskService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    p = people
    _alarm(alarms, clock, AlarmAction.RAISED)
    task = _task_of_alarm(tasks)
    advance(clock, 600)
    _work(tasks, task.id, p.supervisor, p.technician, "dry tank")
    first_done = clock_time(clock)
    advance(clock, 60)
    tasks.verify(task.id, p.supervisor)
    first_verified = clock_time(clock)
    _alarm(alarms, clock, AlarmAction.CLEARED)
    first = _record(tasks.cycles(task.id)[0])
    advance(clock, 3600)
    _alarm(alarms, clock, AlarmAction.RAISED)  # back within the reopen window: the same task, a new cycle
    reopened_at = clock_time(clock)

    reopened = tasks.get(task.id)
    assert (reopened.state, reopened.cycle, reopened.repeat_count) == ("raised", 2, 1)
    assert (reopened.fault_cause, reopened.technician_signed_by, reopened.supervisor_signed_by) == (None,) * 3
    assert (reopened.parts_used, reopened.started_at, reopened.responded_at) == ([], None, None)
    assert reopened.response_due_at == reopened_at + timedelta(hours=2)  # fresh limits for the repeat
    assert reopened.due_at == reopened_at + timedelta(hours=24)
    one, two = tasks.cycles(task.id)
    assert _record(one) == first  # the finished cycle is untouched
    assert (one.number, one.reason, one.fault_cause, one.action_taken) == (1, "created", "dry tank",
                                                                         "fixed: dry tank")
    assert (one.technician_signed_by, one.technician_signed_at) == (p.technician.id, first_done)
    assert (one.supervisor_signed_by, one.supervisor_signed_at) == (p.supervisor.id, first_verified)
    assert (one.parts_replaced, one.remarks, one.closed_at) == ("1 seal", "ok", first_verified)
    assert [part["part"] for part in one.parts_used] == ["mechanical seal"]
    assert (one.responded_by, one.started_by, one.workers) == (p.supervisor.id, p.technician.id,
                                                               [p.technician.id])
    assert (two.number, two.reason, two.opened_at, two.opened_by) == (2, "reopened", reopened_at, None)
    assert (two.fault_cause, two.technician_signed_by, two.closed_at) == (None, None, None)

    advance(clock, 600)
    _work(tasks, task.id, p.supervisor2, p.technician2, "float valve stuck")
    tasks.verify(task.id, p.supervisor2)
    one, two = tasks.cycles(task.id)
    assert _record(one) == first
    assert (two.fault_cause, two.technician_signed_by, two.supervisor_signed_by) == (
        "float valve stuck", p.technician2.id, p.supervisor2.id)
    assert (one.fault_cause, one.technician_signed_by, one.supervisor_signed_by) == (
        "dry tank", p.technician.id, p.supervisor.id)
    with sessions() as session:
        actions = [row.action for row in audit.history(session, "task", task.id)]
    assert actions.count("reopened") == 1


def test_a_repeat_while_the_task_is_still_open_keeps_the_cycle(tasks: TaskService, alarms: AlarmService,
                                                               people: People, clock: FakeClock) -> None:
    _alarm(alarms, clock, AlarmAction.RAISED)
    task = _task_of_alarm(tasks)
    tasks.start(task.id, people.technician)
    _alarm(alarms, clock, AlarmAction.CLEARED)
    advance(clock, 600)
    _alarm(alarms, clock, AlarmAction.RAISED)
    again = tasks.get(task.id)
    assert (again.state, again.cycle, again.repeat_count, again.started_at) == (
        "in_progress", 1, 1, task.created_at)
    assert len(tasks.cycles(task.id)) == 1


def test_a_send_back_keeps_the_first_completion_in_cycle_1(tasks: TaskService, people: People,
                                                            clock: FakeClock) -> None:
    p = people
    task = tasks.create_task(p.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=CHECKLIST)
    tasks.assign(task.id, p.supervisor, [p.technician.id])
    tasks.start(task.id, p.technician)
    tasks.record_check(task.id, p.technician, "noise", CheckResult.OK, note="quiet")
    tasks.add_note(task.id, p.technician, "seal replaced")
    tasks.complete(task.id, p.technician, "worn seal", "replaced the seal")
    signed_at = clock_time(clock)
    advance(clock, 300)
    back = tasks.send_back(task.id, p.supervisor, "no photo of the new seal")
    sent_at = clock_time(clock)
    assert (back.state, back.cycle, back.sent_back_reason) == ("sent_back", 2, "no photo of the new seal")
    assert (back.technician_signed_by, back.fault_cause, back.started_at) == (None, None, None)
    assert back.assignee_ids == [p.technician.id]  # the rework goes back to the same people
    assert [item["result"] for item in back.checklist] == [None]  # answered again in the new cycle
    assert [n["text"] for n in back.notes] == ["seal replaced"]  # notes are the whole conversation
    one, two = back.cycles
    assert (one.fault_cause, one.action_taken) == ("worn seal", "replaced the seal")
    assert (one.technician_signed_by, one.technician_signed_at) == (p.technician.id, signed_at)
    assert (one.sent_back_at, one.sent_back_by, one.sent_back_reason) == (sent_at, p.supervisor.id,
                                                                          "no photo of the new seal")
    assert (one.closed_at, one.supervisor_signed_by) == (sent_at, None)
    assert [(i["result"], i["note"], i["by"]) for i in one.checklist] == [("ok", "quiet", p.technician.id)]
    assert [n["text"] for n in one.notes] == ["seal replaced"]
    assert (two.reason, two.opened_by, two.opened_at) == ("sent_back", p.supervisor.id, sent_at)
    assert two.resolution_due_at == sent_at + timedelta(hours=72)  # a normal task: a fresh limit to redo it
    first = _record(one)

    advance(clock, 600)
    tasks.start(task.id, p.technician)
    tasks.record_check(task.id, p.technician, "noise", CheckResult.OK, note="quiet, photo [attachment:1]")
    tasks.add_note(task.id, p.technician, "photo attached")
    tasks.complete(task.id, p.technician, "worn seal", "replaced the seal, photo attached")
    verified = tasks.verify(task.id, p.supervisor)
    one, two = verified.cycles
    assert _record(one) == first
    assert (two.action_taken, two.technician_signed_by, two.supervisor_signed_by) == (
        "replaced the seal, photo attached", p.technician.id, p.supervisor.id)
    assert [n["text"] for n in two.notes] == ["photo attached"]
    assert [n["cycle"] for n in verified.notes] == [1, 2]


def test_cancelling_closes_the_cycle_with_who_and_why(tasks: TaskService, people: People,
                                                      clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE)
    advance(clock, 60)
    cancelled = tasks.cancel(task.id, people.supervisor, "reported twice")
    (only,) = cancelled.cycles
    assert (only.cancelled_at, only.cancelled_by, only.cancel_reason) == (
        clock_time(clock), people.supervisor.id, "reported twice")
    assert only.closed_at == clock_time(clock)


def test_cycles_completed_or_verified_between_two_instants(tasks: TaskService, alarms: AlarmService,
                                                           people: People, clock: FakeClock) -> None:
    p = people
    _alarm(alarms, clock, AlarmAction.RAISED)
    task = _task_of_alarm(tasks)
    _work(tasks, task.id, p.supervisor, p.technician, "dry tank")
    january = clock_time(clock)
    _alarm(alarms, clock, AlarmAction.CLEARED)
    advance(clock, 3600)
    _alarm(alarms, clock, AlarmAction.RAISED)  # reopened from done (never verified)
    advance(clock, 3600)
    _work(tasks, task.id, p.supervisor, p.technician, "float valve")
    advance(clock, 60)
    tasks.verify(task.id, p.supervisor)
    later = clock_time(clock)
    other = tasks.create_task(p.operator, TITLE)
    _work(tasks, other.id, p.supervisor, p.technician2, "gasket")

    done = tasks.completed_cycles(january, january + timedelta(seconds=1))
    assert [(c.task_id, c.number, c.fault_cause) for c in done] == [(task.id, 1, "dry tank")]
    assert [c.number for c in tasks.completed_cycles(january, later + timedelta(seconds=1))] == [1, 2, 1]
    verified = tasks.verified_cycles(january, later + timedelta(seconds=1))
    assert [(c.task_id, c.number) for c in verified] == [(task.id, 2)]  # cycle 1 was reopened unsigned
    first = tasks.cycles(task.id)[0]
    assert (first.supervisor_signed_by, first.closed_at is not None) == (None, True)


def test_repeat_faults_count_alarm_repeats_and_faults_reported_by_hand(
        tasks: TaskService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    start = clock_time(clock)
    _alarm(alarms, clock, AlarmAction.RAISED)  # dom-p1: the first occurrence
    _alarm(alarms, clock, AlarmAction.CLEARED)
    advance(clock, 600)
    _alarm(alarms, clock, AlarmAction.RAISED)  # the alarm came back: a repeat
    advance(clock, 600)
    tasks.create_task(people.operator, TITLE, asset="dom-p1")  # reported by hand on the same pump: a repeat
    tasks.create_task(people.operator, TITLE, asset="dom-p2")  # another pump's first fault
    tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, asset="dom-p2")  # not a fault
    end = clock_time(clock) + timedelta(seconds=1)

    occurrences = tasks.fault_occurrences(start, end)
    assert [(o.asset, o.kind, o.repeat) for o in occurrences] == [
        ("dom-p1", "alarm", False), ("dom-p1", "alarm", True), ("dom-p1", "fault", False),
        ("dom-p2", "fault", False)]
    with sessions() as session:
        assert repeat_faults(session, start, end) == {"dom-p1": 2}
    advance(clock, 40 * 86400)
    later = clock_time(clock)
    tasks.create_task(people.operator, TITLE, asset="dom-p1")  # 40 days after the last: a new fault
    advance(clock, 10 * 86400)
    tasks.create_task(people.operator, TITLE, asset="dom-p1")  # 10 days after that one: a repeat
    with sessions() as session:
        assert repeat_faults(session, later, clock_time(clock) + timedelta(seconds=1)) == {"dom-p1": 1}


def test_the_highest_clock_level_is_the_tasks_escalation_level(tasks: TaskService, people: People,
                                                               clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    advance(clock, 31 * 60)
    tasks.escalate()
    row = tasks.get(task.id)
    assert (row.response_escalation, row.resolution_escalation, row.escalation_level) == (2, 0, 2)
    (cycle,) = row.cycles
    assert (cycle.response_escalation, cycle.resolution_escalation) == (2, 0)


def test_a_task_row_written_around_the_service_gets_its_cycle(tasks: TaskService, people: People,
                                                              clock: FakeClock,
                                                              sessions: sessionmaker[Session]) -> None:
    now = clock_time(clock)
    with sessions.begin() as session:
        row = Task(kind="fault", title_zh="漏水", title_en="leak", priority="critical", state="raised",
                   due_at=now, resolution_due_at=now, checklist=[], notes=[], parts_used=[], repeat_count=0,
                   escalation_level=0, created_at=now, updated_at=now)
        session.add(row)
        session.flush()
        task_id = row.id
    advance(clock, 60)
    assert [(e.task_id, e.clock.value, int(e.level)) for e in tasks.escalate()] == [
        (task_id, "resolution", 1), (task_id, "resolution", 2)]
    tasks.start(task_id, people.technician)
    (cycle,) = tasks.cycles(task_id)
    assert (cycle.number, cycle.reason, cycle.opened_at, cycle.started_by) == (1, "created", now,
                                                                              people.technician.id)
