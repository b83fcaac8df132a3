"""Separation of duties on tasks, and documents a checklist item asks for before sign-off (both databases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.auth import AuthService
from maintenance.errors import Conflict, Forbidden, InvalidInput
from maintenance.models import Task, User
from maintenance.task_flow import ChecklistItem, CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskKind
from pumpwatch.clock import FakeClock
from pumpwatch.site import Text
from tests.support.state import PASSWORD, People, clock_time

TITLE = Text(zh="水箱清洗消毒", en="Tank cleaning and disinfection")
CHECKLIST = [ChecklistItem("drain", Text(zh="排空并清洗水箱", en="Tank drained and cleaned")),
             ChecklistItem("water-report", Text(zh="水质检测报告", en="Water-quality test report"))]
Work = Callable[[TaskService, int, User], object]

# What a co-assignee may have done in the cycle: each alone bars them from reviewing it.
WORK: dict[str, Work] = {
    "started": lambda tasks, task_id, who: tasks.start(task_id, who),
    "checked": lambda tasks, task_id, who: tasks.record_check(task_id, who, "drain", CheckResult.OK),
    "fitted a part": lambda tasks, task_id, who: tasks.add_part(task_id, who, "float valve", 1),
}


@pytest.fixture
def lead(auth: AuthService) -> User:
    """A lead technician who also holds the supervisor role."""
    return auth.create_user("lee", PASSWORD, roles=["technician", "supervisor"], display_name="Lee")


def _inspection(tasks: TaskService, people: People, *assignees: User) -> int:
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=CHECKLIST[:1])
    tasks.assign(task.id, people.supervisor, [a.id for a in assignees])
    return task.id


def _finish(tasks: TaskService, task_id: int, technician: User) -> None:
    """The technician does what is left and signs."""
    task = tasks.get(task_id)
    if task.state != "in_progress":
        tasks.start(task_id, technician)
    for item in tasks.get(task_id).checklist:
        if item["result"] is None:
            tasks.record_check(task_id, technician, item["key"], CheckResult.OK)
    tasks.complete(task_id, technician, "sediment", "drained and flushed")


@pytest.mark.parametrize("did", list(WORK))
@pytest.mark.parametrize("review", ["verify", "send_back"])
def test_a_co_assignee_who_worked_in_the_cycle_may_not_review_it(
        did: str, review: str, tasks: TaskService, people: People, lead: User) -> None:
    task_id = _inspection(tasks, people, lead, people.technician)
    if did != "started":
        tasks.start(task_id, people.technician)
    WORK[did](tasks, task_id, lead)
    _finish(tasks, task_id, people.technician)  # the other assignee signs
    reviews = {"verify": lambda: tasks.verify(task_id, lead),
               "send_back": lambda: tasks.send_back(task_id, lead, "redo")}
    with pytest.raises(Forbidden, match="someone other than the people who did the work") as err:
        reviews[review]()
    assert {"started": "started the work", "checked": "checklist item 'drain'",
            "fitted a part": "recorded a part used"}[did] in str(err.value)
    assert tasks.get(task_id).state == "done"
    assert tasks.verify(task_id, people.supervisor).supervisor_signed_by == people.supervisor.id


def test_a_supervisor_assignee_who_did_nothing_may_verify(tasks: TaskService, people: People,
                                                          lead: User) -> None:
    task_id = _inspection(tasks, people, lead, people.technician)
    _finish(tasks, task_id, people.technician)
    assert tasks.verify(task_id, lead).supervisor_signed_by == lead.id  # assigned, but did no work


def test_the_technician_who_signed_may_not_review(tasks: TaskService, people: People, lead: User) -> None:
    task_id = _inspection(tasks, people, lead)
    _finish(tasks, task_id, lead)
    with pytest.raises(Forbidden, match="signed the completion report"):
        tasks.verify(task_id, lead)
    with pytest.raises(Forbidden, match="signed the completion report"):
        tasks.send_back(task_id, lead, "redo")


def test_an_admin_without_the_supervisor_role_may_not_review(tasks: TaskService, auth: AuthService,
                                                             people: People) -> None:
    task_id = _inspection(tasks, people, people.technician)
    _finish(tasks, task_id, people.technician)
    with pytest.raises(Forbidden, match="supervisor role"):
        tasks.verify(task_id, people.admin)
    with pytest.raises(Forbidden, match="supervisor role"):
        tasks.send_back(task_id, people.admin, "redo")
    boss = auth.create_user("bea", PASSWORD, roles=["admin", "supervisor"])
    assert tasks.verify(task_id, boss).supervisor_signed_by == boss.id  # an admin who is a supervisor too
    other = tasks.create_task(people.operator, TITLE)
    assert tasks.cancel(other.id, people.admin, "duplicate").state == "cancelled"  # admins still administer


def test_a_deputy_of_a_supervisor_may_review_unless_they_worked(tasks: TaskService, auth: AuthService,
                                                                people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    auth.add_deputy(people.supervisor.id, people.technician2.id, Role.SUPERVISOR, now,
                    now + timedelta(days=1), actor=people.admin)
    worked = _inspection(tasks, people, people.technician, people.technician2)
    tasks.start(worked, people.technician2)
    _finish(tasks, worked, people.technician)
    with pytest.raises(Forbidden, match="started the work"):
        tasks.verify(worked, people.technician2)
    clean = _inspection(tasks, people, people.technician)
    _finish(tasks, clean, people.technician)
    assert tasks.send_back(clean, people.technician2, "photo missing").state == "sent_back"


def test_work_in_an_earlier_cycle_does_not_bar_reviewing_a_later_one(tasks: TaskService, people: People,
                                                                     lead: User) -> None:
    task_id = _inspection(tasks, people, lead, people.technician)
    tasks.start(task_id, lead)  # lead works in cycle 1 ...
    _finish(tasks, task_id, people.technician)
    tasks.send_back(task_id, people.supervisor, "flush again")
    tasks.assign(task_id, people.supervisor, [people.technician.id])
    _finish(tasks, task_id, people.technician)  # ... but not in cycle 2
    assert tasks.verify(task_id, lead).supervisor_signed_by == lead.id
    first, second = tasks.cycles(task_id)
    assert lead.id in first.workers
    assert lead.id not in second.workers


# -- documents a checklist item asks for -------------------------------------------------------------------
def _cleaning(tasks: TaskService, people: People, sessions: sessionmaker[Session]) -> int:
    """A tank cleaning whose water-quality report item needs a document (as the scheduler sets it)."""
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=CHECKLIST)
    with sessions.begin() as session:
        row = session.get(Task, task.id)
        assert row is not None
        row.checklist = [item | {"attachment": "required"} if item["key"] == "water-report" else item
                         for item in row.checklist]
    tasks.assign(task.id, people.supervisor, [people.technician.id])
    return task.id


def _attach(tasks: TaskService, task_id: int, who: User, key: str | None) -> int:
    row = tasks.add_attachment(task_id, who, "report.pdf", "application/pdf", 1024, "ab" * 32,
                               "/var/lib/pumpwatch/attachments/report.pdf", checklist_key=key)
    return row.id


def test_verify_is_refused_until_the_required_document_is_attached_to_its_item(
        tasks: TaskService, people: People, sessions: sessionmaker[Session]) -> None:
    task_id = _cleaning(tasks, people, sessions)
    _finish(tasks, task_id, people.technician)
    with pytest.raises(Conflict, match="'water-report' \\(Water-quality test report / 水质检测报告\\)"):
        tasks.verify(task_id, people.supervisor)
    _attach(tasks, task_id, people.technician, None)  # a file, but not linked to the item
    _attach(tasks, task_id, people.technician, "drain")  # linked to another item
    with pytest.raises(Conflict, match="water-report"):
        tasks.verify(task_id, people.supervisor)
    assert tasks.get(task_id).state == "done"
    linked = _attach(tasks, task_id, people.technician, "water-report")
    assert tasks.get_attachment(linked).checklist_key == "water-report"
    assert tasks.verify(task_id, people.supervisor).state == "verified"


def test_a_document_from_an_earlier_cycle_does_not_count(tasks: TaskService, people: People,
                                                         sessions: sessionmaker[Session]) -> None:
    task_id = _cleaning(tasks, people, sessions)
    tasks.start(task_id, people.technician)
    old = _attach(tasks, task_id, people.technician, "water-report")
    _finish(tasks, task_id, people.technician)
    tasks.send_back(task_id, people.supervisor, "the report is for another tank")
    _finish(tasks, task_id, people.technician)
    with pytest.raises(Conflict, match="water-report"):
        tasks.verify(task_id, people.supervisor)
    assert (tasks.get_attachment(old).cycle, tasks.get(task_id).cycle) == (1, 2)
    _attach(tasks, task_id, people.technician, "water-report")
    assert tasks.verify(task_id, people.supervisor).state == "verified"


def test_a_document_named_in_the_items_note_is_linked_to_it(tasks: TaskService, people: People,
                                                            sessions: sessionmaker[Session]) -> None:
    task_id = _cleaning(tasks, people, sessions)
    tasks.start(task_id, people.technician)
    photo = _attach(tasks, task_id, people.technician, None)  # the app uploads first, then records the item
    tasks.record_check(task_id, people.technician, "water-report", CheckResult.OK,
                       note=f"report from the lab [attachment:{photo}]")
    assert tasks.get_attachment(photo).checklist_key == "water-report"
    with sessions() as session:
        assert [r.action for r in audit.history(session, "attachment", photo)] == ["created", "linked"]
    _finish(tasks, task_id, people.technician)
    assert tasks.verify(task_id, people.supervisor).state == "verified"


def test_an_attachment_names_an_item_of_the_checklist(tasks: TaskService, people: People,
                                                      sessions: sessionmaker[Session]) -> None:
    task_id = _cleaning(tasks, people, sessions)
    with pytest.raises(InvalidInput, match="no item 'lab-report'"):
        _attach(tasks, task_id, people.technician, "lab-report")
    assert tasks.attachments(task_id) == []
