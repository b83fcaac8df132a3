"""The words the state layer stores: roles, task kinds, states and priorities, alarm states, token kinds."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a user may do; one user can hold several."""

    OPERATOR = "operator"
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"
    DIRECTOR = "director"
    ADMIN = "admin"


class TaskKind(StrEnum):
    """Why a task exists."""

    FAULT = "fault"  # reported by hand
    ALARM = "alarm"  # raised by an alarm
    PLAN = "plan"  # one occurrence of a maintenance plan
    INSPECTION = "inspection"
    CORRECTIVE = "corrective"
    CHANGE = "change"  # wiring/equipment change needing the supervisor's consent


class TaskState(StrEnum):
    """Where a task is in its lifecycle (PUMP-ROOM-RULES.md, workflow rules)."""

    RAISED = "raised"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"  # completion report in, technician signed
    VERIFIED = "verified"  # supervisor signed
    SENT_BACK = "sent_back"
    CANCELLED = "cancelled"


# Open: work is still owed, so the SLA runs. Closed: the work is reported (done), signed off or cancelled.
OPEN_TASK_STATES = frozenset(
    {TaskState.RAISED, TaskState.ASSIGNED, TaskState.IN_PROGRESS, TaskState.SENT_BACK})
CLOSED_TASK_STATES = frozenset({TaskState.DONE, TaskState.VERIFIED, TaskState.CANCELLED})


class CycleReason(StrEnum):
    """Why a cycle of work began: the task was created, a repeat alarm reopened it, or it was sent back."""

    CREATED = "created"
    REOPENED = "reopened"
    SENT_BACK = "sent_back"


class SlaClock(StrEnum):
    """The two deadlines of a cycle: someone takes the task on (response), the work is done (resolution)."""

    RESPONSE = "response"
    RESOLUTION = "resolution"


class Priority(StrEnum):
    """How urgent a task is; sets its response and resolution limits."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_RANK = {Priority.LOW: 1, Priority.NORMAL: 2, Priority.HIGH: 3, Priority.CRITICAL: 4}


class AlarmState(StrEnum):
    """An alarm is open (active) until its rule clears it."""

    ACTIVE = "active"
    CLEARED = "cleared"


class TokenKind(StrEnum):
    """API bearer token, or a web-UI session cookie (which also carries a CSRF token)."""

    BEARER = "bearer"
    SESSION = "session"


def sql_in(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint body allowing exactly the enum's values, e.g. `state IN ('a', 'b')`."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"
