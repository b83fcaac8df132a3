"""Engines and migrations: all tables from the hand-written migration, matching the models, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from maintenance.db import DEFAULT_URL, current_revision, database_url, make_engine, session_factory, upgrade
from maintenance.models import Alarm, AuditLog, Base, TaskAssignee, utc_from_epoch

HEAD = "0009"  # the newest revision in maintenance/migrations/versions
TABLES = {"users", "deputies", "api_tokens", "alarms", "tasks", "task_assignees", "attachments", "audit_log",
          "access_requests", "change_requests"}
TABLES |= {"switch_exceptions", "handovers"}  # revision 0006
TABLES |= {"report_snapshots", "report_amendments", "report_archives"}  # revision 0005
TABLES |= {"task_cycles"}  # revision 0004
TABLES |= {"sign_in_failures"}  # revision 0007


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _alarm(state: str, **overrides: object) -> Alarm:
    now = utc_from_epoch(1_767_225_600)
    values: dict[str, object] = {
        "asset": "pump-1", "alarm_type": "dry_run", "room": "room-a", "severity": "major",
        "peak_severity": "major", "state": state, "started_at": now, "message_zh": "干转",
        "message_en": "dry run", "repeat_count": 0, "updated_at": now}
    values.update(overrides)
    return Alarm(**values)


def test_database_url_maps_postgresql_to_psycopg_and_defaults_to_sqlite() -> None:
    assert database_url(None) == DEFAULT_URL
    assert database_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_upgrade_creates_every_table_and_a_second_upgrade_changes_nothing(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert _tables(engine) == set()
        assert current_revision(engine) is None
        upgrade(empty_db_url)
        assert _tables(engine) == TABLES
        assert current_revision(engine) == HEAD
        upgrade(engine)  # the engine form, on an up-to-date database
        assert _tables(engine) == TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    finally:
        engine.dispose()


def test_the_migration_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_the_migration_creates_the_partial_unique_index(engine: Engine) -> None:
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("alarms")}
    assert indexes["ux_alarms_active_key"]["unique"]
    assert indexes["ux_alarms_active_key"]["column_names"] == ["estate", "asset", "alarm_type"]


def test_at_most_one_active_alarm_per_key_while_cleared_ones_may_repeat(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        session.add_all([_alarm("cleared"), _alarm("cleared"), _alarm("active"),
                         _alarm("active", alarm_type="overheat")])
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(_alarm("active"))
    with sessions() as session:
        assert len(session.scalars(select(Alarm)).all()) == 4


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(TaskAssignee(task_id=999, user_id=999, assigned_at=datetime.now(UTC)))


def test_timestamps_come_back_as_aware_utc(engine: Engine) -> None:
    sessions = session_factory(engine)
    beijing = timezone(timedelta(hours=8))
    written = datetime(2026, 1, 1, 8, 30, 15, 250_000, tzinfo=beijing)
    with sessions.begin() as session:
        session.add(AuditLog(ts=written, actor="system", entity="x", entity_id="1", action="test"))
    with sessions() as session:
        read = session.scalars(select(AuditLog.ts)).one()
    assert read == written
    assert read.utcoffset() == timedelta(0)
    assert read.hour == 0  # stored and returned in UTC
    later = session_factory(engine)()
    with later:  # comparisons in SQL use the same UTC representation
        hits = later.scalars(select(AuditLog).where(AuditLog.ts > written - timedelta(seconds=1))).all()
        misses = later.scalars(select(AuditLog).where(AuditLog.ts > written)).all()
    assert len(hits) == 1
    assert misses == []


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        session.add(AuditLog(ts=datetime(2026, 1, 1), actor="system", entity="x", entity_id="1", action="t"))
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/state.db")  # parent directories are created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
