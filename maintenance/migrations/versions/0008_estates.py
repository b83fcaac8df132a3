"""Estates: the estate of every alarm, task, approval, exception, handover and monthly report.

Ids (rooms, assets, sensors) are unique within an estate only, so each record names its estate:
`alarms.estate` is part of the one-active-alarm-per-key index, `report_snapshots` are unique per estate
and month, and task keys of plan occurrences become `<estate>:<plan>:<occurrence>`.

Rows that exist before this revision have no estate: the column's server default, ''. The migration
cannot know which estate they are (that is in the site files, not the database); the start-up step
`maintenance.estates.adopt_unassigned`, run right after the migration by every role that uses the state
database, gives them the deployment's only estate (prefixing their plan keys), or the one
`PUMPWATCH_ADOPT_ESTATE` names when there are several, and refuses to start otherwise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# Written out here rather than imported: a migration must keep describing the schema of its own day.
_TABLES = ("alarms", "tasks", "access_requests", "change_requests", "switch_exceptions", "handovers",
           "report_snapshots")
_INDEXED = ("tasks", "access_requests", "change_requests", "handovers")  # ix_<table>_estate
_ACTIVE = sa.text("state = 'active'")
# SQLite changes a table constraint by copying the table and dropping the old one, and a dropped parent
# takes its children's rows with it (ON DELETE CASCADE, foreign keys on): these are kept aside meanwhile.
_SNAPSHOT_CHILDREN = ("report_amendments", "report_archives")


def _estate() -> sa.Column[str]:
    return sa.Column("estate", sa.String(64), nullable=False, server_default="")


def upgrade() -> None:
    """Add `estate` to each table; key the alarm indexes, exceptions and monthly reports by it."""
    op.drop_index("ux_alarms_active_key", table_name="alarms")
    op.drop_index("ix_alarms_key_ended", table_name="alarms")
    op.drop_index("ix_switch_exceptions_key", table_name="switch_exceptions")
    for table in _TABLES:
        if table != "report_snapshots":
            op.add_column(table, _estate())
    with _children_kept(), op.batch_alter_table("report_snapshots") as batch:
        batch.add_column(_estate())
        batch.drop_constraint("uq_report_snapshots_month", type_="unique")
        batch.create_unique_constraint("uq_report_snapshots_estate_month", ["estate", "month"])
    for table in _INDEXED:
        op.create_index(f"ix_{table}_estate", table, ["estate"])
    op.create_index("ix_alarms_key_ended", "alarms", ["estate", "asset", "alarm_type", "ended_at"])
    op.create_index("ux_alarms_active_key", "alarms", ["estate", "asset", "alarm_type"], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
    op.create_index("ix_switch_exceptions_key", "switch_exceptions",
                    ["estate", "asset", "alarm_type", "state"])


def downgrade() -> None:
    """Drop the estate columns (records of several estates would collide: only for a single estate)."""
    op.drop_index("ux_alarms_active_key", table_name="alarms")
    op.drop_index("ix_alarms_key_ended", table_name="alarms")
    op.drop_index("ix_switch_exceptions_key", table_name="switch_exceptions")
    for table in _INDEXED:
        op.drop_index(f"ix_{table}_estate", table_name=table)
    with _children_kept(), op.batch_alter_table("report_snapshots") as batch:
        batch.drop_constraint("uq_report_snapshots_estate_month", type_="unique")
        batch.create_unique_constraint("uq_report_snapshots_month", ["month"])
        batch.drop_column("estate")
    for table in _TABLES:
        if table != "report_snapshots":  # in place, not copied (SQLite 3.35+): nothing cascades
            op.execute(f"ALTER TABLE {table} DROP COLUMN estate")
    op.create_index("ix_alarms_key_ended", "alarms", ["asset", "alarm_type", "ended_at"])
    op.create_index("ux_alarms_active_key", "alarms", ["asset", "alarm_type"], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
    op.create_index("ix_switch_exceptions_key", "switch_exceptions", ["asset", "alarm_type", "state"])


@contextmanager
def _children_kept() -> Iterator[None]:
    """On SQLite, keep the rows of report_snapshots' children aside while the table is copied."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    for child in _SNAPSHOT_CHILDREN:
        op.execute(f"CREATE TABLE _kept_{child} AS SELECT * FROM {child}")
    yield
    for child in _SNAPSHOT_CHILDREN:
        op.execute(f"DELETE FROM {child}")
        op.execute(f"INSERT INTO {child} SELECT * FROM _kept_{child}")
        op.execute(f"DROP TABLE _kept_{child}")
