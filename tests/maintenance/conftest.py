"""Maintenance tests reuse the state-layer fixtures: each database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.api.conftest import (
    alarms,
    auth,
    backend,
    clock,
    db_url,
    empty_db_url,
    engine,
    people,
    pg_template,
    sessions,
    sqlite_template,
    tasks,
)

__all__ = ["alarms", "auth", "backend", "clock", "db_url", "empty_db_url", "engine", "people", "pg_template",
           "sessions", "sqlite_template", "tasks"]
