"""Initial schema: users, deputies, tokens, alarms, tasks, assignees, attachments, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out here rather than imported: a migration must keep describing the schema of its own day.
_TASK_STATES = "'raised', 'assigned', 'in_progress', 'done', 'verified', 'sent_back', 'cancelled'"
_PRIORITIES = "'critical', 'high', 'normal', 'low'"


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the first release."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _ts("locked_until", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "deputies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deputy_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        _ts("valid_from"),
        _ts("valid_until", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_deputies"),
        sa.ForeignKeyConstraint(["deputy_id"], ["users.id"], name="fk_deputies_deputy_id_users",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["principal_id"], ["users.id"], name="fk_deputies_principal_id_users",
                                ondelete="CASCADE"),
        sa.CheckConstraint("deputy_id <> principal_id", name="ck_deputies_not_self"),
    )
    op.create_index("ix_deputies_deputy_id", "deputies", ["deputy_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users",
                                ondelete="CASCADE"),
        sa.CheckConstraint("kind IN ('bearer', 'session')", name="ck_api_tokens_kind"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(100), nullable=False),
        sa.Column("alarm_type", sa.String(64), nullable=False),
        sa.Column("room", sa.String(100), nullable=False),
        sa.Column("sensor", sa.String(100), nullable=True),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("peak_severity", sa.String(10), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        _ts("acknowledged_at", nullable=True),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("peak_value", sa.Double(), nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
        sa.ForeignKeyConstraint(["acknowledged_by"], ["users.id"], name="fk_alarms_acknowledged_by_users",
                                ondelete="SET NULL"),
        sa.CheckConstraint("state IN ('active', 'cleared')", name="ck_alarms_state"),
    )
    op.create_index("ix_alarms_room", "alarms", ["room"])
    op.create_index("ix_alarms_started_at", "alarms", ["started_at"])
    op.create_index("ix_alarms_key_ended", "alarms", ["asset", "alarm_type", "ended_at"])
    # At most one active alarm per key: the database, not the code, is what stops concurrent duplicates.
    op.create_index("ux_alarms_active_key", "alarms", ["asset", "alarm_type"], unique=True,
                    sqlite_where=sa.text("state = 'active'"), postgresql_where=sa.text("state = 'active'"))
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title_zh", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("asset", sa.String(100), nullable=True),
        sa.Column("room", sa.String(100), nullable=True),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("plan_key", sa.String(200), nullable=True),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("parts_used", sa.JSON(), nullable=False),
        sa.Column("fault_cause", sa.Text(), nullable=True),
        sa.Column("action_taken", sa.Text(), nullable=True),
        sa.Column("parts_replaced", sa.Text(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.Column("technician_signed_by", sa.Integer(), nullable=True),
        _ts("technician_signed_at", nullable=True),
        sa.Column("supervisor_signed_by", sa.Integer(), nullable=True),
        _ts("supervisor_signed_at", nullable=True),
        _ts("started_at", nullable=True),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("sent_back_reason", sa.Text(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("alarm_id", name="uq_tasks_alarm_id"),
        sa.UniqueConstraint("plan_key", name="uq_tasks_plan_key"),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name="fk_tasks_alarm_id_alarms",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["technician_signed_by"], ["users.id"],
                                name="fk_tasks_technician_signed_by_users", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["supervisor_signed_by"], ["users.id"],
                                name="fk_tasks_supervisor_signed_by_users", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_tasks_created_by_users",
                                ondelete="SET NULL"),
        sa.CheckConstraint(f"state IN ({_TASK_STATES})", name="ck_tasks_state"),
        sa.CheckConstraint(f"priority IN ({_PRIORITIES})", name="ck_tasks_priority"),
        sa.CheckConstraint("escalation_level BETWEEN 0 AND 3", name="ck_tasks_escalation_level"),
    )
    op.create_index("ix_tasks_asset", "tasks", ["asset"])
    op.create_index("ix_tasks_room", "tasks", ["room"])
    op.create_index("ix_tasks_state", "tasks", ["state"])
    op.create_index("ix_tasks_due_at", "tasks", ["due_at"])
    op.create_table(
        "task_assignees",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _ts("assigned_at"),
        sa.PrimaryKeyConstraint("task_id", "user_id", name="pk_task_assignees"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_assignees_task_id_tasks",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_task_assignees_user_id_users",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_task_assignees_user_id", "task_assignees", ["user_id"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_path", sa.String(500), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        _ts("uploaded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_attachments_task_id_tasks",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], name="fk_attachments_uploaded_by_users",
                                ondelete="SET NULL"),
    )
    op.create_index("ix_attachments_task_id", "attachments", ["task_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("ts"),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id"])


def downgrade() -> None:
    """Drop every table, children first."""
    for table in ("audit_log", "attachments", "task_assignees", "tasks", "alarms", "api_tokens", "deputies",
                  "users"):
        op.drop_table(table)
