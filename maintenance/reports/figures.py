"""The figures of one month, computed from what happened in it.

Every figure counts events of the month: tasks raised, taken on, completed (technician's signature),
verified, sent back, cancelled, reopened; deadlines met or missed (response and resolution, each decided
when it was met or when it passed); alarm repeats and hand-reported faults per asset; the duty rotations
planned and whether each was confirmed on time; parts recorded. Only events before the horizon (the end
of the month, or now for the current month) count, so a month's figures never change once it is over:
a task completed on 3 April for a March occurrence is a completion of April.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from maintenance.estates import estate_key
from maintenance.models import AuditLog, Task
from maintenance.reports.history import EventKind, TaskFacts, TaskHistory, Window, rebuild_all
from maintenance.reports.month import Month
from maintenance.vocab import OPEN_TASK_STATES, TaskKind, TaskState

_CHUNK = 500  # ids per IN list: well inside every database's limit on bound parameters
COUNTS = ("raised", "responded", "completed", "verified", "sent_back", "cancelled", "reopened", "overdue")
END_STATES = ("open", "done", "verified", "cancelled")  # a task's state when the month ended, for the chart
_EVENT_COUNT = {EventKind.COMPLETED: "completed", EventKind.VERIFIED: "verified",
                EventKind.SENT_BACK: "sent_back", EventKind.CANCELLED: "cancelled",
                EventKind.REOPENED: "reopened"}
DEFAULT_ROTATION_PLAN = "duty-rotation"
_JUST_AFTER = timedelta(microseconds=1)
FAILED_SUFFIX = ":failed"  # the rotation engine's follow-up task of a failed swap


@dataclass(frozen=True)
class MonthFigures:
    """The figures of a month (JSON-ready) and the tasks they count, which later changes amend."""

    figures: dict[str, Any]
    task_ids: list[int]


def _in(month: Month, horizon: datetime, at: datetime | None) -> bool:
    return at is not None and month.start <= at < horizon


def _minutes(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_min": None, "max_min": None}
    return {"median_min": round(statistics.median(values), 1), "max_min": round(max(values), 1)}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


class _Tally:
    """Counts one month while walking the task histories once."""

    def __init__(self, month: Month, horizon: datetime, rotation_plan: str, estate: str = "") -> None:
        self.month, self.horizon = month, horizon
        self.rotation_prefix = estate_key(estate, rotation_plan) + ":"
        self.by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        self.end_states: dict[str, Counter[str]] = defaultdict(Counter)
        self.sla: dict[str, Counter[str]] = {"response": Counter(), "resolution": Counter()}
        self.sla_minutes: dict[str, list[float]] = {"response": [], "resolution": []}
        self.faults: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        self.parts: dict[tuple[str, str], float] = defaultdict(float)
        self.rotation: Counter[str] = Counter()
        self.touched: set[int] = set()

    def within(self, at: datetime | None) -> bool:
        return _in(self.month, self.horizon, at)

    def task(self, history: TaskHistory, failed_rotations: set[str]) -> None:
        counts = self.by_kind[history.kind]
        touched = False
        if self.within(history.created_at):
            touched = True
            counts["raised"] += 1
            self.end_states[history.kind][_end_state(history.state_at(self.horizon))] += 1
            if history.kind in (TaskKind.ALARM.value, TaskKind.FAULT.value) and history.asset:
                self.faults[history.asset].append((history.created_at, history.kind))
            if self._is_rotation(history):
                self._rotation(history, failed_rotations)
        for event in history.events:
            if not self.within(event.at):
                continue
            touched = True
            if event.kind in _EVENT_COUNT:
                counts[_EVENT_COUNT[event.kind]] += 1
            if event.kind is EventKind.REPEAT and history.asset:
                self.faults[history.asset].append((event.at, "repeat"))
        for cycle in history.cycles:
            for name, deadline in (("response", cycle.response), ("resolution", cycle.resolution)):
                if self.within(deadline.met_at):
                    assert deadline.met_at is not None
                    touched = True
                    self.sla_minutes[name].append((deadline.met_at - deadline.opened_at).total_seconds() / 60)
                    if name == "response":
                        counts["responded"] += 1
                decided = deadline.decision(self.horizon)
                if decided is None or not self.within(decided[0]):
                    continue
                touched = True
                self.sla[name]["met" if decided[1] else "missed"] += 1
                if name == "resolution" and not decided[1]:
                    counts["overdue"] += 1
        for used in history.parts:
            if self.within(used.at):
                touched = True
                self.parts[(used.part, used.unit)] += used.quantity
        if touched:
            self.touched.add(history.task_id)

    def _is_rotation(self, history: TaskHistory) -> bool:
        key = history.plan_key or ""
        return (key.startswith(self.rotation_prefix) and not key.endswith(FAILED_SUFFIX)
                and history.kind != TaskKind.CORRECTIVE.value)

    def _rotation(self, history: TaskHistory, failed_rotations: set[str]) -> None:
        """Count a rotation planned this month.

        On time: confirmed (by a technician, or recorded by the system from readings) by its deadline,
        and not failed.
        """
        self.rotation["planned"] += 1
        completed = history.first(EventKind.COMPLETED)
        done_at = completed.at if completed is not None and completed.at < self.horizon else None
        deadline = history.cycles[0].resolution.due_at if history.cycles else None
        failed = history.plan_key in failed_rotations
        verified = history.first(EventKind.VERIFIED)
        if failed:
            self.rotation["failed"] += 1
        if done_at is not None:
            self.rotation["confirmed"] += 1
            if not failed and (deadline is None or done_at <= deadline):
                self.rotation["on_time"] += 1
            if (verified is not None and verified.at < self.horizon) or (completed and completed.by_system):
                self.rotation["verified"] += 1
        elif not failed and (deadline is None or deadline >= self.horizon):
            self.rotation["pending"] += 1

    def result(self, rotation_plan: str) -> dict[str, Any]:
        kinds = sorted(k for k in set(self.by_kind) | set(self.end_states)
                       if sum(self.by_kind[k].values()) or sum(self.end_states[k].values()))
        tasks_by_kind = {k: {name: self.by_kind[k].get(name, 0) for name in COUNTS} for k in kinds}
        sla: dict[str, Any] = {}
        for name in ("response", "resolution"):
            met, missed = self.sla[name]["met"], self.sla[name]["missed"]
            sla[name] = {"decided": met + missed, "met": met, "missed": missed,
                         "attainment": _share(met, met + missed), "count": len(self.sla_minutes[name])}
            sla[name] |= _minutes(self.sla_minutes[name])
        rotation = {name: self.rotation.get(name, 0)
                    for name in ("planned", "confirmed", "on_time", "verified", "failed", "pending")}
        return {
            "as_of": self.horizon.isoformat(),
            "tasks_by_kind": tasks_by_kind,
            "totals": {name: sum(c[name] for c in tasks_by_kind.values()) for name in COUNTS},
            "states_at_end": {k: {s: self.end_states[k].get(s, 0) for s in END_STATES} for k in kinds},
            "sla": sla,
            "repeat_faults": _repeat_faults(self.faults),
            "rotation": {"plan": rotation_plan} | rotation
                        | {"compliance": _share(rotation["on_time"], rotation["planned"])},
            "parts_used": [{"part": p, "unit": u, "quantity": round(q, 3)}
                           for (p, u), q in sorted(self.parts.items())],
        }


def _end_state(state: str | None) -> str:
    if state in (TaskState.DONE.value, TaskState.VERIFIED.value, TaskState.CANCELLED.value):
        return str(state)
    return "open"


def _repeat_faults(faults: dict[str, list[tuple[datetime, str]]]) -> list[dict[str, Any]]:
    """Repeat faults per asset.

    Every fault after the asset's first of the month is a repeat, and an alarm that came back is a repeat
    even when it is the first of the month (it was fixed before).
    """
    rows: list[dict[str, Any]] = []
    for asset, found in faults.items():
        found.sort(key=lambda item: item[0])
        repeats = sum(1 for i, (_at, what) in enumerate(found) if what == "repeat" or i > 0)
        if repeats:
            rows.append({"asset": asset, "faults": len(found), "repeats": repeats,
                         "alarm_repeats": sum(1 for _at, what in found if what == "repeat"),
                         "fault_reports": sum(1 for _at, what in found if what == TaskKind.FAULT.value)})
    rows.sort(key=lambda r: (-r["repeats"], r["asset"]))
    return rows


def compute(month: Month, histories: Iterable[TaskHistory], horizon: datetime,
            rotation_plan: str = DEFAULT_ROTATION_PLAN, estate: str = "") -> MonthFigures:
    """The month's figures from task histories, counting events before `horizon` (of `estate`'s plans)."""
    histories = list(histories)
    failed = {h.plan_key.removesuffix(FAILED_SUFFIX) for h in histories
              if h.plan_key and h.plan_key.endswith(FAILED_SUFFIX) and h.created_at < horizon}
    tally = _Tally(month, horizon, rotation_plan, estate)
    for history in histories:
        tally.task(history, failed)
    return MonthFigures(tally.result(rotation_plan), sorted(tally.touched))


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield list(ids[i:i + _CHUNK])


def candidate_ids(session: Session, month: Month, horizon: datetime) -> list[int]:
    """Tasks that may count in the month: raised in it, open now, or changed since it began."""
    ids = set(session.scalars(select(Task.id).where(
        Task.created_at < horizon,
        or_(Task.created_at >= month.start, Task.state.in_([s.value for s in OPEN_TASK_STATES])))))
    changed = session.scalars(select(AuditLog.entity_id).where(
        AuditLog.entity == "task", AuditLog.ts >= month.start, AuditLog.ts < horizon).distinct())
    ids.update(int(e) for e in changed if e.isdigit())
    return sorted(ids)


def load_histories(session: Session, month: Month, horizon: datetime,
                   response_window: Window, estate: str = "") -> list[TaskHistory]:
    """The histories of the tasks that may count in `month`, from their audit rows before `horizon`.

    The tasks of `estate` (an empty estate: every task).
    """
    ids = candidate_ids(session, month, horizon)
    of_estate = [Task.estate == estate] if estate else []
    facts: list[TaskFacts] = []
    rows: list[AuditLog] = []
    for chunk in _chunks(ids):
        kept = [TaskFacts(task_id, kind, asset, plan_key, created_at, priority)
                for task_id, kind, asset, plan_key, created_at, priority in session.execute(
                    select(Task.id, Task.kind, Task.asset, Task.plan_key, Task.created_at, Task.priority)
                    .where(Task.id.in_(chunk), Task.created_at < horizon, *of_estate))]
        facts += kept
        rows += session.scalars(select(AuditLog).where(
            AuditLog.entity == "task", AuditLog.entity_id.in_([str(f.task_id) for f in kept]),
            AuditLog.ts < horizon).order_by(AuditLog.id))
    return rebuild_all(facts, rows, response_window)


def month_figures(session: Session, month: Month, now: datetime, response_window: Window,
                  rotation_plan: str = DEFAULT_ROTATION_PLAN, estate: str = "") -> MonthFigures:
    """The figures of `month` as of `now` (the whole month once it is over), of one estate's tasks."""
    horizon = min(now + _JUST_AFTER, month.end)  # what happened at `now` itself counts too
    histories = load_histories(session, month, horizon, response_window, estate)
    return compute(month, histories, horizon, rotation_plan, estate)
