"""Alembic environment: migrate the connection `maintenance.db.upgrade` passes in, or the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from maintenance.db import make_engine
from maintenance.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite alters tables by copy-and-move; PostgreSQL ignores it.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the caller's connection when given, else a fresh engine on `sqlalchemy.url`."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run maintenance.db.upgrade")
run_migrations_online()
