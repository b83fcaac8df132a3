"""TaskService: tasks by hand, from alarms and from plans; lifecycle and role rules; SLA escalation; lists.

Every task belongs to an estate (`Task.estate`): tasks by hand name it, an alarm's task takes its
alarm's, a plan occurrence's its plan's (keyed `<estate>:<plan>:<occurrence>`), corrective work its
task's (keyed `<estate>:corrective:<task>:<item>`).

A task's record is never rewritten: each cycle of work (the first, one per repeat alarm that reopens a
finished task, one per send-back) is a row of `task_cycles`, and the task row holds the current one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from maintenance import audit, task_history
from maintenance.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound
from maintenance.estates import estate_key
from maintenance.models import (
    Alarm,
    Attachment,
    JsonDict,
    Task,
    TaskAssignee,
    TaskCycle,
    User,
    utc_from_epoch,
)
from maintenance.roles import has_role, require_any_role
from maintenance.task_flow import (
    ChecklistItem,
    CheckResult,
    Escalation,
    EscalationLevel,
    SlaPolicy,
    TaskAction,
    next_state,
    priority_for_severity,
)
from maintenance.task_history import FaultOccurrence, add_worker, blank_checklist, current_cycle, sync_cycle
from maintenance.task_list import (
    TaskFilter as TaskFilter,  # re-exported: callers filter lists through the service
)
from maintenance.task_list import count_tasks, task_conditions, task_order, task_rows
from maintenance.vocab import (
    CLOSED_TASK_STATES,
    OPEN_TASK_STATES,
    PRIORITY_RANK,
    CycleReason,
    Priority,
    Role,
    SlaClock,
    TaskKind,
    TaskState,
)
from maintenance.writes import writes_of
from pumpwatch.clock import Clock
from pumpwatch.site import Severity, Text

_MANAGERS = (Role.SUPERVISOR, Role.ADMIN)
MAX_PAGE = 500
ALL_TASKS = TaskFilter()
# Cleared on the task row when a new cycle begins; the cycle that ends keeps them in its own row.
_REPORT_FIELDS = ("fault_cause", "action_taken", "parts_replaced", "remarks", "technician_signed_by",
                  "technician_signed_at", "supervisor_signed_by", "supervisor_signed_at", "started_at",
                  "cancel_reason", "responded_at")
# Planned work and rounds: completed without a fault cause when no checklist item failed.
_ROUTINE_KINDS = (TaskKind.PLAN.value, TaskKind.INSPECTION.value)
ATTACHMENT_REQUIRED = "required"  # a checklist item's `attachment` when it needs a document before sign-off
_ATTACHMENT_MARK = re.compile(r"\[attachment:(\d+)\]")


def task_snapshot(task: Task) -> JsonDict:
    """Return the task's fields for the audit trail, assignees included."""
    return audit.snapshot(task) | {"assignees": task.assignee_ids}


def _text_required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"{what} is required")
    return value.strip()


class TaskService:
    """Every task change goes through here: checked against role and state, audited, committed."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock,
                 sla: SlaPolicy | None = None) -> None:
        self._sessions = session_factory
        self._clock = clock
        self.sla = sla or SlaPolicy()
        self.writes = writes_of(session_factory)  # moves on with every committed write of this process
        self.estate_slas: dict[str, SlaPolicy] = {}  # an estate's own limits (`sla:` of its site file)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The state database's sessions (read-only figures across tasks and alarms: the overview)."""
        return self._sessions

    def sla_of(self, estate: str) -> SlaPolicy:
        """The SLA limits of an estate's tasks: its own, else the service's."""
        return self.estate_slas.get(estate, self.sla)

    def now(self) -> datetime:
        """Return the injected clock's time as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    # -- reading -----------------------------------------------------------------------------------
    def get(self, task_id: int) -> Task:
        """Return one task with its cycles loaded; NotFound otherwise."""
        with self._sessions() as session:
            return _get_task(session, task_id)

    def list_tasks(self, filters: TaskFilter = ALL_TASKS, offset: int = 0,
                   limit: int = 50) -> tuple[list[Task], int]:
        """Return one page of tasks (soonest due first, then most urgent) and how many match in all."""
        _check_page(offset, limit)
        conditions = task_conditions(filters)
        query = select(Task).where(*conditions).order_by(*task_order()).offset(offset).limit(limit)
        with self._sessions() as session:
            return list(session.scalars(query)), count_tasks(session, conditions)

    def list_rows(self, filters: TaskFilter = ALL_TASKS, offset: int = 0,
                  limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """The same page as `list_tasks`, as plain rows (columns and `assignee_ids`) for the list route."""
        _check_page(offset, limit)
        with self._sessions() as session:
            return task_rows(session, filters, offset, limit)

    def cycles(self, task_id: int) -> list[TaskCycle]:
        """Return every cycle of work of one task, oldest first (the last is the current one); NotFound."""
        with self._sessions() as session:
            _get_task(session, task_id)
            return task_history.cycles_of(session, task_id)

    def completed_cycles(self, start: datetime, end: datetime) -> list[TaskCycle]:
        """Return the cycles of all tasks whose completion report was signed in [start, end)."""
        with self._sessions() as session:
            return task_history.completed_between(session, start, end)

    def verified_cycles(self, start: datetime, end: datetime) -> list[TaskCycle]:
        """Return the cycles of all tasks the supervisor signed off in [start, end)."""
        with self._sessions() as session:
            return task_history.verified_between(session, start, end)

    def fault_occurrences(self, start: datetime, end: datetime) -> list[FaultOccurrence]:
        """Return the fault occurrences on assets in [start, end): faults by hand, alarm tasks, repeats."""
        with self._sessions() as session:
            return task_history.fault_occurrences(session, start, end)

    # -- creating ----------------------------------------------------------------------------------
    def create_task(self, user: User, title: Text, kind: TaskKind = TaskKind.FAULT,
                    priority: Priority = Priority.NORMAL, asset: str | None = None, room: str | None = None,
                    description: str | None = None, due_at: datetime | None = None,
                    checklist: Sequence[ChecklistItem] = (), estate: str = "") -> Task:
        """Create a task by hand: anyone may report a fault; other kinds need a supervisor or admin.

        `due_at` is the resolution deadline (by default the priority's resolution limit from now);
        `estate` the estate its room and asset are in (the caller resolves it).
        """
        kind = TaskKind(kind)
        if kind in (TaskKind.ALARM, TaskKind.PLAN):
            raise InvalidInput(f"{kind.value} tasks are created by the alarm service and the scheduler")
        now = self.now()
        with self._sessions.begin() as session:
            actor = _actor(session, user)
            if kind is not TaskKind.FAULT:
                require_any_role(session, actor, _MANAGERS, now, f"creating a {kind.value} task")
            task = self._new_task(kind, title, priority, now, asset=asset, room=room, description=description,
                                  due_at=due_at, checklist=checklist, created_by=actor.id, estate=estate)
            return self._insert(session, task, audit.actor_id(actor), now)

    def create_from_plan(self, plan_key: str, title: Text, kind: TaskKind = TaskKind.PLAN,
                         priority: Priority = Priority.NORMAL, due_at: datetime | None = None,
                         asset: str | None = None, room: str | None = None, description: str | None = None,
                         checklist: Sequence[ChecklistItem] = (), estate: str = "") -> Task:
        """Create the task of one plan occurrence, or return the one that exists (idempotent by plan_key).

        The key names the estate (`<estate>:<plan>:<occurrence>`, `maintenance.estates.estate_key`).
        """
        plan_key = _text_required(plan_key, "plan_key")
        now = self.now()
        try:
            with self._sessions.begin() as session:
                existing = session.scalar(select(Task).where(Task.plan_key == plan_key))
                if existing is not None:
                    return existing
                task = self._new_task(TaskKind(kind), title, priority, now, asset=asset, room=room,
                                      description=description, due_at=due_at, checklist=checklist,
                                      estate=estate)
                task.plan_key = plan_key
                return self._insert(session, task, audit.SYSTEM, now)
        except IntegrityError:
            # Another scheduler replica created it between our read and our insert: theirs stands.
            with self._sessions() as session:
                existing = session.scalar(select(Task).where(Task.plan_key == plan_key))
                if existing is None:
                    raise
                return existing

    def open_for_alarm(self, session: Session, alarm: Alarm, now: datetime) -> Task:
        """Create the task of a newly raised alarm, in the caller's (the alarm service's) transaction."""
        title = Text(zh=alarm.message_zh, en=alarm.message_en)
        task = self._new_task(TaskKind.ALARM, title, priority_for_severity(Severity(alarm.severity)), now,
                              asset=alarm.asset, room=alarm.room,
                              description=f"{alarm.asset}/{alarm.alarm_type}", estate=alarm.estate)
        task.alarm_id = alarm.id
        return self._insert(session, task, audit.SYSTEM, now)

    def reopen_for_alarm(self, session: Session, task: Task, severity: Severity, now: datetime) -> Task:
        """Count a repeat of the task's alarm, in the caller's transaction.

        A task still being worked keeps its state and its cycle; a finished one (done, verified, cancelled)
        goes back to raised in a new cycle with fresh response and resolution deadlines, so the repeat fault
        is looked at again. The finished cycle keeps its report and signatures.
        """
        before = task_snapshot(task)
        task.repeat_count += 1
        task.priority = _higher(task.priority, priority_for_severity(severity))
        if TaskState(task.state) in CLOSED_TASK_STATES:
            task.state = next_state(task.state, TaskAction.REOPEN).value
            task.assignees.clear()
            self._open_cycle(task, CycleReason.REOPENED, now, opened_by=None)
        task.updated_at = now
        sync_cycle(task)
        session.flush()
        audit.record_change(session, audit.SYSTEM, "task", task.id, "reopened", before, task_snapshot(task),
                            now)
        return task

    def raise_priority(self, session: Session, task: Task, severity: Severity, now: datetime) -> bool:
        """Raise the task's priority to match an escalated alarm, in the caller's transaction."""
        wanted = priority_for_severity(severity)
        if PRIORITY_RANK[wanted] <= PRIORITY_RANK[Priority(task.priority)]:
            return False
        before = task_snapshot(task)
        task.priority = wanted.value
        if TaskState(task.state) in OPEN_TASK_STATES:
            # The tighter limits run from now, but never extend a deadline already set.
            response, resolution = self.sla_of(task.estate).deadlines(now, wanted)
            if task.responded_at is None:
                task.response_due_at = _earlier(task.response_due_at, response)
            task.resolution_due_at = _earlier(task.resolution_due_at, resolution)
            task.due_at = task.resolution_due_at
        task.updated_at = now
        sync_cycle(task)
        audit.record_change(session, audit.SYSTEM, "task", task.id, "priority_raised", before,
                            task_snapshot(task), now)
        return True

    def _new_task(self, kind: TaskKind, title: Text, priority: Priority, now: datetime, *, asset: str | None,
                  room: str | None, description: str | None = None, due_at: datetime | None = None,
                  checklist: Sequence[ChecklistItem] = (), created_by: int | None = None,
                  estate: str = "") -> Task:
        priority = Priority(priority)
        keys = [item.key for item in checklist]
        if len(set(keys)) != len(keys):
            raise InvalidInput("checklist keys must be distinct")
        task = Task(estate=estate, kind=kind.value, title_zh=_text_required(title.zh, "title (zh)"),
                    title_en=_text_required(title.en, "title (en)"), description=description, asset=asset,
                    room=room, priority=priority.value, state=TaskState.RAISED.value,
                    checklist=[dict(i.spec) | {"key": i.key, "zh": i.text.zh, "en": i.text.en, "result": None,
                                                "value": None, "note": None, "by": None, "at": None}
                               for i in checklist],
                    notes=[], parts_used=[], repeat_count=0, escalation_level=0, created_by=created_by,
                    created_at=now, updated_at=now, cycle=0)
        self._open_cycle(task, CycleReason.CREATED, now, opened_by=created_by, resolve_by=due_at)
        return task

    def _open_cycle(self, task: Task, reason: CycleReason, now: datetime, opened_by: int | None,
                    resolve_by: datetime | None = None) -> TaskCycle:
        """Begin the next cycle of work: the ended one keeps its row; the task row starts afresh."""
        if task.cycles:
            ending = sync_cycle(task)  # the ending cycle keeps the task's fields as they are now
            ending.closed_at = ending.closed_at or now
        response_due, resolution_due = self.sla_of(task.estate).deadlines(now, task.priority, resolve_by)
        for name in _REPORT_FIELDS:
            setattr(task, name, None)
        task.cycle += 1
        task.checklist = blank_checklist(task.checklist)
        task.parts_used = []
        task.response_due_at, task.resolution_due_at = response_due, resolution_due
        task.due_at = resolution_due
        task.response_escalation = task.resolution_escalation = task.escalation_level = EscalationLevel.NONE
        cycle = TaskCycle(number=task.cycle, reason=reason.value, opened_at=now, opened_by=opened_by,
                          notes=[], workers=[])
        task.cycles.append(cycle)
        sync_cycle(task)
        return cycle

    def _insert(self, session: Session, task: Task, actor: str, now: datetime) -> Task:
        session.add(task)
        session.flush()
        audit.record(session, actor, "task", task.id, "created", None, task_snapshot(task), now)
        return task

    # -- lifecycle ---------------------------------------------------------------------------------
    def assign(self, task_id: int, user: User, assignee_ids: Sequence[int]) -> Task:
        """Assign the task to technicians (supervisor or admin), replacing earlier assignees."""
        wanted = sorted(set(assignee_ids))
        if not wanted:
            raise InvalidInput("assign to at least one technician")

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            require_any_role(session, actor, _MANAGERS, now, "assigning a task")
            task.state = next_state(task.state, TaskAction.ASSIGN).value
            for user_id in wanted:
                assignee = session.get(User, user_id)
                if assignee is None or not has_role(session, assignee, Role.TECHNICIAN, now):
                    raise InvalidInput(f"user {user_id} is not an active technician")
            task.assignees = [TaskAssignee(user_id=user_id, assigned_at=now) for user_id in wanted]
            _respond(task, actor, now)

        return self._change(task_id, user, TaskAction.ASSIGN.value, change)

    def start(self, task_id: int, user: User) -> Task:
        """Start work: an assigned technician, a technician taking an unassigned task, or an admin."""

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            require_any_role(session, actor, (Role.TECHNICIAN, Role.ADMIN), now, "starting a task")
            task.state = next_state(task.state, TaskAction.START).value
            if not task.assignees:
                task.assignees = [TaskAssignee(user_id=actor.id, assigned_at=now)]  # takes it
            else:
                self._require_assignee(session, task, actor, now, "start the task")
            cycle = current_cycle(task)
            if task.started_at is None:
                task.started_at, cycle.started_by = now, actor.id
            add_worker(task, actor.id)
            _respond(task, actor, now)

        return self._change(task_id, user, TaskAction.START.value, change)

    def complete(self, task_id: int, user: User, fault_cause: str | None, action_taken: str,
                 parts_replaced: str | None = None, remarks: str | None = None) -> Task:
        """Hand in the completion report and sign it as the technician (an assignee or an admin).

        The fault cause is required, except on a planned task or an inspection round in which no checklist
        item failed: a routine round that found nothing wrong has no fault to explain.
        """
        action = _text_required(action_taken, "action taken")

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            require_any_role(session, actor, (Role.TECHNICIAN, Role.ADMIN), now, "completing a task")
            task.state = next_state(task.state, TaskAction.COMPLETE).value
            self._require_assignee(session, task, actor, now, "complete the task")
            open_items = [item["key"] for item in task.checklist if item.get("result") is None]
            if open_items:
                raise InvalidInput(f"checklist items without a result: {', '.join(open_items)}")
            routine = task.kind in _ROUTINE_KINDS and not any(_needs_follow_up(i) for i in task.checklist)
            cause = ((fault_cause or "").strip() or None) if routine else _text_required(fault_cause,
                                                                                         "fault cause")
            task.fault_cause, task.action_taken = cause, action
            task.parts_replaced = (parts_replaced or "").strip() or None
            task.remarks = (remarks or "").strip() or None
            task.technician_signed_by, task.technician_signed_at = actor.id, now
            add_worker(task, actor.id)

        return self._change(task_id, user, TaskAction.COMPLETE.value, change)

    def verify(self, task_id: int, user: User) -> Task:
        """Sign the cycle's record off as supervisor.

        The signer holds the supervisor role (or is an active deputy of a supervisor: an administrator's
        account alone is not enough), did no work on the task in this cycle, and every checklist item that
        asks for a document has one attached in this cycle.
        """

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            _require_supervisor(session, actor, now, "verifying a task")
            task.state = next_state(task.state, TaskAction.VERIFY).value
            _require_independent(task, actor, "sign it off")
            missing = _missing_documents(session, task)
            if missing:
                raise Conflict("the checklist asks for a document that is not attached yet: "
                               + "; ".join(missing) + " (upload it with checklist_key set to the item's key)")
            task.supervisor_signed_by, task.supervisor_signed_at = actor.id, now
            current_cycle(task).closed_at = now

        return self._change(task_id, user, TaskAction.VERIFY.value, change)

    def send_back(self, task_id: int, user: User, reason: str) -> Task:
        """Return a completed task for rework (a supervisor who did no work on it in this cycle).

        The completed cycle keeps its report and the technician's signature; the rework is a new cycle with
        fresh deadlines, its checklist to be answered again, and a new signature to give.
        """
        why = _text_required(reason, "a reason for sending back")

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            _require_supervisor(session, actor, now, "sending a task back")
            task.state = next_state(task.state, TaskAction.SEND_BACK).value
            _require_independent(task, actor, "send it back")
            ending = current_cycle(task)
            ending.sent_back_at, ending.sent_back_by, ending.sent_back_reason = now, actor.id, why
            self._open_cycle(task, CycleReason.SENT_BACK, now, opened_by=actor.id)
            task.sent_back_reason = why

        return self._change(task_id, user, TaskAction.SEND_BACK.value, change)

    def cancel(self, task_id: int, user: User, reason: str) -> Task:
        """Cancel a task that is not finished (supervisor or admin), with a reason."""
        why = _text_required(reason, "a reason for cancelling")

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            require_any_role(session, actor, _MANAGERS, now, "cancelling a task")
            task.state = next_state(task.state, TaskAction.CANCEL).value
            task.cancel_reason = why
            cycle = current_cycle(task)
            cycle.cancelled_at, cycle.cancelled_by, cycle.closed_at = now, actor.id, now

        return self._change(task_id, user, TaskAction.CANCEL.value, change)

    # -- the work record ---------------------------------------------------------------------------
    def record_check(self, task_id: int, user: User, key: str, result: CheckResult,
                     value: float | None = None, note: str | None = None) -> Task:
        """Record the result of one checklist item while the task is in progress (assignee or admin).

        Attachments of this cycle the note refers to (`[attachment:N]`) become that item's documents.
        """
        outcome = CheckResult(result)

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            self._require_working(session, task, actor, now, "record checklist results")
            if not any(item["key"] == key for item in task.checklist):
                raise InvalidInput(f"the checklist has no item {key!r}")
            # A new list, so the JSON column sees the change.
            task.checklist = [item | {"result": outcome.value, "value": value, "note": note, "by": actor.id,
                                      "at": now.isoformat()} if item["key"] == key else item
                              for item in task.checklist]
            add_worker(task, actor.id)
            _link_documents(session, task, key, note, actor, now)

        task = self._change(task_id, user, "checklist", change)
        item = next(i for i in task.checklist if i["key"] == key)
        if _needs_follow_up(item):
            self._corrective(task, item)
        return self.get(task.id)

    def compare_reading(self, task_id: int, user: User, key: str, sensor_values: dict[str, float]) -> Task:
        """Put the sensors' values next to a gauge reading and flag the item when they disagree."""
        def change(_session: Session, task: Task, _actor: User, _now: datetime) -> None:
            checklist = []
            for item in task.checklist:
                if item["key"] == key and item.get("value") is not None:
                    gauge = float(item["value"])
                    expected = item.get("expected") or [None, None]
                    span = (expected[1] - expected[0]) if None not in expected else abs(gauge)
                    tolerance = max(0.1 * span, 1e-6)
                    item = item | {"sensor_values": sensor_values, "disagrees": any(
                        abs(v - gauge) > tolerance for v in sensor_values.values())}
                checklist.append(item)
            task.checklist = checklist

        return self._change(task_id, user, "gauge_compared", change)

    def _corrective(self, task: Task, item: JsonDict) -> Task:
        """The follow-up task of a failed checklist item (once per task and item), linked in both notes.

        Its title and description are written in both languages (Chinese line first), from the round's title
        and the item's text; the technician's note is quoted as typed.
        """
        zh, en = str(item.get("zh") or item["key"]), str(item.get("en") or item["key"])
        reading = ""
        if item.get("value") is not None:
            reading = " ".join(str(p) for p in (item["value"], item.get("unit")) if p)
        urgent = task.priority in (Priority.CRITICAL.value, Priority.HIGH.value)
        note = str(item.get("note") or "").strip()
        origin_zh = f"来自任务 #{task.id}（{task.title_zh}）的检查项「{zh}」" + (
            f"：{note}" if note else "。")
        origin_en = f"From task #{task.id} ({task.title_en}), item “{en}”" + (f": {note}" if note else ".")
        return self.create_from_plan(
            estate_key(task.estate, f"corrective:{task.id}:{item['key']}"),
            Text(zh=f"整改：{zh}" + (f"（{reading}）" if reading else ""),
                 en=f"Fix: {en}" + (f" ({reading})" if reading else "")),
            TaskKind.CORRECTIVE, Priority.HIGH if urgent else Priority.NORMAL, asset=task.asset,
            room=task.room, description=f"{origin_zh}\n{origin_en}", estate=task.estate)

    def add_note(self, task_id: int, user: User, text: str) -> Task:
        """Add a note to the task's record (any active user, any state); it belongs to the current cycle."""
        body = _text_required(text, "note text")

        def change(_session: Session, task: Task, actor: User, now: datetime) -> None:
            entry = {"text": body, "by": actor.id, "at": now.isoformat(), "cycle": task.cycle}
            task.notes = [*task.notes, entry]
            cycle = current_cycle(task)
            cycle.notes = [*cycle.notes, entry]

        return self._change(task_id, user, "note", change)

    def add_part(self, task_id: int, user: User, part: str, quantity: float, unit: str = "pcs") -> Task:
        """Record a part used while the task is in progress (assignee or admin)."""
        name = _text_required(part, "part name")
        if not quantity > 0:
            raise InvalidInput("quantity must be positive")

        def change(session: Session, task: Task, actor: User, now: datetime) -> None:
            self._require_working(session, task, actor, now, "record parts used")
            task.parts_used = [*task.parts_used, {"part": name, "quantity": quantity, "unit": unit,
                                                  "by": actor.id, "at": now.isoformat()}]
            add_worker(task, actor.id)

        return self._change(task_id, user, "part", change)

    def add_attachment(self, task_id: int, user: User, filename: str, content_type: str, size: int,
                       sha256: str, stored_path: str, checklist_key: str | None = None) -> Attachment:
        """Record a file the routes stored for the task (any active user), in the task's current cycle.

        `checklist_key` links it to the checklist item it documents (InvalidInput if there is no such item).
        """
        now = self.now()
        with self._sessions.begin() as session:
            actor = _actor(session, user)
            task = _get_task(session, task_id)
            key = (checklist_key or "").strip() or None
            if key is not None and not any(item.get("key") == key for item in task.checklist):
                raise InvalidInput(f"the checklist has no item {key!r} to attach a document to")
            row = Attachment(task_id=task.id, filename=_text_required(filename, "filename"),
                             content_type=content_type, size=size, sha256=sha256, stored_path=stored_path,
                             uploaded_by=actor.id, uploaded_at=now, checklist_key=key, cycle=task.cycle)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), "attachment", row.id, "created", None,
                         audit.snapshot(row), now)
            return row

    def get_attachment(self, attachment_id: int) -> Attachment:
        """Return one attachment's record; NotFound otherwise."""
        with self._sessions() as session:
            row = session.get(Attachment, attachment_id)
            if row is None:
                raise NotFound("attachment", attachment_id)
            return row

    def attachments(self, task_id: int) -> list[Attachment]:
        """Return the attachments of a task, oldest first."""
        with self._sessions() as session:
            return list(session.scalars(select(Attachment).where(Attachment.task_id == task_id)
                                        .order_by(Attachment.id)))

    # -- SLA ---------------------------------------------------------------------------------------
    def escalate(self, now: datetime | None = None) -> list[Escalation]:
        """Move late open tasks up on each clock (reminder, supervisor, director), audited.

        The response clock runs until someone takes the task on (assigns it, or starts it); the resolution
        clock until the technician signs the completion report. Each step of each clock happens once per
        task and cycle.
        """
        now = now or self.now()
        escalations: list[Escalation] = []
        with self._sessions.begin() as session:
            late_response = and_(Task.responded_at.is_(None), Task.response_due_at.is_not(None),
                                 Task.response_escalation < EscalationLevel.DIRECTOR)
            late_resolution = and_(Task.resolution_due_at.is_not(None),
                                   Task.resolution_escalation < EscalationLevel.DIRECTOR)
            # skip_locked: a task another replica is escalating right now is its to report.
            query = (select(Task, TaskCycle)
                     .outerjoin(TaskCycle, and_(TaskCycle.task_id == Task.id, TaskCycle.number == Task.cycle))
                     .where(Task.state.in_([s.value for s in OPEN_TASK_STATES]),
                            or_(late_response, late_resolution))
                     .order_by(Task.id).with_for_update(skip_locked=True, of=Task))
            for task, found in session.execute(query).all():
                cycle = found or current_cycle(task)
                steps = []
                if task.responded_at is None:  # once taken on, the response clock has stopped
                    steps += self._climb(session, task, cycle, SlaClock.RESPONSE, now)
                steps += self._climb(session, task, cycle, SlaClock.RESOLUTION, now)
                if not steps:
                    continue
                task.escalation_level = max(task.response_escalation, task.resolution_escalation)
                task.updated_at = now
                sync_cycle(task)
                escalations += steps
        return escalations

    def _climb(self, session: Session, task: Task, cycle: TaskCycle, clock: SlaClock,
               now: datetime) -> list[Escalation]:
        """The steps one clock of the task has newly reached, recorded on the task and in the audit trail."""
        field = f"{clock.value}_escalation"
        due: datetime | None = getattr(task, f"{clock.value}_due_at")
        current: int = getattr(task, field)
        if due is None:
            return []
        reached = self.sla_of(task.estate).level_at(now, cycle.opened_at, due, clock, task.priority)
        steps = []
        for level in range(current + 1, reached + 1):
            step = EscalationLevel(level)
            notify = step.notify
            audit.record(session, audit.SYSTEM, "task", task.id, "escalated", {field: level - 1},
                         {field: level, "clock": clock.value, "cycle": task.cycle,
                          "notify": notify.value if notify is not None else None}, now)
            steps.append(Escalation(
                task_id=task.id, level=step, priority=Priority(task.priority), due_at=due,
                title=Text(zh=task.title_zh, en=task.title_en), room=task.room, asset=task.asset,
                assignees=tuple(task.assignee_ids), clock=clock, cycle=task.cycle, estate=task.estate))
        if reached > current:
            setattr(task, field, int(reached))
        return steps

    # -- plumbing ----------------------------------------------------------------------------------
    def _change(self, task_id: int, user: User, action: str,
                change: Callable[[Session, Task, User, datetime], None]) -> Task:
        now = self.now()
        with self._sessions.begin() as session:
            actor = _actor(session, user)
            task = _get_task(session, task_id, for_update=True)
            before = task_snapshot(task)
            change(session, task, actor, now)
            task.updated_at = now
            sync_cycle(task)
            session.flush()
            audit.record_change(session, audit.actor_id(actor), "task", task.id, action, before,
                                task_snapshot(task), now)
            return task

    def _require_assignee(self, session: Session, task: Task, actor: User, now: datetime, doing: str) -> None:
        if has_role(session, actor, Role.ADMIN, now):
            return
        if actor.id not in task.assignee_ids or not has_role(session, actor, Role.TECHNICIAN, now):
            raise Forbidden(f"only a technician assigned to the task (or an admin) may {doing}")

    def _require_working(self, session: Session, task: Task, actor: User, now: datetime, doing: str) -> None:
        if task.state != TaskState.IN_PROGRESS:
            raise IllegalTransition(task.state, doing)
        self._require_assignee(session, task, actor, now, doing)


def _respond(task: Task, actor: User, now: datetime) -> None:
    """The first assignment or start of a cycle answers its response clock."""
    if task.responded_at is None:
        task.responded_at = now
        current_cycle(task).responded_by = actor.id


def _require_supervisor(session: Session, actor: User, now: datetime, doing: str) -> None:
    """The supervisor's signature needs the supervisor role, held or as an active deputy of a supervisor."""
    if not has_role(session, actor, Role.SUPERVISOR, now):
        raise Forbidden(f"{doing} needs the supervisor role (held, or as an active deputy of a supervisor); "
                        "administering the system does not make someone the reviewing supervisor")


def _require_independent(task: Task, actor: User, doing: str) -> None:
    """Whoever reviews a cycle did none of its work."""
    done = task_history.work_done_by(task, actor.id)
    if done is not None:
        raise Forbidden(f"you may not {doing}: the supervisor's signature must come from someone other than "
                        f"the people who did the work, and in this cycle you {done}")


def _missing_documents(session: Session, task: Task) -> list[str]:
    """The checklist items that ask for a document and have none attached in the current cycle."""
    wanted = [item for item in task.checklist if item.get("attachment") == ATTACHMENT_REQUIRED]
    if not wanted:
        return []
    linked = set(session.scalars(select(Attachment.checklist_key).where(
        Attachment.task_id == task.id, Attachment.cycle == task.cycle,
        Attachment.checklist_key.is_not(None))))
    return [f"{item['key']!r} ({item.get('en') or item['key']} / {item.get('zh') or item['key']})"
            for item in wanted if item["key"] not in linked]


def _link_documents(session: Session, task: Task, key: str, note: str | None, actor: User,
                    now: datetime) -> None:
    """Link the attachments a checklist note refers to (`[attachment:N]`) to that item, in this cycle."""
    ids = {int(found) for found in _ATTACHMENT_MARK.findall(note or "")}
    if not ids:
        return
    for row in session.scalars(select(Attachment).where(
            Attachment.id.in_(ids), Attachment.task_id == task.id, Attachment.cycle == task.cycle,
            Attachment.checklist_key.is_(None))):
        row.checklist_key = key
        audit.record(session, audit.actor_id(actor), "attachment", row.id, "linked", {"checklist_key": None},
                     {"checklist_key": key}, now)


def _needs_follow_up(item: JsonDict) -> bool:
    """A failed item, or a number outside its expected range."""
    if item.get("result") == CheckResult.FAULT.value:
        return True
    value, low, high = item.get("value"), item.get("min"), item.get("max")
    if value is None:
        return False
    return (low is not None and value < low) or (high is not None and value > high)


def _higher(current: str, wanted: Priority) -> str:
    return wanted.value if PRIORITY_RANK[wanted] > PRIORITY_RANK[Priority(current)] else current


def _earlier(current: datetime | None, wanted: datetime) -> datetime:
    return wanted if current is None else min(current, wanted)


def _check_page(offset: int, limit: int) -> None:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")


def _actor(session: Session, user: User) -> User:
    actor = session.get(User, user.id)
    if actor is None or not actor.active:
        raise Forbidden("the account is unknown or inactive")
    return actor


def _get_task(session: Session, task_id: int, for_update: bool = False) -> Task:
    task = session.get(Task, task_id, with_for_update=for_update, options=[selectinload(Task.cycles)])
    if task is None:
        raise NotFound("task", task_id)
    return task
