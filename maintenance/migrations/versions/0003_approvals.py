"""Approvals: pump-room access requests and change requests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the two request tables."""
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("room", sa.String(100), nullable=False),
        _ts("window_start"),
        _ts("window_end"),
        sa.Column("escort_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("supervisor_approved_by", sa.Integer(), nullable=True),
        _ts("supervisor_approved_at", nullable=True),
        sa.Column("director_approved_by", sa.Integer(), nullable=True),
        _ts("director_approved_at", nullable=True),
        sa.Column("decided_reason", sa.Text(), nullable=True),
        _ts("entered_at", nullable=True),
        _ts("exited_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_access_requests"),
        sa.ForeignKeyConstraint(["escort_id"], ["users.id"], name="fk_access_requests_escort_id_users",
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], name="fk_access_requests_requested_by_users",
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["supervisor_approved_by"], ["users.id"],
                                name="fk_access_requests_supervisor_approved_by_users", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["director_approved_by"], ["users.id"],
                                name="fk_access_requests_director_approved_by_users", ondelete="SET NULL"),
        sa.CheckConstraint("window_end > window_start", name="ck_access_requests_window_order"),
        sa.CheckConstraint("state IN ('pending', 'approved', 'rejected', 'cancelled', 'expired', 'closed')",
                           name="ck_access_requests_state_known"),
    )
    op.create_index("ix_access_requests_room", "access_requests", ["room"])
    op.create_index("ix_access_requests_window_end", "access_requests", ["window_end"])
    op.create_index("ix_access_requests_state", "access_requests", ["state"])
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("room", sa.String(100), nullable=True),
        sa.Column("asset", sa.String(100), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("decided_reason", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_change_requests"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], name="fk_change_requests_requested_by_users",
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name="fk_change_requests_decided_by_users",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_change_requests_task_id_tasks",
                                ondelete="SET NULL"),
        sa.UniqueConstraint("task_id", name="uq_change_requests_task_id"),
        sa.CheckConstraint("state IN ('pending', 'approved', 'rejected', 'cancelled')",
                           name="ck_change_requests_state_known"),
    )
    op.create_index("ix_change_requests_state", "change_requests", ["state"])


def downgrade() -> None:
    """Drop the request tables."""
    op.drop_table("change_requests")
    op.drop_table("access_requests")
