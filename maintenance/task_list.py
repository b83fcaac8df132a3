"""Which tasks a list shows and in what order, and one page of them read as plain rows.

The task board polls the list every few seconds; reading the page as rows (two queries, no ORM
objects, no lazy collections) costs about half as much as loading `Task` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from maintenance.models import Task, TaskAssignee
from maintenance.vocab import PRIORITY_RANK, Priority, TaskState


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a task list shows; None means any."""

    states: Sequence[TaskState] | None = None
    assignee: int | None = None
    priority: Priority | None = None
    room: str | None = None
    asset: str | None = None
    kind: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None  # at or after: with due_before, a period (the plan calendar's month)
    estate: str | None = None
    within: frozenset[str] | None = None  # the caller's scope: only these estates (None: every one)


def task_conditions(filters: TaskFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter."""
    conditions: list[ColumnElement[bool]] = []
    if filters.states is not None:
        conditions.append(Task.state.in_([TaskState(s).value for s in filters.states]))
    if filters.assignee is not None:
        conditions.append(Task.id.in_(select(TaskAssignee.task_id)
                                      .where(TaskAssignee.user_id == filters.assignee)))
    if filters.priority is not None:
        conditions.append(Task.priority == Priority(filters.priority).value)
    equal = ((Task.room, filters.room), (Task.asset, filters.asset), (Task.kind, filters.kind),
             (Task.estate, filters.estate))
    for column, value in equal:
        if value is not None:
            conditions.append(column == value)
    if filters.within is not None:
        conditions.append(Task.estate.in_(sorted(filters.within)))
    if filters.due_before is not None:
        conditions.append(Task.due_at < filters.due_before)
    if filters.due_after is not None:
        conditions.append(Task.due_at >= filters.due_after)
    return conditions


def task_order() -> tuple[Any, ...]:
    """Soonest due first (no due time last), then most urgent, then oldest."""
    return _ORDER


_ORDER = (Task.due_at.is_(None), Task.due_at,
          case({p.value: -rank for p, rank in PRIORITY_RANK.items()}, value=Task.priority), Task.id)
# Built once: coercing every column per request shows in profiles.
_ROWS = select(*Task.__table__.columns, func.count().over().label("total"))
_LINKS = select(TaskAssignee.task_id, TaskAssignee.user_id).order_by(TaskAssignee.user_id)


def count_tasks(session: Session, conditions: Sequence[ColumnElement[bool]]) -> int:
    """How many tasks match."""
    return session.scalar(select(func.count()).select_from(Task).where(*conditions)) or 0


def task_rows(session: Session, filters: TaskFilter, offset: int,
              limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of tasks as column -> value rows with `assignee_ids`, and how many match in all.

    The total comes with the page (a window count) and the queries go straight to the connection,
    past the ORM: the page costs two statements.
    """
    conditions = task_conditions(filters)
    connection = session.connection()
    query = _ROWS.where(*conditions).order_by(*_ORDER).offset(offset).limit(limit)
    rows = [dict(row) for row in connection.execute(query).mappings()]
    if not rows:
        return [], count_tasks(session, conditions) if offset else 0
    total = int(rows[0]["total"])
    assignees: dict[int, list[int]] = {row["id"]: [] for row in rows}
    for task_id, user_id in connection.execute(_LINKS.where(TaskAssignee.task_id.in_(list(assignees)))):
        assignees[task_id].append(user_id)
    for row in rows:
        del row["total"]
        row["assignee_ids"] = assignees[row["id"]]
    return rows, total
