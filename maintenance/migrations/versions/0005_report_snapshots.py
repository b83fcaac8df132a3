"""Monthly reports stored as snapshots, closed reports and their amendments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _signer(role: str) -> list[sa.Column[Any]]:
    return [sa.Column(f"{role}_by", sa.Integer(), nullable=True),
            sa.Column(f"{role}_name", sa.String(128), nullable=True),
            _ts(f"{role}_at", nullable=True)]


def upgrade() -> None:
    """Create the snapshot, amendment and archive tables."""
    op.create_table(
        "report_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("task_ids", sa.JSON(), nullable=False),
        _ts("built_at"),
        _ts("closed_at", nullable=True),
        sa.Column("closed_reason", sa.String(10), nullable=True),
        *_signer("prepared"),
        *_signer("approved"),
        _ts("amended_through", nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_report_snapshots"),
        sa.UniqueConstraint("month", name="uq_report_snapshots_month"),
        sa.ForeignKeyConstraint(["prepared_by"], ["users.id"], name="fk_report_snapshots_prepared_by_users",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["approved_by"], ["users.id"], name="fk_report_snapshots_approved_by_users",
                                ondelete="SET NULL"),
        sa.CheckConstraint("state IN ('built', 'closed')", name="ck_report_snapshots_state_known"),
        sa.CheckConstraint("closed_reason IS NULL OR closed_reason IN ('due', 'signed')",
                           name="ck_report_snapshots_closed_reason"),
    )
    op.create_table(
        "report_amendments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        _ts("happened_at"),
        sa.Column("counted_in", sa.String(7), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("what_zh", sa.Text(), nullable=False),
        sa.Column("what_en", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=True),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_report_amendments"),
        sa.UniqueConstraint("snapshot_id", "audit_id", name="uq_report_amendments_snapshot_id_audit_id"),
        sa.ForeignKeyConstraint(["snapshot_id"], ["report_snapshots.id"],
                                name="fk_report_amendments_snapshot_id_report_snapshots", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["audit_id"], ["audit_log.id"],
                                name="fk_report_amendments_audit_id_audit_log", ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_report_amendments_task_id_tasks",
                                ondelete="SET NULL"),
    )
    op.create_table(
        "report_archives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("edition", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_report_archives"),
        sa.UniqueConstraint("snapshot_id", "edition", name="uq_report_archives_snapshot_id_edition"),
        sa.ForeignKeyConstraint(["snapshot_id"], ["report_snapshots.id"],
                                name="fk_report_archives_snapshot_id_report_snapshots", ondelete="CASCADE"),
    )


def downgrade() -> None:
    """Drop them (the archived PDFs with them)."""
    op.drop_table("report_archives")
    op.drop_table("report_amendments")
    op.drop_table("report_snapshots")
