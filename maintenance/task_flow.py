"""The task lifecycle as data: the transition table, response and resolution limits, escalation levels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from types import MappingProxyType

from maintenance.errors import IllegalTransition
from maintenance.vocab import Priority, Role, SlaClock, TaskState
from pumpwatch.site import Severity, Text
from pumpwatch.sla_config import DEFAULT_RESOLUTION, DEFAULT_RESPONSE, SlaSettings


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


def _limits(given: Mapping[str, timedelta], defaults: Mapping[str, timedelta]) -> dict[Priority, timedelta]:
    unknown = set(given) - {p.value for p in Priority}
    if unknown:
        raise ValueError(f"unknown priorities: {', '.join(sorted(unknown))}")
    return {p: given.get(p.value, defaults[p.value]) for p in Priority}


@dataclass(frozen=True)
class SlaPolicy:
    """Response and resolution limits by priority, and how far into a window the reminder goes out.

    Response: the task is taken on (assigned, or started) within the limit. Resolution: the technician
    signs the completion report within the limit. Limits a caller leaves out keep the defaults of
    `pumpwatch.sla_config` (critical 30 min / 4 h, high 2 h / 24 h, normal 24 h / 72 h, low 72 h / 7 d).
    """

    response: Mapping[str, timedelta] = field(default_factory=dict)
    resolution: Mapping[str, timedelta] = field(default_factory=dict)
    reminder_fraction: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.reminder_fraction < 1:
            raise ValueError("reminder_fraction must be between 0 and 1")
        response, resolution = (_limits(self.response, DEFAULT_RESPONSE),
                                _limits(self.resolution, DEFAULT_RESOLUTION))
        if min(*response.values(), *resolution.values()) <= timedelta(0):
            raise ValueError("every response and resolution limit must be positive")
        for priority in Priority:
            if response[priority] > resolution[priority]:
                raise ValueError(f"the {priority.value} response limit is longer than its resolution limit")
        object.__setattr__(self, "response", MappingProxyType(response))
        object.__setattr__(self, "resolution", MappingProxyType(resolution))

    @classmethod
    def from_settings(cls, settings: SlaSettings) -> SlaPolicy:
        """The policy of a site file's `sla:` section."""
        return cls(response={p.value: settings.response(p.value) for p in Priority},
                   resolution={p.value: settings.resolution(p.value) for p in Priority},
                   reminder_fraction=settings.reminder_at)

    def window(self, priority: str) -> timedelta:
        """Return the response limit of `priority` (the regulation's "response time")."""
        return self.response[Priority(priority)]

    def limit(self, clock: SlaClock, priority: str) -> timedelta:
        """Return the limit of one clock for `priority`."""
        limits = self.response if clock is SlaClock.RESPONSE else self.resolution
        return limits[Priority(priority)]

    def deadlines(self, opened: datetime, priority: str,
                  resolve_by: datetime | None = None) -> tuple[datetime, datetime]:
        """Return (response, resolution) deadlines of a cycle opened at `opened`.

        `resolve_by` is a deadline set by hand or by a plan; the response deadline never falls after the
        resolution deadline (a plan task due in 2 h must be taken on within those 2 h).
        """
        resolution = resolve_by or opened + self.limit(SlaClock.RESOLUTION, priority)
        response = min(opened + self.limit(SlaClock.RESPONSE, priority), resolution)
        return response, resolution

    def level_at(self, now: datetime, opened: datetime, due: datetime, clock: SlaClock,
                 priority: str) -> EscalationLevel:
        """Return how far one clock of a cycle opened at `opened` and due at `due` has escalated by `now`.

        The window is the cycle's own (`due - opened`), so a task given less time than its priority's limit
        is reminded relative to its own deadline. The reminder goes out when `reminder_fraction` of the
        window has passed, the supervisor hears when the deadline is missed, and the director when it is
        missed by a whole window more. A cycle that opened after its deadline (a plan task created late)
        is overdue at once; the priority's limit then stands for the window.
        """
        window = due - opened if due > opened else self.limit(clock, priority)
        if now >= due + window:
            return EscalationLevel.DIRECTOR
        if now >= due:
            return EscalationLevel.SUPERVISOR
        if now >= opened + window * self.reminder_fraction:
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
    """One escalation step of one clock of one task, for the notifier to deliver.

    `due_at` is that clock's deadline: the response deadline for a response step, else the resolution one.
    """

    task_id: int
    level: EscalationLevel
    priority: Priority
    due_at: datetime
    title: Text
    room: str | None
    asset: str | None
    assignees: tuple[int, ...]
    clock: SlaClock = SlaClock.RESOLUTION
    cycle: int = 1
    estate: str = ""

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
    """One item of a task's checklist, e.g. an inspection-round question.

    `spec` says how it is answered (`type`, `unit`, `min`/`max`, `attachment`), as a plan's items do.
    """

    key: str
    text: Text
    spec: Mapping[str, object] = field(default_factory=dict, hash=False)
