"""Task records kept per cycle of work; SLA response and resolution.

Each existing task gets one cycle (number 1, opened when the task was created) holding its current
fields; nothing was kept of the cycles a reopening cleared before this revision (they survive in the
audit trail only). An existing task's one deadline becomes both its response and its resolution
deadline, and the escalation steps it already had count as taken on both clocks, so nobody is told
twice about a task the old rules already escalated.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from maintenance.models import UtcDateTime

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 500
_USER_COLUMNS = ("opened_by", "responded_by", "started_by", "technician_signed_by", "supervisor_signed_by",
                 "sent_back_by", "cancelled_by")


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create task_cycles, add the SLA and cycle columns, and give every existing task its first cycle."""
    op.create_table(
        "task_cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(10), nullable=False),
        _ts("opened_at", nullable=False),
        sa.Column("opened_by", sa.Integer(), nullable=True),
        _ts("response_due_at"),
        _ts("resolution_due_at"),
        _ts("responded_at"),
        sa.Column("responded_by", sa.Integer(), nullable=True),
        sa.Column("response_escalation", sa.Integer(), nullable=False),
        sa.Column("resolution_escalation", sa.Integer(), nullable=False),
        _ts("started_at"),
        sa.Column("started_by", sa.Integer(), nullable=True),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("parts_used", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("workers", sa.JSON(), nullable=False),
        sa.Column("fault_cause", sa.Text(), nullable=True),
        sa.Column("action_taken", sa.Text(), nullable=True),
        sa.Column("parts_replaced", sa.Text(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.Column("technician_signed_by", sa.Integer(), nullable=True),
        _ts("technician_signed_at"),
        sa.Column("supervisor_signed_by", sa.Integer(), nullable=True),
        _ts("supervisor_signed_at"),
        _ts("sent_back_at"),
        sa.Column("sent_back_by", sa.Integer(), nullable=True),
        sa.Column("sent_back_reason", sa.Text(), nullable=True),
        _ts("cancelled_at"),
        sa.Column("cancelled_by", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        _ts("closed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_task_cycles"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_cycles_task_id_tasks",
                                ondelete="CASCADE"),
        *(sa.ForeignKeyConstraint([column], ["users.id"], name=f"fk_task_cycles_{column}_users",
                                  ondelete="SET NULL") for column in _USER_COLUMNS),
        sa.UniqueConstraint("task_id", "number", name="uq_task_cycles_task_id_number"),
        sa.CheckConstraint("reason IN ('created', 'reopened', 'sent_back')", name="ck_task_cycles_reason"),
        sa.CheckConstraint("response_escalation BETWEEN 0 AND 3", name="ck_task_cycles_response_escalation"),
        sa.CheckConstraint("resolution_escalation BETWEEN 0 AND 3",
                           name="ck_task_cycles_resolution_escalation"),
    )
    op.create_index("ix_task_cycles_opened_at", "task_cycles", ["opened_at"])
    op.create_index("ix_task_cycles_technician_signed_at", "task_cycles", ["technician_signed_at"])
    op.create_index("ix_task_cycles_supervisor_signed_at", "task_cycles", ["supervisor_signed_at"])
    # Plain ADD COLUMN on both databases: rebuilding `tasks` on SQLite would fire the cascades of the
    # tables that refer to it.
    op.add_column("tasks", sa.Column("cycle", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("tasks", _ts("responded_at"))
    op.add_column("tasks", _ts("response_due_at"))
    op.add_column("tasks", _ts("resolution_due_at"))
    op.add_column("tasks", sa.Column("response_escalation", sa.Integer(), nullable=False,
                                     server_default=sa.text("0")))
    op.add_column("tasks", sa.Column("resolution_escalation", sa.Integer(), nullable=False,
                                     server_default=sa.text("0")))
    op.add_column("attachments", sa.Column("checklist_key", sa.String(64), nullable=True))
    op.add_column("attachments", sa.Column("cycle", sa.Integer(), nullable=False,
                                           server_default=sa.text("1")))
    _backfill(op.get_bind())


def downgrade() -> None:
    """Drop the cycles and the new columns (earlier cycles are lost; the audit trail keeps them)."""
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("cycle")
        batch.drop_column("checklist_key")
    with op.batch_alter_table("tasks") as batch:
        for column in ("resolution_escalation", "response_escalation", "resolution_due_at", "response_due_at",
                       "responded_at", "cycle"):
            batch.drop_column(column)
    op.drop_table("task_cycles")


# The tables as this revision sees them (not the models, which move on with later revisions).
_tasks = sa.table(
    "tasks", sa.column("id", sa.Integer()), sa.column("state", sa.String()),
    sa.column("due_at", UtcDateTime()),
    sa.column("created_at", UtcDateTime()), sa.column("created_by", sa.Integer()),
    sa.column("updated_at", UtcDateTime()), sa.column("started_at", UtcDateTime()),
    sa.column("checklist", sa.JSON()), sa.column("parts_used", sa.JSON()), sa.column("notes", sa.JSON()),
    sa.column("fault_cause", sa.Text()), sa.column("action_taken", sa.Text()),
    sa.column("parts_replaced", sa.Text()), sa.column("remarks", sa.Text()),
    sa.column("technician_signed_by", sa.Integer()), sa.column("technician_signed_at", UtcDateTime()),
    sa.column("supervisor_signed_by", sa.Integer()), sa.column("supervisor_signed_at", UtcDateTime()),
    sa.column("cancel_reason", sa.Text()), sa.column("sent_back_reason", sa.Text()),
    sa.column("escalation_level", sa.Integer()), sa.column("responded_at", UtcDateTime()),
    sa.column("response_due_at", UtcDateTime()), sa.column("resolution_due_at", UtcDateTime()),
    sa.column("response_escalation", sa.Integer()), sa.column("resolution_escalation", sa.Integer()))
_assignees = sa.table("task_assignees", sa.column("task_id", sa.Integer()),
                      sa.column("assigned_at", UtcDateTime()))
_audit = sa.table("audit_log", sa.column("id", sa.Integer()), sa.column("entity", sa.String()),
                  sa.column("entity_id", sa.String()), sa.column("action", sa.String()),
                  sa.column("actor", sa.String()), sa.column("ts", UtcDateTime()))
_TIMES = ("opened_at", "response_due_at", "resolution_due_at", "responded_at", "started_at",
          "technician_signed_at", "supervisor_signed_at", "cancelled_at", "closed_at")
_NUMBERS = ("task_id", "number", "response_escalation", "resolution_escalation", "opened_by", "started_by",
            "technician_signed_by", "supervisor_signed_by")
_cycles = sa.table(
    "task_cycles", *(sa.column(name, UtcDateTime()) for name in _TIMES),
    *(sa.column(name, sa.Integer()) for name in _NUMBERS),
    *(sa.column(name, sa.JSON()) for name in ("checklist", "parts_used", "notes", "workers")),
    *(sa.column(name, sa.Text()) for name in ("reason", "fault_cause", "action_taken", "parts_replaced",
                                              "remarks", "sent_back_reason", "cancel_reason")))


def _task_pages(bind: sa.Connection) -> Iterator[list[sa.Row[Any]]]:
    last = 0
    while True:
        query = sa.select(_tasks).where(_tasks.c.id > last).order_by(_tasks.c.id).limit(_BATCH)
        rows = list(bind.execute(query))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _first_assigned(bind: sa.Connection, ids: list[int]) -> dict[int, datetime]:
    query = (sa.select(_assignees.c.task_id, sa.func.min(_assignees.c.assigned_at))
             .where(_assignees.c.task_id.in_(ids)).group_by(_assignees.c.task_id))
    return {task_id: at for task_id, at in bind.execute(query)}


def _starters(bind: sa.Connection, ids: list[int]) -> dict[int, int]:
    """Who last started each task, from the audit trail (the task row never said)."""
    query = (sa.select(_audit.c.entity_id, _audit.c.actor)
             .where(_audit.c.entity == "task", _audit.c.action == "start",
                    _audit.c.entity_id.in_([str(i) for i in ids]))
             .order_by(_audit.c.id))
    found: dict[int, int] = {}
    for entity_id, actor in bind.execute(query):
        if str(actor).isdigit():
            found[int(entity_id)] = int(actor)
    return found


def _user_ids(bind: sa.Connection, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    users = sa.table("users", sa.column("id", sa.Integer()))
    return {row.id for row in bind.execute(sa.select(users.c.id).where(users.c.id.in_(list(ids))))}


def _workers(row: sa.Row[Any], starter: int | None) -> list[int]:
    """Who worked on the task, as its fields tell: the starter, the checkers, the fitters, the signer."""
    found = [starter, *(item.get("by") for item in row.checklist or [] if item.get("result") is not None),
             *(part.get("by") for part in row.parts_used or []), row.technician_signed_by]
    return list(dict.fromkeys(user for user in found if isinstance(user, int)))


def _backfill(bind: sa.Connection) -> None:
    for rows in _task_pages(bind):
        ids = [row.id for row in rows]
        assigned = _first_assigned(bind, ids)
        starters = _starters(bind, ids)
        existing = _user_ids(bind, set(starters.values()))
        cycles: list[dict[str, Any]] = []
        clocks: list[dict[str, Any]] = []
        for row in rows:
            times = (row.started_at, assigned.get(row.id))
            responded = min((at for at in times if at is not None), default=None)
            level = row.escalation_level or 0
            starter = starters.get(row.id)
            closed = {"verified": row.supervisor_signed_at, "cancelled": row.updated_at}.get(row.state)
            workers = _workers(row, starter if starter in existing else None)
            cycles.append({
                "task_id": row.id, "number": 1, "reason": "created", "opened_at": row.created_at,
                "opened_by": row.created_by, "response_due_at": row.due_at, "resolution_due_at": row.due_at,
                "responded_at": responded, "response_escalation": level, "resolution_escalation": level,
                "started_at": row.started_at, "started_by": starter if starter in existing else None,
                "checklist": row.checklist or [], "parts_used": row.parts_used or [],
                "notes": row.notes or [], "workers": workers,
                "fault_cause": row.fault_cause, "action_taken": row.action_taken,
                "parts_replaced": row.parts_replaced, "remarks": row.remarks,
                "technician_signed_by": row.technician_signed_by,
                "technician_signed_at": row.technician_signed_at,
                "supervisor_signed_by": row.supervisor_signed_by,
                "supervisor_signed_at": row.supervisor_signed_at,
                "sent_back_reason": row.sent_back_reason,
                "cancelled_at": row.updated_at if row.state == "cancelled" else None,
                "cancel_reason": row.cancel_reason, "closed_at": closed})
            clocks.append({"task": row.id, "responded": responded, "due": row.due_at, "level": level})
        bind.execute(_cycles.insert(), cycles)
        bind.execute(_tasks.update().where(_tasks.c.id == sa.bindparam("task")).values(
            responded_at=sa.bindparam("responded"), response_due_at=sa.bindparam("due"),
            resolution_due_at=sa.bindparam("due"), response_escalation=sa.bindparam("level"),
            resolution_escalation=sa.bindparam("level")), clocks)
