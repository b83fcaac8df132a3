"""Inspection scheduler: tasks remember whether the scheduler created them late (after a downtime).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add tasks.late (false for every existing task)."""
    op.add_column("tasks", sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop tasks.late."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("late")
