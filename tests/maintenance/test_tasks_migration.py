"""Revision 0004 on a database that had tasks at 0003: each task gets its first cycle (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from maintenance.db import current_revision, make_engine, session_factory, upgrade
from maintenance.models import UtcDateTime
from maintenance.tasks import TaskService
from maintenance.vocab import TaskState
from pumpwatch.clock import FakeClock

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_users = sa.table("users", sa.column("id", sa.Integer()), sa.column("username", sa.String()),
                  sa.column("display_name", sa.String()), sa.column("password_hash", sa.String()),
                  sa.column("roles", sa.JSON()), sa.column("active", sa.Boolean()),
                  sa.column("failed_logins", sa.Integer()), sa.column("created_at", UtcDateTime()))
_TIMES = ("due_at", "technician_signed_at", "supervisor_signed_at", "started_at", "created_at", "updated_at")
_INTS = ("id", "technician_signed_by", "supervisor_signed_by", "repeat_count", "escalation_level",
         "created_by")
_TEXTS = ("kind", "title_zh", "title_en", "asset", "priority", "state", "fault_cause", "action_taken",
          "cancel_reason", "sent_back_reason")
_tasks = sa.table("tasks", *(sa.column(name, UtcDateTime()) for name in _TIMES),
                  *(sa.column(name, sa.Integer()) for name in _INTS),
                  *(sa.column(name, sa.Text()) for name in _TEXTS),
                  *(sa.column(name, sa.JSON()) for name in ("checklist", "notes", "parts_used")))
_assignees = sa.table("task_assignees", sa.column("task_id", sa.Integer()),
                      sa.column("user_id", sa.Integer()), sa.column("assigned_at", UtcDateTime()))
_audit = sa.table("audit_log", sa.column("ts", UtcDateTime()), sa.column("actor", sa.String()),
                  sa.column("entity", sa.String()), sa.column("entity_id", sa.String()),
                  sa.column("action", sa.String()), sa.column("before", sa.JSON()),
                  sa.column("after", sa.JSON()))
_attachments = sa.table("attachments", sa.column("id", sa.Integer()), sa.column("task_id", sa.Integer()),
                        sa.column("filename", sa.String()), sa.column("content_type", sa.String()),
                        sa.column("size", sa.BigInteger()), sa.column("sha256", sa.String()),
                        sa.column("stored_path", sa.String()), sa.column("uploaded_at", UtcDateTime()))


def _user(conn: sa.Connection, name: str, *roles: str) -> int:
    row = conn.execute(_users.insert().returning(_users.c.id), {
        "username": name, "display_name": name, "password_hash": "x", "roles": list(roles), "active": True,
        "failed_logins": 0, "created_at": T0})
    return int(row.scalar_one())


def _task(conn: sa.Connection, **fields: Any) -> int:
    values: dict[str, Any] = {
        "kind": "fault", "title_zh": "漏水", "title_en": "leak", "asset": "dom-p1", "priority": "high",
        "state": "raised", "due_at": T0 + timedelta(hours=2), "checklist": [], "notes": [], "parts_used": [],
        "repeat_count": 0, "escalation_level": 0, "created_at": T0, "updated_at": T0}
    values.update(fields)
    return int(conn.execute(_tasks.insert().returning(_tasks.c.id), values).scalar_one())


def test_0004_gives_every_existing_task_its_first_cycle(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0003")
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) == "0003"
        with engine.begin() as conn:
            tech, sup = _user(conn, "tom", "technician"), _user(conn, "sam", "supervisor")
            op = _user(conn, "olivia", "operator")
            raised = _task(conn, created_by=op, escalation_level=1)
            started = T0 + timedelta(minutes=20)
            working = _task(conn, state="in_progress", started_at=started,
                            checklist=[{"key": "noise", "zh": "噪声", "en": "Noise", "result": "ok",
                                        "by": tech, "at": started.isoformat()}],
                            parts_used=[{"part": "seal", "quantity": 1, "unit": "pcs", "by": tech}])
            conn.execute(_assignees.insert(), [{"task_id": working, "user_id": tech,
                                                "assigned_at": T0 + timedelta(minutes=10)}])
            conn.execute(_audit.insert(), [{"ts": started, "actor": str(tech), "entity": "task",
                                            "entity_id": str(working), "action": "start", "before": None,
                                            "after": None}])
            signed, checked = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
            verified = _task(conn, state="verified", started_at=started, fault_cause="worn seal",
                             action_taken="replaced", technician_signed_by=tech, technician_signed_at=signed,
                             supervisor_signed_by=sup, supervisor_signed_at=checked, escalation_level=2,
                             notes=[{"text": "done", "by": tech, "at": signed.isoformat()}])
            cancelled = _task(conn, state="cancelled", cancel_reason="duplicate", updated_at=checked)
            conn.execute(_attachments.insert(), [{
                "task_id": verified, "filename": "seal.jpg", "content_type": "image/jpeg", "size": 10,
                "sha256": "ab" * 32, "stored_path": "/x/seal.jpg", "uploaded_at": signed}])

        upgrade(empty_db_url, "0004")
        assert current_revision(engine) == "0004"
        with engine.connect() as conn:
            cycles = {row.task_id: row for row in conn.execute(sa.text("SELECT * FROM task_cycles"))}
            tasks = {row.id: row for row in conn.execute(sa.text("SELECT * FROM tasks"))}
            attachment = conn.execute(sa.text("SELECT checklist_key, cycle FROM attachments")).one()
        assert set(cycles) == {raised, working, verified, cancelled}
        assert {(row.number, row.reason) for row in cycles.values()} == {(1, "created")}
        assert {row.cycle for row in tasks.values()} == {1}
        assert (attachment.checklist_key, attachment.cycle) == (None, 1)
        # The old single deadline stands for both clocks, and steps already taken are not taken again.
        assert (tasks[raised].response_escalation, tasks[raised].resolution_escalation) == (1, 1)
        assert tasks[raised].responded_at is None
        assert cycles[raised].opened_by == op
        assert cycles[working].started_by == tech  # from the audit trail
        assert cycles[working].responded_by is None  # nobody recorded who responded before 0004

        upgrade(empty_db_url)  # on to the newest revision, where the services run
        sessions = session_factory(engine)
        service = TaskService(sessions, FakeClock())
        (work,) = service.cycles(working)
        assert work.responded_at == T0 + timedelta(minutes=10)  # the assignment came before the start
        assert (work.response_due_at, work.resolution_due_at) == (T0 + timedelta(hours=2),) * 2
        assert work.workers == [tech]
        assert [item["result"] for item in work.checklist] == ["ok"]
        assert [part["part"] for part in work.parts_used] == ["seal"]
        (done,) = service.cycles(verified)
        assert (done.fault_cause, done.technician_signed_by, done.technician_signed_at) == (
            "worn seal", tech, signed)
        assert (done.supervisor_signed_by, done.supervisor_signed_at, done.closed_at) == (
            sup, checked, checked)
        assert (done.response_escalation, done.resolution_escalation) == (2, 2)
        assert [n["text"] for n in done.notes] == ["done"]
        (gone,) = service.cycles(cancelled)
        assert (gone.cancel_reason, gone.cancelled_at, gone.closed_at) == ("duplicate", checked, checked)
        assert service.get(working).state == TaskState.IN_PROGRESS
    finally:
        engine.dispose()


def test_0004_on_an_empty_database(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0004")
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM task_cycles")).scalar_one() == 0
        columns = {c["name"] for c in sa.inspect(engine).get_columns("tasks")}
        assert {"cycle", "responded_at", "response_due_at", "resolution_due_at", "response_escalation",
                "resolution_escalation"} <= columns
    finally:
        engine.dispose()
