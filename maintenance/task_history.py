"""A task's cycles of work: keeping the current one in step with the task row, and reading them back.

The task row holds the current cycle's fields (lists and the UI read them); `task_cycles` keeps every
cycle, the current one included, and nothing of a closed cycle is ever changed. The readers below are
what the monthly report needs: the cycles completed or verified in a period (a task reopened in February
after a January completion counts once in each month), and the fault occurrences per asset (hand-reported
faults, alarm tasks, and every repeat of an alarm) from which repeat faults are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintenance.models import AuditLog, JsonDict, Task, TaskCycle
from maintenance.vocab import CycleReason, TaskKind

# The task's fields of the current cycle, copied to its cycle row after every change.
CYCLE_FIELDS = ("response_due_at", "resolution_due_at", "responded_at", "response_escalation",
                "resolution_escalation", "started_at", "checklist", "parts_used", "fault_cause",
                "action_taken", "parts_replaced", "remarks", "technician_signed_by", "technician_signed_at",
                "supervisor_signed_by", "supervisor_signed_at", "cancel_reason")
# What a recorded checklist item carries besides its specification (key, texts, type, range, ...).
CHECK_RESULT_KEYS = frozenset({"result", "value", "note", "by", "at", "sensor_values", "disagrees"})
FAULT_KINDS = (TaskKind.FAULT.value, TaskKind.ALARM.value)


def current_cycle(task: Task) -> TaskCycle:
    """The task's current cycle.

    The task service creates its row with the task; a task written around the service (a hand-made row)
    gets one here, from the task's own fields, so its record can go on.
    """
    for cycle in reversed(task.cycles):
        if cycle.number == task.cycle:
            return cycle
    cycle = TaskCycle(number=task.cycle, reason=CycleReason.CREATED.value, opened_at=task.created_at,
                      opened_by=task.created_by, notes=[], workers=[])
    task.cycles.append(cycle)
    return cycle


def sync_cycle(task: Task) -> TaskCycle:
    """Copy the task's current-cycle fields to the current cycle's row; return the row."""
    cycle = current_cycle(task)
    for name in CYCLE_FIELDS:
        value = getattr(task, name)
        if getattr(cycle, name) != value:
            setattr(cycle, name, list(value) if isinstance(value, list) else value)
    return cycle


def blank_checklist(checklist: Sequence[JsonDict]) -> list[JsonDict]:
    """The checklist with its specification kept and every result cleared, for a new cycle of work."""
    return [{k: v for k, v in item.items() if k not in CHECK_RESULT_KEYS}
            | {"result": None, "value": None, "note": None, "by": None, "at": None} for item in checklist]


def add_worker(task: Task, user_id: int) -> None:
    """Remember that `user_id` did work on the task in the current cycle."""
    cycle = current_cycle(task)
    if user_id not in cycle.workers:
        cycle.workers = [*cycle.workers, user_id]


def work_done_by(task: Task, user_id: int) -> str | None:
    """What `user_id` did on the task in the current cycle, in words, or None if nothing."""
    cycle = current_cycle(task)
    if task.technician_signed_by == user_id:
        return "signed the completion report as the technician"
    if cycle.started_by == user_id:
        return "started the work"
    checked = [str(item["key"]) for item in task.checklist
               if item.get("result") is not None and item.get("by") == user_id]
    if checked:
        return f"recorded the checklist item {checked[0]!r}"
    if any(part.get("by") == user_id for part in task.parts_used):
        return "recorded a part used"
    if user_id in cycle.workers:
        return "worked on the task"
    return None


# -- reading ----------------------------------------------------------------------------------------------
def cycles_of(session: Session, task_id: int) -> list[TaskCycle]:
    """Every cycle of one task, oldest first."""
    return list(session.scalars(select(TaskCycle).where(TaskCycle.task_id == task_id)
                                .order_by(TaskCycle.number)))


def completed_between(session: Session, start: datetime, end: datetime) -> list[TaskCycle]:
    """The cycles whose completion report the technician signed in [start, end), in signing order."""
    return list(session.scalars(
        select(TaskCycle).where(TaskCycle.technician_signed_at >= start, TaskCycle.technician_signed_at < end)
        .order_by(TaskCycle.technician_signed_at, TaskCycle.id)))


def verified_between(session: Session, start: datetime, end: datetime) -> list[TaskCycle]:
    """The cycles the supervisor signed off in [start, end), in signing order."""
    return list(session.scalars(
        select(TaskCycle).where(TaskCycle.supervisor_signed_at >= start, TaskCycle.supervisor_signed_at < end)
        .order_by(TaskCycle.supervisor_signed_at, TaskCycle.id)))


@dataclass(frozen=True, slots=True)
class FaultOccurrence:
    """One occurrence of a fault on an asset: a fault reported by hand, an alarm's task, or a repeat.

    A repeat is an alarm that came back: it reopened the finished task (`cycle` names the new cycle) or
    counted on the task still open (`cycle` is None).
    """

    asset: str
    at: datetime
    task_id: int
    kind: str
    repeat: bool
    cycle: int | None


def fault_occurrences(session: Session, start: datetime, end: datetime) -> list[FaultOccurrence]:
    """The fault occurrences on assets in [start, end), oldest first."""
    first = select(Task.id, Task.asset, Task.created_at, Task.kind).where(
        Task.kind.in_(FAULT_KINDS), Task.asset.is_not(None), Task.created_at >= start, Task.created_at < end)
    found = [FaultOccurrence(str(asset), at, task_id, kind, False, 1)
             for task_id, asset, at, kind in session.execute(first)]
    # A repeat alarm writes one "reopened" audit row, whether it began a new cycle or the task was still open.
    repeats = select(AuditLog.entity_id, AuditLog.ts, AuditLog.after).where(
        AuditLog.entity == "task", AuditLog.action == "reopened", AuditLog.ts >= start, AuditLog.ts < end)
    rows = list(session.execute(repeats))
    tasks = {task.id: task for task in session.scalars(
        select(Task).where(Task.id.in_({int(entity_id) for entity_id, _ts, _after in rows})))} if rows else {}
    for entity_id, at, after in rows:
        task = tasks.get(int(entity_id))
        if task is None or task.asset is None:
            continue
        cycle = (after or {}).get("cycle")
        found.append(FaultOccurrence(task.asset, at, task.id, task.kind, True,
                                     int(cycle) if isinstance(cycle, int) else None))
    return sorted(found, key=lambda o: (o.at, o.task_id))


def repeat_faults(session: Session, start: datetime, end: datetime,
                  within: timedelta = timedelta(days=30)) -> dict[str, int]:
    """Per asset, how many fault occurrences in [start, end) followed an earlier one within `within`.

    An alarm coming back counts, and so does a second fault reported by hand on the same asset.
    """
    occurrences = fault_occurrences(session, start - within, end)
    last: dict[str, datetime] = {}
    counts: Counter[str] = Counter()
    for occurrence in occurrences:
        before = last.get(occurrence.asset)
        if occurrence.at >= start and before is not None and occurrence.at - before <= within:
            counts[occurrence.asset] += 1
        last[occurrence.asset] = occurrence.at
    return dict(counts)

