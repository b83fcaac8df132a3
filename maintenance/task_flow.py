"""The task lifecycle as data: the transition table, response limits (SLA) and escalation levels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from maintenance.errors import IllegalTransition
from maintenance.vocab import Priority, Role, TaskState
from pumpwatch.site import Severity, Text


class TaskAction(StrEnum):
    """What can be done to a task; the table below says from which states."""

    ASSIGN = "assign"
    START = "start"
    COMPLETE = "complete"
    VERIFY = "verify"
    SEND_BACK = "send_back"
    CANCEL = "cancel"
    REOPEN = "reopen"  # the same alarm came back soon after it cleared


_S = TaskState
_A = TaskAction
TRANSITIONS: Mapping[tuple[TaskState, TaskAction], TaskState] = {
    (_S.RAISED, _A.ASSIGN): _S.ASSIGNED,
    (_S.ASSIGNED, _A.ASSIGN): _S.ASSIGNED,  # reassign
    (_S.IN_PROGRESS, _A.ASSIGN): _S.ASSIGNED,  # reassign: the new people have not started yet
    (_S.SENT_BACK, _A.ASSIGN): _S.ASSIGNED,
    (_S.RAISED, _A.START): _S.IN_PROGRESS,  # a technician takes an unassigned task
    (_S.ASSIGNED, _A.START): _S.IN_PROGRESS,
    (_S.SENT_BACK, _A.START): _S.IN_PROGRESS,
    (_S.IN_PROGRESS, _A.COMPLETE): _S.DONE,
    (_S.DONE, _A.VERIFY): _S.VERIFIED,
    (_S.DONE, _A.SEND_BACK): _S.SENT_BACK,
    (_S.RAISED, _A.CANCEL): _S.CANCELLED,
    (_S.ASSIGNED, _A.CANCEL): _S.CANCELLED,
    (_S.IN_PROGRESS, _A.CANCEL): _S.CANCELLED,
    (_S.SENT_BACK, _A.CANCEL): _S.CANCELLED,
    (_S.DONE, _A.REOPEN): _S.RAISED,
    (_S.VERIFIED, _A.REOPEN): _S.RAISED,
    (_S.CANCELLED, _A.REOPEN): _S.RAISED,
}


def next_state(current: str, action: TaskAction) -> TaskState:
    """Return the state `action` leads to from `current`; IllegalTransition if the table has no such move."""
    target = TRANSITIONS.get((TaskState(current), action))
    if target is None:
        raise IllegalTransition(current, action.value)
    return target


def priority_for_severity(severity: Severity) -> Priority:
    """Return the task priority an alarm of `severity` gets."""
    return {Severity.CRITICAL: Priority.CRITICAL, Severity.MAJOR: Priority.HIGH,
            Severity.MINOR: Priority.NORMAL, Severity.WARNING: Priority.LOW}[Severity(severity)]


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Response limits by priority, and how far into the limit the reminder goes out."""

    critical: timedelta = timedelta(minutes=30)
    high: timedelta = timedelta(hours=2)
    normal: timedelta = timedelta(hours=24)
    low: timedelta = timedelta(hours=72)
    reminder_fraction: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.reminder_fraction < 1:
            raise ValueError("reminder_fraction must be between 0 and 1")
        if min(self.critical, self.high, self.normal, self.low) <= timedelta(0):
            raise ValueError("every response limit must be positive")

    def window(self, priority: str) -> timedelta:
        """Return the response limit of `priority`."""
        return {Priority.CRITICAL: self.critical, Priority.HIGH: self.high, Priority.NORMAL: self.normal,
                Priority.LOW: self.low}[Priority(priority)]

    def due(self, start: datetime, priority: str) -> datetime:
        """Return when a task of `priority` raised at `start` is due."""
        return start + self.window(priority)

    def level_at(self, now: datetime, due_at: datetime, priority: str) -> EscalationLevel:
        """Return how far a task due at `due_at` has escalated by `now`.

        The reminder goes out when `reminder_fraction` of the window has passed, the supervisor hears when the
        task is overdue, and the director when it is overdue by a whole window more.
        """
        window = self.window(priority)
        if now >= due_at + window:
            return EscalationLevel.DIRECTOR
        if now >= due_at:
            return EscalationLevel.SUPERVISOR
        if now >= due_at - window * (1 - self.reminder_fraction):
            return EscalationLevel.REMINDER
        return EscalationLevel.NONE


class EscalationLevel(IntEnum):
    """How far a late task has gone up; stored as `Task.escalation_level`."""

    NONE = 0
    REMINDER = 1
    SUPERVISOR = 2
    DIRECTOR = 3

    @property
    def notify(self) -> Role | None:
        """Return the role to tell: the assigned technicians, the supervisor, the director."""
        return {EscalationLevel.REMINDER: Role.TECHNICIAN, EscalationLevel.SUPERVISOR: Role.SUPERVISOR,
                EscalationLevel.DIRECTOR: Role.DIRECTOR}.get(self)


@dataclass(frozen=True, slots=True)
class Escalation:
    """One escalation step of one task, for the notifier to deliver."""

    task_id: int
    level: EscalationLevel
    priority: Priority
    due_at: datetime
    title: Text
    room: str | None
    asset: str | None
    assignees: tuple[int, ...]

    @property
    def notify(self) -> Role | None:
        """Return the role this step notifies (the reminder goes to the assignees)."""
        return self.level.notify


class CheckResult(StrEnum):
    """The outcome of one checklist item."""

    OK = "ok"
    FAULT = "fault"
    NOT_APPLICABLE = "na"


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One item of a task's checklist, e.g. an inspection-round question."""

    key: str
    text: Text
