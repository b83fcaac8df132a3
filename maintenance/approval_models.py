"""Tables of the approvals: pump-room access requests and change requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maintenance.models import ESTATE_LENGTH, Base


class AccessRequest(Base):
    """A visitor's entry to a pump room: two approvals (supervisor, director), an escort, entry, exit."""

    __tablename__ = "access_requests"
    __table_args__ = (
        CheckConstraint("window_end > window_start", name="window_order"),
        CheckConstraint("state IN ('pending', 'approved', 'rejected', 'cancelled', 'expired', 'closed')",
                        name="state_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="", index=True)
    visitor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    room: Mapped[str] = mapped_column(String(100), index=True)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime] = mapped_column(index=True)
    escort_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # Who may accompany the visitor instead of the escort, named with the request (revision 0006).
    escort_deputy_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(10), index=True)
    supervisor_approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    supervisor_approved_at: Mapped[datetime | None]
    director_approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    director_approved_at: Mapped[datetime | None]
    decided_reason: Mapped[str | None] = mapped_column(Text)
    entered_at: Mapped[datetime | None]
    exited_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChangeRequest(Base):
    """A change to wiring or equipment: the supervisor's consent before its work task exists."""

    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'rejected', 'cancelled')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="", index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    room: Mapped[str | None] = mapped_column(String(100))
    asset: Mapped[str | None] = mapped_column(String(100))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(10), index=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decided_reason: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
