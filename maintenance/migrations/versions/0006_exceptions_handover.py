"""Approved exceptions for switches not in AUTO, shift handovers, and the deputy escort of a visit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# Written out here rather than imported: a migration must keep describing the schema of its own day.
_EXCEPTION_STATES = "'pending', 'approved', 'rejected', 'cancelled', 'revoked', 'expired'"
_HANDOVER_STATES = "'submitted', 'accepted', 'disputed'"


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=f"fk_{table}_{column}_users",
                                   ondelete=ondelete)


def upgrade() -> None:
    """Create switch_exceptions and handovers; add access_requests.escort_deputy_id."""
    op.create_table(
        "switch_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(100), nullable=False),
        sa.Column("alarm_type", sa.String(64), nullable=False),
        sa.Column("sensor", sa.String(100), nullable=True),
        sa.Column("room", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("starts_at"),
        _ts("ends_at"),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("decided_reason", sa.Text(), nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_switch_exceptions"),
        _user_fk("switch_exceptions", "requested_by", "RESTRICT"),
        _user_fk("switch_exceptions", "decided_by", "SET NULL"),
        _user_fk("switch_exceptions", "ended_by", "SET NULL"),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name="fk_switch_exceptions_alarm_id_alarms",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_switch_exceptions_task_id_tasks",
                                ondelete="SET NULL"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_switch_exceptions_window_order"),
        sa.CheckConstraint(f"state IN ({_EXCEPTION_STATES})", name="ck_switch_exceptions_state_known"),
    )
    op.create_index("ix_switch_exceptions_key", "switch_exceptions", ["asset", "alarm_type", "state"])
    op.create_index("ix_switch_exceptions_ends_at", "switch_exceptions", ["ends_at"])
    op.create_index("ix_switch_exceptions_state", "switch_exceptions", ["state"])

    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room", sa.String(100), nullable=True),
        _ts("shift_started_at"),
        _ts("submitted_at"),
        sa.Column("outgoing_id", sa.Integer(), nullable=False),
        sa.Column("incoming_id", sa.Integer(), nullable=True),
        sa.Column("open_alarms", sa.JSON(), nullable=False),
        sa.Column("open_tasks", sa.JSON(), nullable=False),
        sa.Column("shift_alarms", sa.JSON(), nullable=False),
        sa.Column("abnormal_readings", sa.JSON(), nullable=False),
        sa.Column("keys_tools", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("urgent", sa.Text(), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("received_by", sa.Integer(), nullable=True),
        _ts("received_at", nullable=True),
        sa.Column("signed_name", sa.String(128), nullable=True),
        sa.Column("signature_type", sa.String(100), nullable=True),
        sa.Column("signature_sha256", sa.String(64), nullable=True),
        sa.Column("signature_path", sa.String(500), nullable=True),
        sa.Column("dispute_reason", sa.Text(), nullable=True),
        _ts("escalated_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_handovers"),
        _user_fk("handovers", "outgoing_id", "RESTRICT"),
        _user_fk("handovers", "incoming_id", "RESTRICT"),
        _user_fk("handovers", "received_by", "SET NULL"),
        sa.CheckConstraint(f"state IN ({_HANDOVER_STATES})", name="ck_handovers_state_known"),
        sa.CheckConstraint("shift_started_at <= submitted_at", name="ck_handovers_shift_order"),
    )
    op.create_index("ix_handovers_room", "handovers", ["room"])
    op.create_index("ix_handovers_submitted_at", "handovers", ["submitted_at"])
    op.create_index("ix_handovers_outgoing_id", "handovers", ["outgoing_id"])
    op.create_index("ix_handovers_received_by", "handovers", ["received_by"])
    op.create_index("ix_handovers_state", "handovers", ["state"])

    # Batch mode: SQLite adds a column with a foreign key only by rebuilding the table.
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("escort_deputy_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_access_requests_escort_deputy_id_users", "users", ["escort_deputy_id"],
                                 ["id"], ondelete="RESTRICT")


def downgrade() -> None:
    """Drop the deputy escort, handovers and switch_exceptions."""
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_constraint("fk_access_requests_escort_deputy_id_users", type_="foreignkey")
        batch.drop_column("escort_deputy_id")
    op.drop_table("handovers")
    op.drop_table("switch_exceptions")
