"""State-layer fixtures: every service test runs on SQLite (temp file) and on PostgreSQL (fresh database)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.db import make_engine, session_factory, upgrade
from maintenance.models import User, utc_from_epoch
from maintenance.tasks import TaskService
from pumpwatch.clock import FakeClock
from tests.services import Postgres

BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "correct horse battery"
# Cheap argon2 parameters: tests hash hundreds of passwords; production keeps the library defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def advance(clock: FakeClock, seconds: float) -> None:
    """Move the fake clock forward from synchronous code (nothing sleeps on it in these tests)."""
    asyncio.run(clock.advance(seconds))


def clock_time(clock: FakeClock) -> datetime:
    """The fake clock's time as the services see it."""
    return utc_from_epoch(clock.now())


def _admin(postgres: Postgres) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(postgres.dsn, autocommit=True)


def _pg_url(postgres: Postgres, database: str) -> str:
    return postgres.dsn.rsplit("/", 1)[0] + "/" + database


class _PgDatabases:
    """Creates throwaway databases (optionally copies of a template) and drops them."""

    def __init__(self, postgres: Postgres) -> None:
        self.postgres = postgres

    def create(self, template: str | None = None) -> str:
        name = f"test_{uuid.uuid4().hex}"
        with _admin(self.postgres) as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}'.encode())
        return name

    def drop(self, name: str) -> None:
        with _admin(self.postgres) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file; each test gets its own copy."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # fold the WAL in, so copying one file is enough
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def pg_template(postgres: Postgres) -> Iterator[str]:
    """A migrated PostgreSQL database used as the template of each test's database."""
    databases = _PgDatabases(postgres)
    name = databases.create()
    upgrade(_pg_url(postgres, name))
    yield name
    databases.drop(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database under test."""
    return str(request.param)


def _fresh_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path,
               migrated: bool) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "state.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    databases = _PgDatabases(postgres)
    name = databases.create(request.getfixturevalue("pg_template") if migrated else None)
    try:
        yield _pg_url(postgres, name)
    finally:
        databases.drop(name)


@pytest.fixture
def empty_db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no tables, on each backend."""
    yield from _fresh_url(request, backend, tmp_path, migrated=False)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to head, on each backend."""
    yield from _fresh_url(request, backend, tmp_path, migrated=True)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test's database, disposed afterwards."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """The session factory the services get."""
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    """Test time, starting 2026-01-01T00:00:00Z."""
    return FakeClock()


@pytest.fixture
def auth(sessions: sessionmaker[Session], clock: FakeClock) -> AuthService:
    """The auth service with fast password hashing."""
    return AuthService(sessions, clock, hasher=FAST_HASHER)


@pytest.fixture
def tasks(sessions: sessionmaker[Session], clock: FakeClock) -> TaskService:
    """The task service with the default SLA."""
    return TaskService(sessions, clock)


@pytest.fixture
def alarms(sessions: sessionmaker[Session], clock: FakeClock, tasks: TaskService) -> AlarmService:
    """The alarm service with the default 24 h reopen window."""
    return AlarmService(sessions, clock, tasks)


@dataclass(frozen=True)
class People:
    """One user per role, plus a second technician and a second supervisor."""

    operator: User
    technician: User
    technician2: User
    supervisor: User
    supervisor2: User
    director: User
    admin: User


@pytest.fixture
def people(auth: AuthService) -> People:
    """The cast of the workflow tests."""
    def make(name: str, *roles: str) -> User:
        return auth.create_user(name, PASSWORD, roles=roles, display_name=name.title())

    return People(operator=make("olivia", "operator"), technician=make("tom", "technician"),
                  technician2=make("tina", "technician"), supervisor=make("sam", "supervisor"),
                  supervisor2=make("sue", "supervisor"), director=make("dora", "director"),
                  admin=make("ada", "admin"))
