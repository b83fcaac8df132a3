"""Revision 0008 on a database with rows from before estates, and the start-up step that gives them theirs.

Both databases. The rows are written at revision 0007 through the tables as they were then (reflected),
so the test does not depend on today's models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, DateTime, Engine, Float, Integer, LargeBinary, MetaData, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maintenance.db import current_revision, make_engine, upgrade
from maintenance.estates import UnassignedRecords, adopt_unassigned, unassigned
from maintenance.models import User
from tests.maintenance.test_db import HEAD

NOW = datetime(2026, 3, 1, tzinfo=UTC)
RECORDS = {"alarms", "tasks", "access_requests", "change_requests", "switch_exceptions", "handovers",
           "report_snapshots"}


def _filler(column: Any) -> Any:
    """A value for a required column the row does not name."""
    kind = column.type
    if isinstance(kind, DateTime):
        return NOW
    if isinstance(kind, JSON):
        return []
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, Float):
        return 0.0
    if isinstance(kind, LargeBinary):
        return b"%PDF"
    return "x"


def _insert(engine: Engine, tables: MetaData, table: str, **values: Any) -> int:
    target = tables.tables[table]
    row = {c.name: _filler(c) for c in target.columns
           if not c.nullable and c.server_default is None and not c.primary_key and c.name not in values}
    with engine.begin() as conn:
        result = conn.execute(insert(target).values(**row, **values))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def _rows_of_0007(engine: Engine) -> dict[str, int]:
    """One row of each table that gains an estate, plus a report's amendment and archive."""
    tables = MetaData()
    tables.reflect(engine)
    later = NOW + timedelta(hours=2)
    user = _insert(engine, tables, "users", username="olivia", roles=["operator"], active=True)
    alarm = _insert(engine, tables, "alarms", asset="dom-p1", alarm_type="dry_run", room="dom",
                    severity="major", peak_severity="major", state="active", started_at=NOW)
    task = _insert(engine, tables, "tasks", kind="plan", asset="dom-p1", room="dom", priority="normal",
                   state="raised", plan_key="daily-round:dom@2026-03-01", alarm_id=None, escalation_level=0)
    audit = _insert(engine, tables, "audit_log", ts=NOW, actor="system", entity="task", entity_id=str(task),
                    action="created")
    snapshot = _insert(engine, tables, "report_snapshots", month="2026-02", state="closed", figures={},
                       task_ids=[task], built_at=NOW, closed_reason="due")
    _insert(engine, tables, "report_amendments", snapshot_id=snapshot, audit_id=audit, task_id=task,
            happened_at=NOW, counted_in="2026-03", action="completed")
    _insert(engine, tables, "report_archives", snapshot_id=snapshot, edition=1, reason="closed", size=4)
    _insert(engine, tables, "access_requests", room="dom", window_start=NOW, window_end=later, escort_id=user,
            requested_by=user, state="pending")
    _insert(engine, tables, "change_requests", requested_by=user, state="pending")
    _insert(engine, tables, "switch_exceptions", asset="dom-p1", alarm_type="switch_not_auto", room="dom",
            starts_at=NOW, ends_at=later, state="approved", requested_by=user, alarm_id=alarm)
    _insert(engine, tables, "handovers", room="dom", shift_started_at=NOW, submitted_at=NOW,
            outgoing_id=user, state="submitted")
    return {"alarm": alarm, "task": task, "snapshot": snapshot}


def _column(engine: Engine, table: str, column: str) -> list[Any]:
    tables = MetaData()
    tables.reflect(engine, only=[table])
    with engine.connect() as conn:
        return list(conn.execute(select(tables.tables[table].c[column])).scalars())


def test_rows_from_before_estates_survive_the_migration_and_are_given_the_only_estate(
        empty_db_url: str) -> None:
    upgrade(empty_db_url, "0007")
    engine = make_engine(empty_db_url)
    try:
        made = _rows_of_0007(engine)
        upgrade(engine)
        assert current_revision(engine) == HEAD
        for table in RECORDS:
            assert _column(engine, table, "estate") == [""], table
        # The report's children are still there: copying report_snapshots (SQLite) took nothing with it.
        assert _column(engine, "report_amendments", "snapshot_id") == [made["snapshot"]]
        assert _column(engine, "report_archives", "snapshot_id") == [made["snapshot"]]
        with Session(engine) as session:
            assert unassigned(session) == {table: 1 for table in RECORDS}

        adopted = adopt_unassigned(engine, ["harbour-view"], None, NOW)
        assert adopted == {table: 1 for table in RECORDS}
        for table in RECORDS:
            assert _column(engine, table, "estate") == ["harbour-view"], table
        assert _column(engine, "tasks", "plan_key") == ["harbour-view:daily-round:dom@2026-03-01"]
        assert adopt_unassigned(engine, ["harbour-view"], None, NOW) == {}  # nothing left: nothing done
        tables = MetaData()
        tables.reflect(engine, only=["audit_log"])
        trail = tables.tables["audit_log"]
        with engine.connect() as conn:
            adoptions = conn.execute(select(trail.c.entity_id, trail.c.after).where(
                trail.c.entity == "estate", trail.c.action == "adopted")).all()
        assert [(who, after["tasks"]) for who, after in adoptions] == [("harbour-view", 1)]
    finally:
        engine.dispose()


def test_with_several_estates_the_rows_wait_for_the_estate_named_to_take_them(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0007")
    engine = make_engine(empty_db_url)
    try:
        _rows_of_0007(engine)
        upgrade(engine)
        with pytest.raises(UnassignedRecords, match="set PUMPWATCH_ADOPT_ESTATE"):
            adopt_unassigned(engine, ["north", "south"], None, NOW)
        with pytest.raises(UnassignedRecords, match="'east' is not an estate"):
            adopt_unassigned(engine, ["north", "south"], "east", NOW)
        assert _column(engine, "alarms", "estate") == [""]  # refused: nothing changed
        assert adopt_unassigned(engine, ["north", "south"], "south", NOW)["tasks"] == 1
        assert _column(engine, "tasks", "plan_key") == ["south:daily-round:dom@2026-03-01"]
    finally:
        engine.dispose()


def test_after_the_migration_one_month_has_a_report_per_estate_and_one_key_an_active_alarm_per_estate(
        empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        for estate in ("north", "south"):
            _insert(engine, tables, "report_snapshots", estate=estate, month="2026-02", state="built",
                    figures={}, task_ids=[])
            _insert(engine, tables, "alarms", estate=estate, asset="dom-p1", alarm_type="dry_run", room="dom",
                    severity="major", peak_severity="major", state="active", started_at=NOW)
        with pytest.raises(IntegrityError):
            _insert(engine, tables, "report_snapshots", estate="north", month="2026-02", state="built",
                    figures={}, task_ids=[])
        with pytest.raises(IntegrityError):
            _insert(engine, tables, "alarms", estate="south", asset="dom-p1", alarm_type="dry_run",
                    room="dom", severity="major", peak_severity="major", state="active", started_at=NOW)
    finally:
        engine.dispose()


def test_users_from_before_scopes_keep_the_whole_organisation(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0008")
    engine = make_engine(empty_db_url)
    try:
        users = MetaData()
        users.reflect(engine, only=["users"])
        table = users.tables["users"]
        with engine.begin() as connection:
            connection.execute(insert(table).values(
                username="old-hand", display_name="Old Hand", password_hash="x", roles=["technician"],
                active=True, failed_logins=0, created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        upgrade(engine)
        with Session(engine) as session:
            user = session.scalars(select(User).where(User.username == "old-hand")).one()
            assert user.estates is None  # the whole organisation, as before scopes
            user.estates = ["harbour-view"]
            session.commit()
            session.refresh(user)
            assert user.estates == ["harbour-view"]
    finally:
        engine.dispose()
