"""Each task's history as the audit trail tells it: cycles of work, SLA clocks, dated events, parts.

The monthly figures count what happened in a month, so they need when each thing happened. The task row
holds only its current state (and a reopening used to clear the earlier signatures); the audit trail holds
every change with its time, written in the same transaction as the change and never rewritten. Rebuilding
from it gives the same answer for a month whatever happened to the task afterwards. It reads the fields
by name (`state`, `repeat_count`, `due_at`, `response_due_at`, `resolution_due_at`, `responded_at`,
`cycle`, `parts_used`), so a task row with more or fewer of them still rebuilds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from maintenance.audit import SYSTEM
from maintenance.models import AuditLog
from maintenance.vocab import CLOSED_TASK_STATES, TaskState

Window = Callable[[str], timedelta]  # a priority's response limit


class EventKind(StrEnum):
    """What happened to a task at one moment."""

    RAISED = "raised"  # the task was created
    COMPLETED = "completed"  # the technician signed the completion report (done)
    VERIFIED = "verified"  # the supervisor signed it off
    SENT_BACK = "sent_back"
    CANCELLED = "cancelled"
    REOPENED = "reopened"  # finished work went back to be done again
    REPEAT = "repeat"  # its alarm came back (the repeat count went up)


@dataclass(frozen=True, slots=True)
class Event:
    """One dated event of a task; `by_system` when no person did it (the rotation engine, a repeat alarm)."""

    at: datetime
    kind: EventKind
    by_system: bool = False


@dataclass(frozen=True, slots=True)
class PartUse:
    """A part recorded as used, and when."""

    at: datetime
    part: str
    unit: str
    quantity: float


@dataclass(slots=True)
class Deadline:
    """One SLA clock of a cycle: met when the thing happened by `due_at`, missed when `due_at` came first."""

    opened_at: datetime
    due_at: datetime | None
    met_at: datetime | None = None
    dropped_at: datetime | None = None  # the cycle ended (cancelled, superseded) before it was met

    def meet(self, at: datetime) -> None:
        """The thing happened (only the first time counts)."""
        if self.met_at is None and self.dropped_at is None:
            self.met_at = at

    def drop(self, at: datetime) -> None:
        """The cycle ended without it."""
        if self.met_at is None and self.dropped_at is None:
            self.dropped_at = at

    def running_at(self, at: datetime) -> bool:
        """Whether the clock still runs at `at` (not met, not dropped, deadline not passed)."""
        return (self.met_at is None and self.dropped_at is None
                and (self.due_at is None or self.due_at > at))

    def decision(self, horizon: datetime) -> tuple[datetime, bool] | None:
        """When the clock was decided and whether it was met; None while open (or dropped before due).

        Met at the event when it came on time; missed at the deadline otherwise. Either is final, so a
        month's count of decisions never changes once the month is over.
        """
        if self.met_at is not None and (self.due_at is None or self.met_at <= self.due_at):
            return (self.met_at, True) if self.met_at < horizon else None
        if self.due_at is None or self.due_at >= horizon:
            return None
        if self.met_at is None and self.dropped_at is not None and self.dropped_at <= self.due_at:
            return None
        return self.due_at, False


@dataclass(slots=True)
class Cycle:
    """One cycle of work: opened (created, reopened, sent back), its response and resolution clocks."""

    number: int
    opened_at: datetime
    response: Deadline
    resolution: Deadline


@dataclass(slots=True)
class TaskHistory:
    """A task's facts and everything that happened to it, oldest first."""

    task_id: int
    kind: str
    asset: str | None
    plan_key: str | None
    created_at: datetime
    events: list[Event] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    parts: list[PartUse] = field(default_factory=list)
    states: list[tuple[datetime, str]] = field(default_factory=list)

    def state_at(self, instant: datetime) -> str | None:
        """The task's state just before `instant` (None before it existed)."""
        found: str | None = None
        for at, state in self.states:
            if at >= instant:
                break
            found = state
        return found

    def first(self, kind: EventKind) -> Event | None:
        """The first event of `kind`, if any."""
        return next((e for e in self.events if e.kind is kind), None)


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the report needs of the task row itself (none of it changes after creation)."""

    task_id: int
    kind: str
    asset: str | None
    plan_key: str | None
    created_at: datetime
    priority: str


def when(value: Any) -> datetime | None:
    """A datetime from the audit trail's JSON (ISO text), or None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _parts(value: Any) -> list[dict[str, Any]]:
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []


class _Rebuild:
    """Replays one task's audit rows, oldest first."""

    def __init__(self, facts: TaskFacts, response_window: Window) -> None:
        self.history = TaskHistory(facts.task_id, facts.kind, facts.asset, facts.plan_key, facts.created_at)
        self.window = response_window
        self.fields: dict[str, Any] = {"priority": facts.priority}
        self.state: str | None = None

    def created(self, row: AuditLog) -> None:
        after = row.after or {}
        self.fields.update(after)
        self.state = str(after.get("state", TaskState.RAISED.value))
        self.history.events.append(Event(row.ts, EventKind.RAISED, row.actor == SYSTEM))
        self.history.states.append((row.ts, self.state))
        self._open_cycle(row.ts, after, number=int(after.get("cycle") or 1))
        self._record_parts(row.ts, [], after.get("parts_used"))

    def changed(self, row: AuditLog) -> None:
        before, after = row.before or {}, row.after or {}
        self.fields.update(after)
        system = row.actor == SYSTEM
        history, cycle = self.history, self.history.cycles[-1]
        new_state = str(after.get("state", self.state))
        if _count(after.get("repeat_count")) > _count(before.get("repeat_count")):
            history.events.append(Event(row.ts, EventKind.REPEAT, system))
        reopened = new_state == TaskState.RAISED.value and self.state in CLOSED_TASK_STATES
        next_cycle = _count(after.get("cycle")) > cycle.number
        if reopened:
            history.events.append(Event(row.ts, EventKind.REOPENED, system))
        if reopened or next_cycle:
            cycle.response.drop(row.ts)
            cycle.resolution.drop(row.ts)
            self._open_cycle(row.ts, after, number=max(cycle.number + 1, _count(after.get("cycle"))))
            cycle = history.cycles[-1]
        else:
            self._move_deadlines(row.ts, cycle, before, after)
        if new_state != self.state:
            history.states.append((row.ts, new_state))
            self._entered(row.ts, new_state, cycle, system)
        responded = when(after.get("responded_at"))
        if responded is not None:
            cycle.response.meet(responded)
        self._record_parts(row.ts, before.get("parts_used"), after.get("parts_used"))
        self.state = new_state

    def _entered(self, at: datetime, state: str, cycle: Cycle, system: bool) -> None:
        events = self.history.events
        if state in (TaskState.ASSIGNED.value, TaskState.IN_PROGRESS.value, TaskState.DONE.value):
            cycle.response.meet(at)  # taken on: assigned, or started
        if state == TaskState.DONE.value:
            cycle.resolution.meet(at)
            events.append(Event(at, EventKind.COMPLETED, system))
        elif state == TaskState.VERIFIED.value:
            events.append(Event(at, EventKind.VERIFIED, system))
        elif state == TaskState.SENT_BACK.value:
            events.append(Event(at, EventKind.SENT_BACK, system))
        elif state == TaskState.CANCELLED.value:
            cycle.response.drop(at)
            cycle.resolution.drop(at)
            events.append(Event(at, EventKind.CANCELLED, system))

    def _open_cycle(self, at: datetime, after: dict[str, Any], number: int) -> None:
        resolution = when(after.get("resolution_due_at")) or when(after.get("due_at"))
        if resolution is None:
            kept = when(self.fields.get("resolution_due_at")) or when(self.fields.get("due_at"))
            resolution = kept if kept is not None and kept > at else None
        response = when(after.get("response_due_at"))
        if response is None:
            response = at + self.window(str(self.fields.get("priority")))
            if resolution is not None:  # never taken on later than it must be done
                response = min(response, resolution)
        self.history.cycles.append(Cycle(number, at, Deadline(at, response), Deadline(at, resolution)))

    def _move_deadlines(self, at: datetime, cycle: Cycle, before: dict[str, Any],
                        after: dict[str, Any]) -> None:
        """A deadline changed within the cycle (a raised priority): it holds if the clock still runs."""
        resolution = when(after.get("resolution_due_at")) or when(after.get("due_at"))
        if resolution is not None and cycle.resolution.running_at(at):
            cycle.resolution.due_at = resolution
        response = when(after.get("response_due_at"))
        if response is None and "priority" in after and "priority" in before:
            tighter = at + self.window(str(after["priority"]))
            current = cycle.response.due_at
            response = tighter if current is None else min(current, tighter)
        if response is not None and cycle.response.running_at(at):
            cycle.response.due_at = response

    def _record_parts(self, at: datetime, before: Any, after: Any) -> None:
        if after is None:
            return
        earlier = _parts(before)
        for entry in _parts(after):
            if entry in earlier:
                earlier.remove(entry)
                continue
            try:
                quantity = float(entry.get("quantity", 0))
            except (TypeError, ValueError):
                continue
            self.history.parts.append(PartUse(at, str(entry.get("part", "")), str(entry.get("unit") or "pcs"),
                                              quantity))


def rebuild(facts: TaskFacts, rows: Iterable[AuditLog], response_window: Window) -> TaskHistory:
    """The history of one task from its audit rows (oldest first)."""
    replay = _Rebuild(facts, response_window)
    for row in rows:
        if replay.state is None:
            if row.before is None:
                replay.created(row)
            continue  # nothing can happen to a task before it exists
        replay.changed(row)
    if replay.state is None:  # no creation row (should not happen): the task row stands in for it
        replay.created(AuditLog(ts=facts.created_at, actor=SYSTEM, entity="task",
                                entity_id=str(facts.task_id), action="created", before=None,
                                after={"state": TaskState.RAISED.value}))
    return replay.history


def rebuild_all(facts: Sequence[TaskFacts], rows: Iterable[AuditLog],
                response_window: Window) -> list[TaskHistory]:
    """The histories of many tasks from their audit rows (any order of tasks, oldest row first per task)."""
    by_task: dict[int, list[AuditLog]] = {f.task_id: [] for f in facts}
    for row in rows:
        try:
            task_id = int(row.entity_id)
        except ValueError:
            continue
        if task_id in by_task:
            by_task[task_id].append(row)
    return [rebuild(f, sorted(by_task[f.task_id], key=lambda r: r.id), response_window) for f in facts]
