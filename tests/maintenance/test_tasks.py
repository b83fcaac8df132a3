"""TaskService on both databases: lifecycle, role rules, signatures, records, SLA escalation, lists, audit."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.schemas import TaskPublic
from maintenance import audit
from maintenance.auth import AuthService
from maintenance.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from maintenance.models import AuditLog, Task, TaskAssignee
from maintenance.task_flow import ChecklistItem, CheckResult, EscalationLevel, TaskAction
from maintenance.tasks import TaskFilter, TaskService
from maintenance.vocab import Priority, Role, SlaClock, TaskKind, TaskState
from pumpwatch.clock import FakeClock
from pumpwatch.site import Text
from tests.maintenance.lifecycle import LEGAL, A, S
from tests.support.state import PASSWORD, People, advance, clock_time

TITLE = Text(zh="一号生活泵法兰漏水", en="Domestic pump 1 flange leaks")
RESPONSE, RESOLUTION = SlaClock.RESPONSE, SlaClock.RESOLUTION
REMINDER, SUPERVISOR, DIRECTOR = (EscalationLevel.REMINDER, EscalationLevel.SUPERVISOR,
                                  EscalationLevel.DIRECTOR)
CHECKLIST = [ChecklistItem("noise", Text(zh="水泵有无异常响声", en="Abnormal pump noise")),
             ChecklistItem("gauge", Text(zh="机械水压表是否正常", en="Pressure gauge normal"))]


def _actions(sessions: sessionmaker[Session], task_id: int) -> list[str]:
    with sessions() as session:
        return [row.action for row in audit.history(session, "task", task_id)]


def _audit_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditLog)) or 0


def _put_in_state(sessions: sessionmaker[Session], task_id: int, state: TaskState, people: People,
                  clock: FakeClock) -> None:
    """Set up a task as if it had got to `state`: assigned to the technician, signed when done."""
    now = clock_time(clock)
    with sessions.begin() as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.state = state.value
        if state is not S.RAISED:
            task.assignees = [TaskAssignee(user_id=people.technician.id, assigned_at=now)]
        if state in (S.DONE, S.VERIFIED):
            task.fault_cause, task.action_taken = "worn seal", "replaced the seal"
            task.technician_signed_by, task.technician_signed_at = people.technician.id, now


def _do(tasks: TaskService, people: People, task_id: int, action: TaskAction) -> Task:
    """Perform `action` as someone allowed to, so only the state decides."""
    doers: dict[TaskAction, Callable[[], Task]] = {
        A.ASSIGN: lambda: tasks.assign(task_id, people.supervisor, [people.technician.id]),
        A.START: lambda: tasks.start(task_id, people.technician),
        A.COMPLETE: lambda: tasks.complete(task_id, people.technician, "worn seal", "replaced the seal"),
        A.VERIFY: lambda: tasks.verify(task_id, people.supervisor),
        A.SEND_BACK: lambda: tasks.send_back(task_id, people.supervisor, "no photo of the new seal"),
        A.CANCEL: lambda: tasks.cancel(task_id, people.supervisor, "reported twice"),
    }
    return doers[action]()


SERVICE_MOVES = list(itertools.product(TaskState, [a for a in TaskAction if a is not A.REOPEN]))


@pytest.mark.parametrize(("state", "action"), SERVICE_MOVES, ids=[f"{s}-{a}" for s, a in SERVICE_MOVES])
def test_every_transition_through_the_service(state: TaskState, action: TaskAction, tasks: TaskService,
                                              people: People, clock: FakeClock,
                                              sessions: sessionmaker[Session]) -> None:
    task = tasks.create_task(people.operator, TITLE)
    _put_in_state(sessions, task.id, state, people, clock)
    rows_before = _audit_count(sessions)
    if (state, action) in LEGAL:
        changed = _do(tasks, people, task.id, action)
        assert changed.state == LEGAL[(state, action)]
        assert tasks.get(task.id).state == LEGAL[(state, action)]
        with sessions() as session:
            last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(1)).one()
        assert (last.entity, last.entity_id, last.action) == ("task", str(task.id), action.value)
        if LEGAL[(state, action)] is not state:
            assert last.before is not None
            assert last.after is not None
            assert (last.before["state"], last.after["state"]) == (state.value, LEGAL[(state, action)].value)
    else:
        with pytest.raises(IllegalTransition) as err:
            _do(tasks, people, task.id, action)
        assert (err.value.current, err.value.attempted) == (state.value, action.value)
        assert tasks.get(task.id).state == state
        assert _audit_count(sessions) == rows_before


def test_a_fault_report_by_any_user(tasks: TaskService, people: People, clock: FakeClock,
                                    sessions: sessionmaker[Session]) -> None:
    task = tasks.create_task(people.operator, TITLE, priority=Priority.HIGH, asset="pump-d1", room="room-a",
                             description="water on the floor")
    assert (task.kind, task.state, task.priority) == ("fault", "raised", "high")
    assert task.created_by == people.operator.id
    assert task.created_at == clock_time(clock)
    assert task.response_due_at == clock_time(clock) + timedelta(hours=2)  # taken on within 2 h
    assert task.due_at == task.resolution_due_at == clock_time(clock) + timedelta(hours=24)  # done in 24 h
    assert (task.escalation_level, task.repeat_count, task.assignee_ids) == (0, 0, [])
    assert (task.cycle, task.responded_at) == (1, None)
    with sessions() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.entity == "task")).one()
    assert (row.actor, row.action, row.before) == (str(people.operator.id), "created", None)
    assert row.after is not None
    assert row.after["title_en"] == TITLE.en


@pytest.mark.parametrize(("priority", "respond", "resolve"), [
    (Priority.CRITICAL, 0.5, 4), (Priority.HIGH, 2, 24), (Priority.NORMAL, 24, 72), (Priority.LOW, 72, 168)])
def test_deadlines_follow_the_priority(priority: Priority, respond: float, resolve: float, tasks: TaskService,
                                       people: People, clock: FakeClock) -> None:
    task = tasks.create_task(people.technician, TITLE, priority=priority)
    assert task.response_due_at == clock_time(clock) + timedelta(hours=respond)
    assert task.due_at == task.resolution_due_at == clock_time(clock) + timedelta(hours=resolve)


def test_only_supervisors_and_admins_create_other_kinds(tasks: TaskService, people: People) -> None:
    with pytest.raises(Forbidden):
        tasks.create_task(people.operator, TITLE, kind=TaskKind.INSPECTION)
    with pytest.raises(Forbidden):
        tasks.create_task(people.technician, TITLE, kind=TaskKind.CORRECTIVE)
    assert tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION).kind == "inspection"
    assert tasks.create_task(people.admin, TITLE, kind=TaskKind.CHANGE).kind == "change"
    for kind in (TaskKind.ALARM, TaskKind.PLAN):
        with pytest.raises(InvalidInput):
            tasks.create_task(people.admin, TITLE, kind=kind)
    with pytest.raises(InvalidInput):
        tasks.create_task(people.operator, Text(zh="", en="x"))
    with pytest.raises(InvalidInput, match="distinct"):
        tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION,
                          checklist=[CHECKLIST[0], CHECKLIST[0]])


def test_an_inactive_or_unknown_user_can_do_nothing(tasks: TaskService, auth: AuthService,
                                                    people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    auth.set_active(people.supervisor.id, False, actor=people.admin)
    with pytest.raises(Forbidden):
        tasks.assign(task.id, people.supervisor, [people.technician.id])
    with pytest.raises(NotFound):
        tasks.start(task.id + 1000, people.technician)
    with pytest.raises(NotFound):
        tasks.get(task.id + 1000)


def test_plan_tasks_are_idempotent_by_plan_key(tasks: TaskService, sessions: sessionmaker[Session],
                                               clock: FakeClock) -> None:
    due = clock_time(clock) + timedelta(days=5)
    first = tasks.create_from_plan("monthly-contactor/pump-d1@2026-01", TITLE, due_at=due, asset="pump-d1",
                                   checklist=CHECKLIST)
    again = tasks.create_from_plan("monthly-contactor/pump-d1@2026-01", Text(zh="别的", en="other"))
    other = tasks.create_from_plan("monthly-contactor/pump-d1@2026-02", TITLE)
    assert again.id == first.id
    assert again.title_en == TITLE.en
    assert other.id != first.id
    assert (first.kind, first.plan_key, first.due_at) == ("plan", "monthly-contactor/pump-d1@2026-01", due)
    assert [item["key"] for item in first.checklist] == ["noise", "gauge"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 2
    assert _actions(sessions, first.id) == ["created"]


def test_concurrent_plan_task_creation_makes_one_task(tasks: TaskService,
                                                      sessions: sessionmaker[Session]) -> None:
    workers = 4
    barrier = threading.Barrier(workers)
    ids: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            ids.append(tasks.create_from_plan("weekly-sweep/room-a@2026-W02", TITLE).id)
        except BaseException as err:  # reported below, so a thread failure fails the test
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(ids) == workers
    assert len(set(ids)) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 1


def test_the_whole_lifecycle_with_both_signatures(tasks: TaskService, people: People, clock: FakeClock,
                                                  sessions: sessionmaker[Session]) -> None:
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=CHECKLIST)
    advance(clock, 60)
    assigned = tasks.assign(task.id, people.supervisor, [people.technician.id, people.technician2.id])
    assert (assigned.state, assigned.assignee_ids) == ("assigned", sorted([people.technician.id,
                                                                           people.technician2.id]))
    advance(clock, 60)
    started = tasks.start(task.id, people.technician2)
    assert started.started_at == clock_time(clock)
    tasks.record_check(task.id, people.technician, "noise", CheckResult.OK)
    checked = tasks.record_check(task.id, people.technician2, "gauge", CheckResult.FAULT, value=0.42,
                                 note="gauge reads 0.42 MPa, sensor 0.45")
    gauge = checked.checklist[1]
    assert (gauge["result"], gauge["value"], gauge["by"]) == ("fault", 0.42, people.technician2.id)
    assert gauge["at"] == clock_time(clock).isoformat()
    tasks.add_part(task.id, people.technician, "flange gasket DN50", 2)
    advance(clock, 600)
    done = tasks.complete(task.id, people.technician, " worn gasket ", "replaced both gaskets",
                          parts_replaced="2 x DN50 gasket", remarks="recheck next week")
    assert (done.state, done.fault_cause) == ("done", "worn gasket")
    assert done.action_taken == "replaced both gaskets"
    assert (done.parts_replaced, done.remarks) == ("2 x DN50 gasket", "recheck next week")
    assert (done.technician_signed_by, done.technician_signed_at) == (people.technician.id, clock_time(clock))
    assert done.supervisor_signed_by is None
    advance(clock, 60)
    verified = tasks.verify(task.id, people.supervisor)
    assert verified.state == "verified"
    assert (verified.supervisor_signed_by, verified.supervisor_signed_at) == (people.supervisor.id,
                                                                              clock_time(clock))
    assert verified.technician_signed_by == people.technician.id
    assert _actions(sessions, task.id) == ["created", "assign", "start", "checklist", "checklist", "part",
                                           "complete", "verify"]
    with sessions() as session:
        rows = audit.history(session, "task", task.id)
    complete_row = rows[-2]
    assert complete_row.actor == str(people.technician.id)
    assert complete_row.before is not None
    assert complete_row.after is not None
    assert complete_row.before["state"] == "in_progress"
    assert complete_row.after["technician_signed_by"] == people.technician.id
    assert "title_en" not in complete_row.after  # only what changed


def test_role_rules_for_assigning(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    for who in (people.operator, people.technician, people.director):
        with pytest.raises(Forbidden):
            tasks.assign(task.id, who, [people.technician.id])
    with pytest.raises(InvalidInput, match="technician"):
        tasks.assign(task.id, people.supervisor, [people.operator.id])
    with pytest.raises(InvalidInput):
        tasks.assign(task.id, people.supervisor, [])
    with pytest.raises(InvalidInput):
        tasks.assign(task.id, people.supervisor, [99_999])
    assert tasks.get(task.id).state == "raised"
    assert tasks.assign(task.id, people.admin, [people.technician.id]).assignee_ids == [people.technician.id]
    again = tasks.assign(task.id, people.supervisor, [people.technician.id, people.technician2.id])
    assert again.assignee_ids == sorted([people.technician.id, people.technician2.id])
    narrowed = tasks.assign(task.id, people.supervisor, [people.technician2.id])
    assert narrowed.assignee_ids == [people.technician2.id]


def test_role_rules_for_starting_and_completing(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.assign(task.id, people.supervisor, [people.technician.id])
    with pytest.raises(Forbidden):
        tasks.start(task.id, people.technician2)  # not theirs
    with pytest.raises(Forbidden):
        tasks.start(task.id, people.supervisor)  # not a technician
    tasks.start(task.id, people.technician)
    with pytest.raises(Forbidden):
        tasks.complete(task.id, people.technician2, "cause", "action")
    with pytest.raises(Forbidden):
        tasks.complete(task.id, people.operator, "cause", "action")
    with pytest.raises(Forbidden):
        tasks.add_part(task.id, people.technician2, "seal", 1)
    with pytest.raises(Forbidden):
        tasks.cancel(task.id, people.technician, "no")
    assert tasks.complete(task.id, people.technician, "cause", "action").state == "done"
    with pytest.raises(Forbidden):
        tasks.verify(task.id, people.technician)
    with pytest.raises(Forbidden):
        tasks.send_back(task.id, people.operator, "redo")


def test_a_technician_takes_an_unassigned_task_by_starting_it(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    started = tasks.start(task.id, people.technician2)
    assert (started.state, started.assignee_ids) == ("in_progress", [people.technician2.id])
    with pytest.raises(Forbidden):
        tasks.complete(task.id, people.technician, "cause", "action")


def test_an_admin_may_do_anything(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.assign(task.id, people.admin, [people.technician.id])
    tasks.start(task.id, people.admin)
    tasks.add_part(task.id, people.admin, "seal", 1)
    done = tasks.complete(task.id, people.admin, "cause", "action")
    assert done.technician_signed_by == people.admin.id
    with pytest.raises(Forbidden, match="supervisor role"):
        tasks.verify(task.id, people.admin)  # administering the system is not reviewing the work
    assert tasks.verify(task.id, people.supervisor).state == "verified"
    other = tasks.create_task(people.operator, TITLE)
    assert tasks.cancel(other.id, people.admin, "duplicate").state == "cancelled"


def test_the_verifier_must_not_be_the_technician(tasks: TaskService, auth: AuthService,
                                                 people: People) -> None:
    both = auth.create_user("bo", PASSWORD, roles=["technician", "supervisor"])
    task = tasks.create_task(people.operator, TITLE)
    tasks.assign(task.id, both, [both.id])
    tasks.start(task.id, both)
    tasks.complete(task.id, both, "cause", "action")
    with pytest.raises(Forbidden, match="someone other"):
        tasks.verify(task.id, both)
    assert tasks.get(task.id).state == "done"
    verified = tasks.verify(task.id, people.supervisor2)
    assert (verified.technician_signed_by, verified.supervisor_signed_by) == (both.id, people.supervisor2.id)


def test_a_deputy_supervisor_can_sign_off_during_the_period(tasks: TaskService, auth: AuthService,
                                                            people: People, clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.start(task.id, people.technician)
    tasks.complete(task.id, people.technician, "cause", "action")
    with pytest.raises(Forbidden):
        tasks.verify(task.id, people.technician2)
    now = clock_time(clock)
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, now,
                    now + timedelta(hours=1), actor=people.supervisor)
    advance(clock, 3600)
    with pytest.raises(Forbidden):  # the period is over
        tasks.verify(task.id, people.technician2)
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, clock_time(clock), None,
                    actor=people.supervisor)
    assert tasks.verify(task.id, people.technician2).supervisor_signed_by == people.technician2.id


def test_completion_needs_the_fault_cause_and_the_action_taken(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.start(task.id, people.technician)
    with pytest.raises(InvalidInput, match="fault cause"):
        tasks.complete(task.id, people.technician, "  ", "replaced")
    with pytest.raises(InvalidInput, match="action taken"):
        tasks.complete(task.id, people.technician, "worn", "")
    current = tasks.get(task.id)
    assert (current.state, current.technician_signed_by) == ("in_progress", None)
    done = tasks.complete(task.id, people.technician, "worn", "replaced")
    assert (done.parts_replaced, done.remarks) == (None, None)


def test_the_checklist_must_be_answered_before_completion(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=CHECKLIST)
    with pytest.raises(IllegalTransition):  # not started yet
        tasks.record_check(task.id, people.technician, "noise", CheckResult.OK)
    tasks.start(task.id, people.technician)
    with pytest.raises(InvalidInput, match="no item"):
        tasks.record_check(task.id, people.technician, "smell", CheckResult.OK)
    with pytest.raises(Forbidden):
        tasks.record_check(task.id, people.technician2, "noise", CheckResult.OK)
    tasks.record_check(task.id, people.technician, "noise", CheckResult.OK)
    with pytest.raises(InvalidInput, match="gauge"):
        tasks.complete(task.id, people.technician, "none", "round done")
    tasks.record_check(task.id, people.technician, "gauge", CheckResult.NOT_APPLICABLE)
    tasks.record_check(task.id, people.technician, "noise", CheckResult.FAULT, note="bearing rumble")
    done = tasks.complete(task.id, people.technician, "bearing wear", "round done, bearing task raised")
    assert [(i["key"], i["result"], i["note"]) for i in done.checklist] == [
        ("noise", "fault", "bearing rumble"), ("gauge", "na", None)]
    # The failed item raised one corrective task, linked to the round; recording it again adds none.
    corrective, total = tasks.list_tasks(TaskFilter(kind=TaskKind.CORRECTIVE.value))
    assert total == 1
    assert corrective[0].plan_key == f"corrective:{task.id}:noise"
    assert f"task #{task.id}" in (corrective[0].description or "")


def test_a_number_outside_its_range_raises_a_corrective_task(tasks: TaskService, people: People) -> None:
    items = [ChecklistItem("pressure", Text(zh="压力表读数", en="Gauge reading"))]
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=items)
    tasks.start(task.id, people.technician)
    with tasks._sessions.begin() as session:  # the scheduler sets each item's expected range
        row = session.get(Task, task.id)
        assert row is not None
        row.checklist = [row.checklist[0] | {"min": 0.3, "max": 0.6, "unit": "MPa"}]
    tasks.record_check(task.id, people.technician, "pressure", CheckResult.OK, value=0.45)
    assert tasks.list_tasks(TaskFilter(kind=TaskKind.CORRECTIVE.value))[1] == 0
    tasks.record_check(task.id, people.technician, "pressure", CheckResult.OK, value=0.12)
    tasks.record_check(task.id, people.technician, "pressure", CheckResult.OK, value=0.11)
    found, total = tasks.list_tasks(TaskFilter(kind=TaskKind.CORRECTIVE.value))
    assert total == 1  # once per round and item
    assert found[0].title_en == "Fix: Gauge reading (0.12 MPa)"


def test_send_back_needs_a_reason_and_the_technician_signs_again(tasks: TaskService, people: People,
                                                                 clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.start(task.id, people.technician)
    tasks.complete(task.id, people.technician, "cause", "action")
    with pytest.raises(InvalidInput, match="reason"):
        tasks.send_back(task.id, people.supervisor, " ")
    back = tasks.send_back(task.id, people.supervisor, "no photo of the new seal")
    assert (back.state, back.sent_back_reason) == ("sent_back", "no photo of the new seal")
    assert (back.technician_signed_by, back.technician_signed_at) == (None, None)
    with pytest.raises(IllegalTransition):
        tasks.verify(task.id, people.supervisor)
    advance(clock, 300)
    tasks.start(task.id, people.technician)
    again = tasks.complete(task.id, people.technician, "cause", "action, photo attached")
    assert again.technician_signed_by == people.technician.id
    assert again.technician_signed_at == clock_time(clock)
    assert tasks.verify(task.id, people.supervisor).state == "verified"


def test_cancel_needs_a_reason(tasks: TaskService, people: People) -> None:
    task = tasks.create_task(people.operator, TITLE)
    with pytest.raises(InvalidInput, match="reason"):
        tasks.cancel(task.id, people.supervisor, "")
    cancelled = tasks.cancel(task.id, people.supervisor, "reported twice")
    assert (cancelled.state, cancelled.cancel_reason) == ("cancelled", "reported twice")
    with pytest.raises(IllegalTransition):
        tasks.start(task.id, people.technician)


def test_notes_parts_and_attachments_are_recorded(tasks: TaskService, people: People, clock: FakeClock,
                                                  sessions: sessionmaker[Session]) -> None:
    task = tasks.create_task(people.operator, TITLE)
    tasks.add_note(task.id, people.operator, "noticed at 07:40 round")
    with pytest.raises(IllegalTransition):
        tasks.add_part(task.id, people.technician, "seal", 1)
    tasks.start(task.id, people.technician)
    with pytest.raises(InvalidInput):
        tasks.add_part(task.id, people.technician, "seal", 0)
    with_part = tasks.add_part(task.id, people.technician, "mechanical seal", 1, unit="set")
    assert with_part.parts_used == [{"part": "mechanical seal", "quantity": 1, "unit": "set",
                                     "by": people.technician.id, "at": clock_time(clock).isoformat()}]
    tasks.complete(task.id, people.technician, "cause", "action")
    tasks.verify(task.id, people.supervisor)
    noted = tasks.add_note(task.id, people.director, "seen")  # notes are allowed after sign-off
    assert [(n["text"], n["by"]) for n in noted.notes] == [("noticed at 07:40 round", people.operator.id),
                                                           ("seen", people.director.id)]
    with pytest.raises(InvalidInput):
        tasks.add_note(task.id, people.director, " ")
    row = tasks.add_attachment(task.id, people.technician, "seal.jpg", "image/jpeg", 12_345, "ab" * 32,
                               "/var/lib/pumpwatch/attachments/abab.jpg")
    fetched = tasks.get_attachment(row.id)
    assert (fetched.task_id, fetched.filename, fetched.size, fetched.uploaded_by) == (
        task.id, "seal.jpg", 12_345, people.technician.id)
    assert [a.id for a in tasks.attachments(task.id)] == [row.id]
    with pytest.raises(NotFound):
        tasks.get_attachment(row.id + 1)
    assert _actions(sessions, task.id) == ["created", "note", "start", "part", "complete", "verify", "note"]
    with sessions() as session:
        assert [r.action for r in audit.history(session, "attachment", row.id)] == ["created"]


def test_list_filters_orders_and_pages(tasks: TaskService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    same_due = now + timedelta(hours=5)
    low = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.CORRECTIVE, priority=Priority.LOW,
                            due_at=same_due, room="room-a", asset="pump-d1")
    critical = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.CORRECTIVE,
                                 priority=Priority.CRITICAL, due_at=same_due, room="room-a", asset="pump-d2")
    soon = tasks.create_task(people.operator, TITLE, priority=Priority.NORMAL,
                             due_at=now + timedelta(hours=1), room="room-b", asset="pump-f1")
    late = tasks.create_task(people.operator, TITLE, priority=Priority.HIGH,
                             due_at=now + timedelta(days=3), room="room-b")
    tasks.assign(critical.id, people.supervisor, [people.technician.id])
    tasks.assign(late.id, people.supervisor, [people.technician.id, people.technician2.id])
    tasks.cancel(soon.id, people.supervisor, "duplicate")

    def ids(filters: TaskFilter | None = None, offset: int = 0, limit: int = 50) -> tuple[list[int], int]:
        items, total = tasks.list_tasks(filters or TaskFilter(), offset, limit)
        rows, rows_total = tasks.list_rows(filters or TaskFilter(), offset, limit)  # as the route reads it
        assert rows_total == total
        assert [TaskPublic.model_validate(r) for r in rows] == [TaskPublic.model_validate(t) for t in items]
        return [t.id for t in items], total

    assert ids() == ([soon.id, critical.id, low.id, late.id], 4)
    assert ids(offset=1, limit=2) == ([critical.id, low.id], 4)
    assert ids(offset=4) == ([], 4)
    assert ids(TaskFilter(asset="no-such-asset")) == ([], 0)
    assert ids(TaskFilter(states=[S.ASSIGNED])) == ([critical.id, late.id], 2)
    assert ids(TaskFilter(states=[S.RAISED, S.CANCELLED])) == ([soon.id, low.id], 2)
    assert ids(TaskFilter(assignee=people.technician.id)) == ([critical.id, late.id], 2)
    assert ids(TaskFilter(assignee=people.technician2.id)) == ([late.id], 1)
    assert ids(TaskFilter(priority=Priority.LOW)) == ([low.id], 1)
    assert ids(TaskFilter(room="room-a")) == ([critical.id, low.id], 2)
    assert ids(TaskFilter(asset="pump-f1")) == ([soon.id], 1)
    assert ids(TaskFilter(kind="corrective")) == ([critical.id, low.id], 2)
    assert ids(TaskFilter(due_before=same_due)) == ([soon.id], 1)
    assert ids(TaskFilter(room="room-b", states=[S.ASSIGNED])) == ([late.id], 1)
    listed = tasks.list_tasks(TaskFilter(assignee=people.technician2.id))[0][0]
    assert listed.assignee_ids == sorted([people.technician.id, people.technician2.id])  # loaded for routes
    with pytest.raises(InvalidInput):
        tasks.list_tasks(limit=0)
    with pytest.raises(InvalidInput):
        tasks.list_tasks(offset=-1)
    with pytest.raises(InvalidInput):
        tasks.list_rows(limit=501)


def test_escalation_levels_happen_once_each(tasks: TaskService, people: People, clock: FakeClock,
                                            sessions: sessionmaker[Session]) -> None:
    critical = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)  # respond in 30 min
    high = tasks.create_task(people.operator, TITLE, priority=Priority.HIGH)  # respond in 2 h

    def levels() -> list[tuple[int, SlaClock, EscalationLevel]]:
        return [(e.task_id, e.clock, e.level) for e in tasks.escalate()]

    assert levels() == []
    advance(clock, 24 * 60 - 1)
    assert levels() == []
    advance(clock, 1)  # 24 min: 80 % of the critical response window
    assert levels() == [(critical.id, RESPONSE, REMINDER)]
    assert levels() == []
    advance(clock, 6 * 60)  # 30 min: nobody took the critical task on
    assert levels() == [(critical.id, RESPONSE, SUPERVISOR)]
    assert levels() == []
    advance(clock, 30 * 60)  # 60 min: late by a whole window
    assert levels() == [(critical.id, RESPONSE, DIRECTOR)]
    advance(clock, 36 * 60)  # 96 min: 80 % of the high response window
    assert levels() == [(high.id, RESPONSE, REMINDER)]
    advance(clock, 96 * 60)  # 3 h 12 min: 80 % of the critical resolution window
    assert levels() == [(critical.id, RESOLUTION, REMINDER), (high.id, RESPONSE, SUPERVISOR)]
    advance(clock, 10 * 3600)
    assert levels() == [(critical.id, RESOLUTION, SUPERVISOR), (critical.id, RESOLUTION, DIRECTOR),
                        (high.id, RESPONSE, DIRECTOR)]
    advance(clock, 100 * 3600)
    assert levels() == [(high.id, RESOLUTION, REMINDER), (high.id, RESOLUTION, SUPERVISOR),
                        (high.id, RESOLUTION, DIRECTOR)]
    advance(clock, 100 * 3600)
    assert levels() == []
    row = tasks.get(critical.id)
    assert (row.response_escalation, row.resolution_escalation, row.escalation_level) == (3, 3, 3)
    with sessions() as session:
        rows = [r for r in audit.history(session, "task", critical.id) if r.action == "escalated"]
    assert [(r.actor, r.before, r.after) for r in rows] == [
        ("system", {"response_escalation": 0},
         {"response_escalation": 1, "clock": "response", "cycle": 1, "notify": "technician"}),
        ("system", {"response_escalation": 1},
         {"response_escalation": 2, "clock": "response", "cycle": 1, "notify": "supervisor"}),
        ("system", {"response_escalation": 2},
         {"response_escalation": 3, "clock": "response", "cycle": 1, "notify": "director"}),
        ("system", {"resolution_escalation": 0},
         {"resolution_escalation": 1, "clock": "resolution", "cycle": 1, "notify": "technician"}),
        ("system", {"resolution_escalation": 1},
         {"resolution_escalation": 2, "clock": "resolution", "cycle": 1, "notify": "supervisor"}),
        ("system", {"resolution_escalation": 2},
         {"resolution_escalation": 3, "clock": "resolution", "cycle": 1, "notify": "director"})]


def test_escalations_carry_what_the_notifier_needs(tasks: TaskService, people: People,
                                                   clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL, room="room-a",
                             asset="pump-d1")
    tasks.assign(task.id, people.supervisor, [people.technician.id])  # taken on: only resolution runs
    advance(clock, 4 * 3600 + 60)
    first, second = tasks.escalate()
    assert (first.level, first.notify, second.level, second.notify) == (
        EscalationLevel.REMINDER, Role.TECHNICIAN, EscalationLevel.SUPERVISOR, Role.SUPERVISOR)
    assert (first.clock, second.clock, first.cycle) == (SlaClock.RESOLUTION, SlaClock.RESOLUTION, 1)
    assert (first.task_id, first.priority, first.room, first.asset, first.assignees) == (
        task.id, Priority.CRITICAL, "room-a", "pump-d1", (people.technician.id,))
    assert first.title == TITLE
    assert first.due_at == task.due_at == task.resolution_due_at


def test_finished_tasks_do_not_escalate(tasks: TaskService, people: People, clock: FakeClock) -> None:
    done = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    tasks.start(done.id, people.technician)
    tasks.complete(done.id, people.technician, "cause", "action")
    cancelled = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    tasks.cancel(cancelled.id, people.supervisor, "duplicate")
    working = tasks.create_task(people.operator, TITLE, priority=Priority.CRITICAL)
    tasks.start(working.id, people.technician)
    advance(clock, 9 * 3600)
    assert {(e.task_id, e.clock, e.level) for e in tasks.escalate()} == {
        (working.id, SlaClock.RESOLUTION, EscalationLevel.REMINDER),
        (working.id, SlaClock.RESOLUTION, EscalationLevel.SUPERVISOR),
        (working.id, SlaClock.RESOLUTION, EscalationLevel.DIRECTOR)}
