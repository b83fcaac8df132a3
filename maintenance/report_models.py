"""Tables of the monthly reports: stored snapshots, closed months, amendments and archived PDFs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from maintenance.models import ESTATE_LENGTH, Base, JsonDict


class ReportSnapshot(Base):
    """The report of one estate's month: built on the 1st of the next, closed on the 6th or by the director.

    `figures` never change once `state` is closed. Unique per estate and month, so two replicas that build
    the same report at once end with one row. The signature lines keep the signer's name as it was when
    they signed.
    """

    __tablename__ = "report_snapshots"
    __table_args__ = (
        CheckConstraint("state IN ('built', 'closed')", name="state_known"),
        CheckConstraint("closed_reason IS NULL OR closed_reason IN ('due', 'signed')", name="closed_reason"),
        UniqueConstraint("estate", "month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate: Mapped[str] = mapped_column(String(ESTATE_LENGTH), server_default="")
    month: Mapped[str] = mapped_column(String(7))  # "2026-03"
    state: Mapped[str] = mapped_column(String(10))
    figures: Mapped[JsonDict]
    task_ids: Mapped[list[int]] = mapped_column(JSON)  # the tasks the figures count: later changes amend
    built_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(10))
    prepared_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    prepared_name: Mapped[str | None] = mapped_column(String(128))
    prepared_at: Mapped[datetime | None]
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_name: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None]
    amended_through: Mapped[datetime | None]  # the audit trail was read for amendments up to here
    updated_at: Mapped[datetime]


class ReportAmendment(Base):
    """A later change to a task a closed (or built) month counts: what, which task, when, why.

    One per month and audit row; the change itself counts in the month it happened (`counted_in`).
    """

    __tablename__ = "report_amendments"
    __table_args__ = (UniqueConstraint("snapshot_id", "audit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("report_snapshots.id", ondelete="CASCADE"))
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id", ondelete="RESTRICT"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    happened_at: Mapped[datetime]
    counted_in: Mapped[str] = mapped_column(String(7))
    action: Mapped[str] = mapped_column(String(32))
    what_zh: Mapped[str] = mapped_column(Text)
    what_en: Mapped[str] = mapped_column(Text)
    why: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class ReportArchive(Base):
    """A closed report as the PDF that was archived, byte for byte; a later signature adds an edition.

    In the state database rather than the state directory: every API replica serves the same bytes, and a
    backup of the records holds the report that certifies them.
    """

    __tablename__ = "report_archives"
    __table_args__ = (UniqueConstraint("snapshot_id", "edition"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("report_snapshots.id", ondelete="CASCADE"))
    edition: Mapped[int]
    reason: Mapped[str] = mapped_column(String(20))  # closed, prepared, approved
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime]
