"""The scheduler's leader lock: one scheduler process acts, the others wait to take over.

On PostgreSQL the lock is a session advisory lock (`pg_try_advisory_lock`) held on a dedicated
connection: it is released when the holder releases it or its connection dies, so a crashed leader
never blocks the others for long. On SQLite (one machine, one process by design) the lock is trivially
held. Leadership is a convenience, not the guarantee: the unique plan_key is what rules out duplicates.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LeaderLock:
    """A non-blocking leader lock; `acquire` both takes it and checks it is still held."""

    def __init__(self, engine: Engine, name: str = "pumpwatch-inspection") -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._conn: Connection | None = None
        self._trivial = engine.dialect.name != "postgresql"

    @property
    def held(self) -> bool:
        """True while this process believes it holds the lock (checked again by `acquire`)."""
        return self._trivial or self._conn is not None

    def acquire(self) -> bool:
        """Take the lock if free, or confirm it is still ours; False when another process holds it."""
        if self._trivial:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("leader lock %s: connection lost, leadership given up", self.name)
                self._drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except DBAPIError:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("leader lock %s taken", self.name)
        return True

    def release(self) -> None:
        """Give the lock up (a no-op when not held)."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self._conn.close()
        except DBAPIError:
            self._drop()  # a dead connection has released the lock already
        self._conn = None
        log.info("leader lock %s released", self.name)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()  # never hand a connection of unknown lock state back to the pool
            self._conn.close()
            self._conn = None


def lock_held(engine: Engine, name: str = "pumpwatch-inspection") -> bool:
    """Whether some session holds the leader lock `name` (always true on SQLite, where it is trivial)."""
    if engine.dialect.name != "postgresql":
        return True
    key = lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks shows a bigint key as two unsigned halves
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1 AND l.classid::bigint = :high AND l.objid::bigint = :low)"),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF}).scalar())
