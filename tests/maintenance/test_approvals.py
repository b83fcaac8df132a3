"""Access and change requests on SQLite and PostgreSQL: two approvals, escort, window, consent first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.approvals import ApprovalService
from maintenance.auth import AuthService
from maintenance.errors import Conflict, Forbidden, InvalidInput
from maintenance.models import AuditLog, Task
from maintenance.tasks import TaskService
from maintenance.vocab import Role
from pumpwatch.clock import FakeClock
from tests.support.state import People, advance, clock_time


@pytest.fixture
def approvals(sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService) -> ApprovalService:
    return ApprovalService(sessions, clock, tasks)


def visit(approvals: ApprovalService, people: People, clock: FakeClock, hours: float = 4) -> int:
    start = clock_time(clock) + timedelta(hours=1)
    row = approvals.request_access(people.operator, "Li Wei", "meter reading", "dom", start,
                                   start + timedelta(hours=hours), people.technician.id, "Water Board")
    return row.id


def test_one_approval_is_not_enough_and_either_order_works(approvals: ApprovalService, people: People,
                                                           clock: FakeClock) -> None:
    first = visit(approvals, people, clock)
    assert approvals.approve_access(first, people.supervisor).state == "pending"
    advance(clock, 3700)
    with pytest.raises(Conflict, match="approved request"):
        approvals.log_entry(first, people.technician)  # one approval: no entry
    assert approvals.approve_access(first, people.director).state == "approved"

    second = visit(approvals, people, clock)
    assert approvals.approve_access(second, people.director).state == "pending"
    assert approvals.approve_access(second, people.supervisor).state == "approved"


def test_the_two_approvals_come_from_two_people_even_with_a_deputy(
        approvals: ApprovalService, auth: AuthService, people: People, clock: FakeClock) -> None:
    # The director deputises for the absent supervisor: still only one of the two approvals.
    now = clock_time(clock)
    auth.add_deputy(people.supervisor.id, people.director.id, Role.SUPERVISOR, now, now + timedelta(days=1),
                    people.admin)
    request = visit(approvals, people, clock)
    approvals.approve_access(request, people.director)
    with pytest.raises(Forbidden, match="two different people"):
        approvals.approve_access(request, people.director)
    # A technician deputising for the supervisor gives the second approval.
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, now,
                    now + timedelta(days=1), people.admin)
    assert approvals.approve_access(request, people.technician2).state == "approved"


def test_only_supervisor_and_director_approve(approvals: ApprovalService, people: People,
                                             clock: FakeClock) -> None:
    request = visit(approvals, people, clock)
    for someone in (people.operator, people.technician, people.admin):
        with pytest.raises(Forbidden):
            approvals.approve_access(request, someone)


def test_entry_inside_the_window_by_the_escort_then_exit_closes(approvals: ApprovalService, people: People,
                                                               clock: FakeClock) -> None:
    request = visit(approvals, people, clock)
    approvals.approve_access(request, people.supervisor)
    approvals.approve_access(request, people.director)
    with pytest.raises(Conflict, match="window"):
        approvals.log_entry(request, people.technician)  # an hour early
    advance(clock, 3700)
    with pytest.raises(Forbidden):
        approvals.log_entry(request, people.operator)  # not the escort, not a gatekeeper
    entered = approvals.log_entry(request, people.technician)
    assert entered.entered_at is not None
    advance(clock, 1800)
    closed = approvals.log_exit(request, people.technician)
    assert closed.state == "closed"
    assert closed.exited_at is not None


def test_requests_expire_when_their_window_passes(approvals: ApprovalService, people: People,
                                                  clock: FakeClock, sessions: sessionmaker[Session]) -> None:
    pending = visit(approvals, people, clock, hours=1)
    approved = visit(approvals, people, clock, hours=1)
    approvals.approve_access(approved, people.supervisor)
    approvals.approve_access(approved, people.director)
    advance(clock, 3 * 3600)
    assert sorted(approvals.expire()) == sorted([pending, approved])
    assert approvals.expire() == []
    with pytest.raises(Conflict):
        approvals.log_entry(approved, people.technician)
    with sessions() as session:
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.entity == "access_request",
                                                                     AuditLog.entity_id == str(approved))
                                     .order_by(AuditLog.id)))
    assert actions == ["requested", "approved", "approved", "expired"]


def test_bad_requests_are_refused(approvals: ApprovalService, people: People, clock: FakeClock) -> None:
    start = clock_time(clock) + timedelta(hours=1)
    with pytest.raises(InvalidInput):
        approvals.request_access(people.operator, "X", "p", "dom", start, start, people.technician.id)
    with pytest.raises(InvalidInput, match="31 days"):
        approvals.request_access(people.operator, "X", "p", "dom", start, start + timedelta(days=40),
                                 people.technician.id)
    with pytest.raises(InvalidInput, match="escort"):
        approvals.request_access(people.operator, "X", "p", "dom", start, start + timedelta(hours=1), 99999)


def test_a_change_gets_its_work_task_only_with_the_supervisors_consent(
        approvals: ApprovalService, people: People, sessions: sessionmaker[Session]) -> None:
    change = approvals.request_change(people.technician, "New contactor", "Replace K1 with a 32 A contactor",
                                      room="dom", asset="dom-cabinet")
    with sessions() as session:
        assert session.scalar(select(Task).where(Task.kind == "change")) is None
    with pytest.raises(Forbidden):
        approvals.decide_change(change.id, people.technician, True)
    with pytest.raises(Forbidden):
        approvals.decide_change(change.id, people.director, True)
    approved = approvals.decide_change(change.id, people.supervisor, True)
    assert approved.state == "approved"
    assert approved.task_id is not None
    with sessions() as session:
        task = session.get(Task, approved.task_id)
        assert task is not None
        assert task.kind == "change"
        assert task.asset == "dom-cabinet"
    with pytest.raises(Conflict):
        approvals.decide_change(change.id, people.supervisor, True)
    refused = approvals.request_change(people.technician, "Rewire", "Move the panel")
    with pytest.raises(InvalidInput):
        approvals.decide_change(refused.id, people.supervisor, False)
    assert approvals.decide_change(refused.id, people.supervisor, False, "not safe").task_id is None


# --- separation of duties: no one approves what they asked for ---------------------------------------


def test_a_supervisor_does_not_approve_an_access_request_they_filed(
        approvals: ApprovalService, people: People, clock: FakeClock) -> None:
    start = clock_time(clock) + timedelta(hours=1)
    own = approvals.request_access(people.supervisor, "Li Wei", "meter reading", "dom", start,
                                   start + timedelta(hours=2), people.technician.id)
    with pytest.raises(Forbidden, match="filed"):
        approvals.approve_access(own.id, people.supervisor)
    # The director's approval and another supervisor's make it whole.
    approvals.approve_access(own.id, people.director)
    assert approvals.approve_access(own.id, people.supervisor2).state == "approved"


def test_a_deputy_does_not_approve_a_request_they_filed_nor_one_their_principal_filed(
        approvals: ApprovalService, auth: AuthService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    # The technician deputises for the supervisor and files a request: not theirs to approve.
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, now,
                    now + timedelta(days=1), people.admin)
    start = now + timedelta(hours=1)
    filed = approvals.request_access(people.technician2, "Li Wei", "meter reading", "dom", start,
                                     start + timedelta(hours=2), people.technician.id)
    with pytest.raises(Forbidden, match="filed"):
        approvals.approve_access(filed.id, people.technician2)
    # The supervisor files one: their deputy acts in their name, so cannot approve it either.
    theirs = approvals.request_access(people.supervisor, "Li Wei", "meter reading", "dom", start,
                                      start + timedelta(hours=2), people.technician.id)
    with pytest.raises(Forbidden, match="deputy"):
        approvals.approve_access(theirs.id, people.technician2)
    change = approvals.request_change(people.supervisor, "Rewire", "Move the panel")
    with pytest.raises(Forbidden, match="deputy"):
        approvals.decide_change(change.id, people.technician2, True)


def test_a_supervisor_does_not_approve_a_change_they_asked_for(approvals: ApprovalService,
                                                                people: People) -> None:
    change = approvals.request_change(people.supervisor, "New contactor", "Replace K1")
    with pytest.raises(Forbidden, match="filed"):
        approvals.decide_change(change.id, people.supervisor, True)
    assert approvals.decide_change(change.id, people.supervisor2, True).state == "approved"


def test_an_admin_alone_does_not_decide_a_change(approvals: ApprovalService, auth: AuthService,
                                                 people: People, clock: FakeClock) -> None:
    change = approvals.request_change(people.technician, "New contactor", "Replace K1")
    with pytest.raises(Forbidden, match="supervisor"):
        approvals.decide_change(change.id, people.admin, True)
    with pytest.raises(Forbidden, match="supervisor"):
        approvals.decide_change(change.id, people.admin, False, "no")
    # An admin deputising for the supervisor decides as the supervisor's deputy.
    now = clock_time(clock)
    auth.add_deputy(people.supervisor.id, people.admin.id, Role.SUPERVISOR, now, now + timedelta(days=1),
                    people.admin)
    assert approvals.decide_change(change.id, people.admin, True).decided_by == people.admin.id


def test_only_the_escort_confirms_entry_and_exit(approvals: ApprovalService, people: People,
                                                 clock: FakeClock) -> None:
    request = visit(approvals, people, clock)  # escorted by the technician
    approvals.approve_access(request, people.supervisor)
    approvals.approve_access(request, people.director)
    advance(clock, 3700)
    for someone in (people.technician2, people.supervisor, people.admin, people.operator):
        with pytest.raises(Forbidden, match="escort"):
            approvals.log_entry(request, someone)
    approvals.log_entry(request, people.technician)
    for someone in (people.technician2, people.supervisor):
        with pytest.raises(Forbidden, match="escort"):
            approvals.log_exit(request, someone)
    assert approvals.log_exit(request, people.technician).state == "closed"


def test_the_deputy_escort_named_on_the_request_may_confirm(
        approvals: ApprovalService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    start = clock_time(clock) + timedelta(minutes=5)
    row = approvals.request_access(people.operator, "Li Wei", "meter reading", "dom", start,
                                   start + timedelta(hours=2), people.technician.id,
                                   escort_deputy_id=people.technician2.id)
    assert row.escort_deputy_id == people.technician2.id
    approvals.approve_access(row.id, people.supervisor)
    approvals.approve_access(row.id, people.director)
    advance(clock, 600)
    with pytest.raises(Forbidden, match="escort"):
        approvals.log_entry(row.id, people.supervisor)
    approvals.log_entry(row.id, people.technician2)  # the escort is away: the named deputy comes along
    approvals.log_exit(row.id, people.technician)
    with sessions() as session:
        actors = list(session.scalars(select(AuditLog.actor).where(
            AuditLog.entity == "access_request", AuditLog.entity_id == str(row.id),
            AuditLog.action.in_(("entered", "exited"))).order_by(AuditLog.id)))
    assert actors == [str(people.technician2.id), str(people.technician.id)]


def test_the_deputy_escort_is_staff_and_not_the_escort(approvals: ApprovalService, people: People,
                                                       clock: FakeClock) -> None:
    start = clock_time(clock) + timedelta(hours=1)
    with pytest.raises(InvalidInput, match="deputy escort"):
        approvals.request_access(people.operator, "X", "p", "dom", start, start + timedelta(hours=1),
                                 people.technician.id, escort_deputy_id=people.technician.id)
    with pytest.raises(InvalidInput, match="deputy escort"):
        approvals.request_access(people.operator, "X", "p", "dom", start, start + timedelta(hours=1),
                                 people.technician.id, escort_deputy_id=99999)
