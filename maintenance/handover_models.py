"""Tables of shift handovers (交接班): what the outgoing shift hands over and who accepted it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maintenance.models import ESTATE_LENGTH, Base, JsonDict

HANDOVER_STATES = ("submitted", "accepted", "disputed")


class Handover(Base):
    """One handover of a room (or of the whole estate when `room` is None) from one shift to the next.

    The open alarms and tasks are snapshots taken when it was submitted (what the incoming person was
    told); abnormal readings, keys and tools are as the outgoing person wrote them. The incoming person
    accepts with a signature (a typed name, a drawn image, or both) or disputes with a reason;
    `escalated_at` is set once, when it stayed unaccepted too long and the supervisor was told.
    """

    __tablename__ = "handovers"
    __table_args__ = (
        CheckConstraint(f"state IN ({', '.join(repr(s) for s in HANDOVER_STATES)})", name="state_known"),
        CheckConstraint("shift_started_at <= submitted_at", name="shift_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="", index=True)
    room: Mapped[str | None] = mapped_column(String(100), index=True)
    shift_started_at: Mapped[datetime]
    submitted_at: Mapped[datetime] = mapped_column(index=True)
    outgoing_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    incoming_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    open_alarms: Mapped[list[JsonDict]]
    open_tasks: Mapped[list[JsonDict]]
    shift_alarms: Mapped[list[JsonDict]]
    abnormal_readings: Mapped[list[JsonDict]]
    keys_tools: Mapped[list[JsonDict]]
    notes: Mapped[str | None] = mapped_column(Text)
    urgent: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), index=True)
    received_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    received_at: Mapped[datetime | None]
    signed_name: Mapped[str | None] = mapped_column(String(128))
    signature_type: Mapped[str | None] = mapped_column(String(100))
    signature_sha256: Mapped[str | None] = mapped_column(String(64))
    signature_path: Mapped[str | None] = mapped_column(String(500))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
