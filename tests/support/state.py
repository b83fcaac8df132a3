"""The maintenance state's fixtures, a pytest plugin (tests/conftest.py registers it).

Every test that asks for `backend` (or a fixture built on it: `db_url`, `engine`, `sessions`, the services,
`people`) runs twice: on SQLite (a copy of a migrated template file) and on PostgreSQL (a migrated database
of the session's server). PostgreSQL databases are reused: after a test, a database whose schema is still
the template's is emptied (rows deleted, sequences restarted) and handed to the next test, which costs
about 20 ms where a copy of the template costs 250 ms; a test that changed the schema gets its database
dropped. The plain helpers (`advance`, `clock_time`, `People`, `PASSWORD`, `FAST_HASHER`) are imported
by the tests that need them.
"""

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
from tests.support.services import Postgres

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


# What a test may change besides rows: relations (with their column count), types, functions, triggers,
# schemas and the migration version. A database that still matches the template here can be emptied.
_SCHEMA_FINGERPRINT = """
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
  SELECT 'r:' || n.nspname::text || '.' || c.relname::text || ':' || c.relkind::text
         || ':' || c.relnatts::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 't:' || n.nspname::text || '.' || t.typname::text
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'p:' || n.nspname::text || '.' || p.proname::text
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 'g:' || tg.tgname::text FROM pg_trigger tg WHERE NOT tg.tgisinternal
  UNION ALL SELECT 'n:' || nspname::text FROM pg_namespace
  UNION ALL SELECT 'v:' || version_num FROM alembic_version
) AS s(x)
"""


class _PgPool:
    """Migrated databases handed from test to test, emptied in between; fresh copies when none is free.

    Emptying is deleting every row with foreign-key triggers off (`session_replication_role = replica`)
    and restarting every sequence, so ids start at 1 again as in a fresh copy. Connections a test left
    open are terminated first, as `DROP DATABASE ... WITH (FORCE)` would. A database whose schema
    fingerprint differs from a fresh copy's, or that cannot be emptied, is dropped instead. Should a
    migration ever seed rows, emptying could not restore them: then no database is reused at all.
    """

    def __init__(self, postgres: Postgres, template: str) -> None:
        self.postgres = postgres
        self.template = template
        self.databases = _PgDatabases(postgres)
        self.free: list[str] = []
        self.owned: set[str] = set()
        self.fingerprint: str | None = None
        self.reset_sql = b""
        self.reuse = True

    def take(self) -> str:
        """A migrated database with no rows, for one test."""
        if self.free:
            return self.free.pop()
        name = self.databases.create(self.template)
        self.owned.add(name)
        if self.fingerprint is None:
            self._learn(name)
        return name

    def give_back(self, name: str) -> None:
        """Empty the database for the next test, or drop it if it cannot be reused."""
        try:
            reusable = self.reuse and self._empty(name)
        except psycopg.Error:
            reusable = False
        if reusable:
            self.free.append(name)
        else:
            self.owned.discard(name)
            self.databases.drop(name)

    def close(self) -> None:
        """Drop every database of the pool."""
        for name in sorted(self.owned):
            self.databases.drop(name)
        self.owned.clear()
        self.free.clear()

    def _connect(self, name: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(_pg_url(self.postgres, name), autocommit=True)

    def _learn(self, name: str) -> None:
        """The schema fingerprint and the emptying statements, from a fresh copy of the template."""
        with self._connect(name) as conn:
            row = conn.execute(_SCHEMA_FINGERPRINT.encode()).fetchone()
            tables = [str(r[0]) for r in conn.execute(b"SELECT tablename FROM pg_tables WHERE schemaname = "
                                                       b"'public' AND tablename <> 'alembic_version'")]
            sequences = [str(r[0]) for r in conn.execute(
                b"SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")]
            seeded = [table for table in tables
                      if conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1'.encode()).fetchone() is not None]
        assert row is not None
        self.reuse = not seeded
        self.fingerprint = str(row[0])
        statements = ["SET session_replication_role = replica"]
        statements += [f'DELETE FROM "{table}"' for table in tables]
        statements += [f'ALTER SEQUENCE "{sequence}" RESTART' for sequence in sequences]
        statements.append("SET session_replication_role = DEFAULT")
        self.reset_sql = ";\n".join(statements).encode()

    def _empty(self, name: str) -> bool:
        with self._connect(name) as conn:
            conn.execute(b"SET lock_timeout = '10s'")
            conn.execute(b"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                         b"WHERE datname = current_database() AND pid <> pg_backend_pid()")
            row = conn.execute(_SCHEMA_FINGERPRINT.encode()).fetchone()
            if row is None or str(row[0]) != self.fingerprint:
                return False
            conn.execute(self.reset_sql)
        return True


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


@pytest.fixture(scope="session")
def pg_pool(postgres: Postgres, pg_template: str) -> Iterator[_PgPool]:
    """The session's reusable migrated PostgreSQL databases."""
    pool = _PgPool(postgres, pg_template)
    yield pool
    pool.close()


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
    if migrated:
        pool: _PgPool = request.getfixturevalue("pg_pool")
        name = pool.take()
        try:
            yield _pg_url(postgres, name)
        finally:
            pool.give_back(name)
        return
    databases = _PgDatabases(postgres)
    name = databases.create()
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
    """A migrated database with no rows (a fresh copy or an emptied one), on each backend."""
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
