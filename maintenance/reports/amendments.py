"""Amendments: later changes to the tasks a month counts, read from the audit trail and recorded with it.

A closed month's figures stay as they were; what happens afterwards to one of its tasks (completed late,
reopened by a repeat alarm, verified, sent back, cancelled, a part or a note added, a document attached)
is listed with the month's report as an amendment, and counts in the month it happened. The sweep reads
the audit rows written since it last looked (with a margin, since a transaction that started earlier may
commit later) and records each once per month (unique per month and audit row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintenance import audit
from maintenance.models import AuditLog
from maintenance.report_models import ReportAmendment, ReportSnapshot
from maintenance.reports.month import Month
from maintenance.reports.snapshots import entity_id as report_entity
from maintenance.vocab import CLOSED_TASK_STATES, TaskState
from pumpwatch.site import Text

# A transaction stamps its audit rows when it starts and may commit a little later: read back this far.
MARGIN = timedelta(minutes=10)
_NOT_A_CHANGE = ("escalat",)  # SLA reminders and escalations change no record


@dataclass(frozen=True, slots=True)
class Change:
    """What an audit row did to a task, in words."""

    action: str
    what: Text
    why: str | None


def _states(row: AuditLog) -> tuple[str | None, str | None]:
    before, after = row.before or {}, row.after or {}
    return (before.get("state") if isinstance(before.get("state"), str) else None,
            after.get("state") if isinstance(after.get("state"), str) else None)


def describe(row: AuditLog, task_id: int, day: str) -> Change | None:
    """The change an audit row of a task (or of its attachment) made; None if it changed no record."""
    if row.action.startswith(_NOT_A_CHANGE):
        return None
    after: dict[str, Any] = row.after or {}
    before: dict[str, Any] = row.before or {}
    n = f"#{task_id}"
    if row.entity == "attachment":
        name = str(after.get("filename") or "")
        return Change("attached", Text(zh=f"任务 {n} 于 {day} 补充附件 {name}",
                                       en=f"task {n}: {name} attached on {day}"), None)
    old, new = _states(row)
    count = after.get("repeat_count")
    repeat = isinstance(count, int) and count > (before.get("repeat_count") or 0)
    if new == TaskState.RAISED.value and old in CLOSED_TASK_STATES:
        return Change("reopened", Text(zh=f"任务 {n} 于 {day} 重新打开", en=f"task {n} reopened on {day}"),
                      "报警重复 the alarm came back" if repeat else None)
    if repeat:
        return Change("repeat", Text(zh=f"任务 {n} 于 {day} 再次报警",
                                     en=f"task {n}: its alarm came back on {day}"), None)
    by_state: dict[str, tuple[str, str, str, Any]] = {  # action, zh, en ({d}: the day), why
        TaskState.DONE.value: ("completed", "完成（技术员签字）", "completed on {d} (technician signed)",
                               None),
        TaskState.VERIFIED.value: ("verified", "验收（主管签字）", "verified on {d} (supervisor signed)",
                                   None),
        TaskState.SENT_BACK.value: ("sent_back", "退回返工", "sent back on {d}",
                                    after.get("sent_back_reason")),
        TaskState.CANCELLED.value: ("cancelled", "取消", "cancelled on {d}", after.get("cancel_reason")),
        TaskState.IN_PROGRESS.value: ("started", "开始处理", "started on {d}", None),
        TaskState.ASSIGNED.value: ("assigned", "派工", "assigned on {d}", None),
    }
    if new is not None and new != old and new in by_state:
        action, zh, en, why = by_state[new]
        return Change(action, Text(zh=f"任务 {n} 于 {day} {zh}", en=f"task {n} " + en.format(d=day)),
                      str(why) if why else None)
    if "parts_used" in after:
        return Change("part", Text(zh=f"任务 {n} 于 {day} 登记备件",
                                   en=f"task {n}: a part recorded on {day}"), None)
    if "notes" in after:
        notes = after["notes"] if isinstance(after["notes"], list) else []
        text = notes[-1].get("text") if notes and isinstance(notes[-1], dict) else None
        return Change("note", Text(zh=f"任务 {n} 于 {day} 补充备注", en=f"task {n}: a note added on {day}"),
                      str(text) if text else None)
    if "checklist" in after:
        return Change("checklist", Text(zh=f"任务 {n} 于 {day} 登记检查结果",
                                        en=f"task {n}: checklist results recorded on {day}"), None)
    if not after:
        return None
    return Change(row.action[:32], Text(zh=f"任务 {n} 于 {day} 记录更改（{row.action}）",
                                        en=f"task {n} changed on {day} ({row.action})"), None)


def _task_of(row: AuditLog) -> int | None:
    if row.entity == "task":
        return int(row.entity_id) if row.entity_id.isdigit() else None
    task_id = (row.after or {}).get("task_id")
    return task_id if isinstance(task_id, int) else None


def sweep(session: Session, snapshots: Sequence[ReportSnapshot], tz: ZoneInfo, now: datetime) -> list[int]:
    """Record the amendments of `snapshots` written to the audit trail since each was last swept.

    The caller holds the snapshots locked (FOR UPDATE), so two replicas never sweep one month at once;
    the unique (snapshot, audit row) pair would refuse a second copy anyway. Returns the new amendments' ids.
    """
    if not snapshots:
        return []
    months = {s.id: Month.parse(s.month, tz) for s in snapshots}
    since = min((s.amended_through - MARGIN) if s.amended_through else months[s.id].end for s in snapshots)
    rows = list(session.scalars(select(AuditLog).where(
        AuditLog.entity.in_(("task", "attachment")), AuditLog.ts >= since).order_by(AuditLog.id)))
    added: list[ReportAmendment] = []
    for snapshot in snapshots:
        month = months[snapshot.id]
        floor = max(month.end, (snapshot.amended_through - MARGIN) if snapshot.amended_through else month.end)
        counted = set(snapshot.task_ids)
        wanted = [(row, task_id) for row in rows
                  if row.ts >= floor and (task_id := _task_of(row)) is not None and task_id in counted]
        if wanted:
            known = set(session.scalars(select(ReportAmendment.audit_id).where(
                ReportAmendment.snapshot_id == snapshot.id,
                ReportAmendment.audit_id.in_([row.id for row, _ in wanted]))))
            for row, task_id in wanted:
                change = describe(row, task_id, month.day(row.ts))
                if row.id in known or change is None:
                    continue
                amendment = ReportAmendment(
                    snapshot_id=snapshot.id, audit_id=row.id, task_id=task_id, happened_at=row.ts,
                    counted_in=str(Month.containing(row.ts, tz)), action=change.action,
                    what_zh=change.what.zh, what_en=change.what.en, why=change.why, recorded_at=now)
                session.add(amendment)
                added.append(amendment)
        if snapshot.amended_through is None or now - snapshot.amended_through >= MARGIN / 2:
            snapshot.amended_through = now  # not every 30 s: the next sweep reads back MARGIN anyway
    session.flush()
    by_month: dict[int, list[int]] = {}
    for amendment in added:
        by_month.setdefault(amendment.snapshot_id, []).append(amendment.id)
    for snapshot in snapshots:
        if snapshot.id in by_month:
            audit.record(session, audit.SYSTEM, "report", report_entity(snapshot), "amended", None,
                         {"amendments": by_month[snapshot.id]}, now)
    return [a.id for a in added]


def as_json(amendment: ReportAmendment) -> dict[str, Any]:
    """An amendment as the report shows it."""
    return {"id": amendment.id, "task_id": amendment.task_id,
            "happened_at": amendment.happened_at.isoformat(), "counted_in": amendment.counted_in,
            "action": amendment.action,
            "what": {"zh": amendment.what_zh, "en": amendment.what_en}, "why": amendment.why}


def listed(session: Session, snapshot: ReportSnapshot) -> list[dict[str, Any]]:
    """The amendments of a month, in the order they happened."""
    rows = session.scalars(select(ReportAmendment).where(ReportAmendment.snapshot_id == snapshot.id)
                           .order_by(ReportAmendment.happened_at, ReportAmendment.audit_id))
    return [as_json(a) for a in rows]

