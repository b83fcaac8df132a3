"""Engines, sessions and schema migrations for the state database (SQLite by default, PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pumpwatch.settings import Settings

DEFAULT_URL = "sqlite:///.state/pumpwatch.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SQLITE_BUSY_MS = 30_000


def database_url(url: str | None = None) -> str:
    """The SQLAlchemy URL for `url`: the SQLite default when None; PostgreSQL through psycopg 3."""
    if not url:
        return DEFAULT_URL
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def state_url(settings: Settings) -> str:
    """The state database: the configured URL, or SQLite in the state directory."""
    return settings.api.database_url or f"sqlite:///{settings.collector.state_dir / 'pumpwatch.db'}"


def state_engine(settings: Settings) -> Engine:
    """The engine of a long-running process on the configured state database.

    PostgreSQL keeps up to 20 connections open and 20 more at peaks: anyio runs up to 40 sync routes
    at once, and with SQLAlchemy's default (5 kept, 10 more) a busy API opened and closed a
    connection per request.
    """
    url = state_url(settings)
    pool: dict[str, Any] = {} if url.startswith("sqlite") else {"pool_size": 20, "max_overflow": 20}
    return make_engine(url, **pool)


def json_loads(text: str | bytes) -> Any:
    """JSON from the database; the empty lists most task columns hold skip the decoder."""
    if text in (b"[]", "[]"):
        return []
    return _decode_json(text.decode() if isinstance(text, bytes) else text)


_decode_json = json.JSONDecoder().decode


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: SQLite in .state/); SQLite gets foreign keys, WAL, immediate writes."""
    sa_url = make_url(database_url(url))
    kwargs.setdefault("json_deserializer", json_loads)
    if sa_url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(sa_url, **kwargs)
    if sa_url.database and sa_url.database != ":memory:":
        Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, **kwargs)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """Per-connection pragmas, and BEGIN IMMEDIATE so two writers queue instead of failing to upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver, so the "begin" hook below decides how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
            cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads, then writes while another writer holds the lock, fails at once
        # with "database is locked" (the busy timeout does not apply); an immediate one waits its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on `engine` whose objects stay readable after commit (services hand them to routes)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged migrations; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return config


def upgrade(engine_or_url: Engine | str | None = None, revision: str = "head") -> None:
    """Migrate the database to `revision`; running it on an up-to-date database changes nothing."""
    if isinstance(engine_or_url, Engine):
        config = alembic_config(engine_or_url.url.render_as_string(hide_password=False))
        with engine_or_url.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return
    engine = make_engine(engine_or_url)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
