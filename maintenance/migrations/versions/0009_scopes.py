"""People scoped to estates: the estates a user's roles are held for.

`users.estates` is a JSON list of estate ids, or NULL for the whole organisation. Users that exist keep
working as they did: their column is NULL, the whole organisation, until an admin narrows it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the estates column, NULL (the whole organisation) for every existing user."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("estates", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("estates")
