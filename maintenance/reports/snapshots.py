"""Stored reports: build a month's snapshot once, close it, record signatures, archive its PDF.

Every function works in the caller's transaction and writes its audit row there. A report is one
estate's (its audit rows name it `<estate>:<month>`). Building relies on the unique (estate, month): a
replica that loses the race gets an IntegrityError and leaves the other's row standing; closing, signing
and archiving run with the snapshot row locked (FOR UPDATE; SQLite's BEGIN IMMEDIATE serialises writers
anyway), and check its state again once they hold it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maintenance import audit
from maintenance.estates import estate_key
from maintenance.models import AuditLog
from maintenance.report_models import ReportArchive, ReportSnapshot
from maintenance.reports.figures import MonthFigures
from maintenance.reports.month import Month

BUILT, CLOSED = "built", "closed"


def entity_id(snapshot: ReportSnapshot) -> str:
    """The audit trail's id of a report: `<estate>:<month>` (the month alone for a report without estate)."""
    return estate_key(snapshot.estate, snapshot.month)


def find(session: Session, month: Month, lock: bool = False, estate: str = "") -> ReportSnapshot | None:
    """The stored report of `estate`'s `month`, if built (locked for the transaction when `lock`)."""
    query = select(ReportSnapshot).where(ReportSnapshot.estate == estate, ReportSnapshot.month == str(month))
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def latest_month(session: Session, estate: str = "") -> str | None:
    """The newest month with a stored report of `estate`."""
    return session.scalar(select(func.max(ReportSnapshot.month)).where(ReportSnapshot.estate == estate))


def first_record(session: Session) -> datetime | None:
    """When the state database recorded its first change (no report is built for months before it)."""
    return session.scalar(select(func.min(AuditLog.ts)))


def insert(session: Session, month: Month, figures: MonthFigures, now: datetime,
           estate: str = "") -> ReportSnapshot:
    """Store the month's report as built; flushes, so a second copy fails on the unique (estate, month)."""
    snapshot = ReportSnapshot(estate=estate, month=str(month), state=BUILT, figures=figures.figures,
                              task_ids=figures.task_ids, built_at=now, updated_at=now)
    session.add(snapshot)
    session.flush()
    summary = {"month": str(month), "tasks": len(figures.task_ids), "totals": figures.figures.get("totals")}
    if estate:
        summary["estate"] = estate
    audit.record(session, audit.SYSTEM, "report", entity_id(snapshot), "built", None, summary, now)
    return snapshot


def close(session: Session, snapshot: ReportSnapshot, figures: MonthFigures, reason: str, actor: str,
          now: datetime) -> None:
    """Freeze the figures (the month is over, so they are the final ones) and mark the report closed."""
    before = {"state": snapshot.state}
    snapshot.figures, snapshot.task_ids = figures.figures, figures.task_ids
    snapshot.state, snapshot.closed_at, snapshot.closed_reason = CLOSED, now, reason
    snapshot.updated_at = now
    audit.record(session, actor, "report", entity_id(snapshot), "closed", before,
                 {"state": CLOSED, "reason": reason, "totals": figures.figures.get("totals")}, now)


def sign(session: Session, snapshot: ReportSnapshot, line: str, user_id: int, name: str,
         now: datetime) -> None:
    """Put a signature on the `prepared` (编制) or `approved` (审核) line."""
    setattr(snapshot, f"{line}_by", user_id)
    setattr(snapshot, f"{line}_name", name)
    setattr(snapshot, f"{line}_at", now)
    snapshot.updated_at = now
    audit.record(session, str(user_id), "report", entity_id(snapshot), "signed", None,
                 {"line": line, "name": name}, now)


def archive(session: Session, snapshot: ReportSnapshot, pdf: bytes, reason: str,
            now: datetime) -> ReportArchive:
    """Keep a closed report's PDF byte for byte as its next edition; its SHA-256 goes to the audit trail."""
    edition = (session.scalar(select(func.max(ReportArchive.edition))
                              .where(ReportArchive.snapshot_id == snapshot.id)) or 0) + 1
    digest = hashlib.sha256(pdf).hexdigest()
    row = ReportArchive(snapshot_id=snapshot.id, edition=edition, reason=reason, sha256=digest, size=len(pdf),
                        content=pdf, created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, audit.SYSTEM, "report", entity_id(snapshot), "archived", None,
                 {"edition": edition, "reason": reason, "sha256": digest, "size": len(pdf)}, now)
    return row


def editions(session: Session, snapshot: ReportSnapshot) -> list[dict[str, Any]]:
    """The archived PDFs of a report (without their bytes), oldest first."""
    rows = session.execute(select(ReportArchive.edition, ReportArchive.reason, ReportArchive.sha256,
                                  ReportArchive.size, ReportArchive.created_at)
                           .where(ReportArchive.snapshot_id == snapshot.id).order_by(ReportArchive.edition))
    return [{"edition": edition, "reason": reason, "sha256": sha256, "size": size,
             "archived_at": created_at.isoformat()} for edition, reason, sha256, size, created_at in rows]


def archived_pdf(session: Session, snapshot: ReportSnapshot,
                 edition: int | None = None) -> ReportArchive | None:
    """An archived edition (the newest when `edition` is None), bytes included."""
    query = select(ReportArchive).where(ReportArchive.snapshot_id == snapshot.id)
    query = (query.where(ReportArchive.edition == edition) if edition is not None
             else query.order_by(ReportArchive.edition.desc()).limit(1))
    row = session.scalar(query)
    if row is not None:
        _ = row.content  # load the deferred bytes while the session is open
    return row
