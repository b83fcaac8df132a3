"""Tables of approved exceptions: a switch allowed out of AUTO, by whom, why and until when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maintenance.models import ESTATE_LENGTH, Base

EXCEPTION_STATES = ("pending", "approved", "rejected", "cancelled", "revoked", "expired")
# The alarm type the rulebook gives a switch not in AUTO (collector/rules/rulebook.py); an asset with
# several switches gets `switch_not_auto:<sensor>` for the second and later ones.
SWITCH_ALARM = "switch_not_auto"


class SwitchException(Base):
    """Permission for one control-cabinet switch to stay out of AUTO for a time (rule 4's special reason).

    An exception, in the regulation's sense, not a Python error. While approved and inside
    [starts_at, ends_at) it silences the switch-not-in-AUTO alarm of exactly (asset, alarm_type):
    the alarm is recorded, but no task is opened. `alarm_id` is the alarm it holds silenced (the
    link lives here, not on `alarms`); `task_id` the task opened when it ended with that alarm
    still active.
    """

    __tablename__ = "switch_exceptions"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window_order"),
        CheckConstraint(f"state IN ({', '.join(repr(s) for s in EXCEPTION_STATES)})", name="state_known"),
        Index("ix_switch_exceptions_key", "estate", "asset", "alarm_type", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="")
    asset: Mapped[str] = mapped_column(String(100))
    alarm_type: Mapped[str] = mapped_column(String(64))
    sensor: Mapped[str | None] = mapped_column(String(100))
    room: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(10), index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decided_reason: Mapped[str | None] = mapped_column(Text)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(Text)
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="SET NULL"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
