"""A number that moves on after every commit in this process that wrote to the state database.

An answer computed from the database at one number is still what the database holds while the number
stays (for what this process writes: another process's writes are not seen here). The list routes keep
their answers for a second on it (`api.answer_cache`). One tracker per session factory (`writes_of`),
fed by SQLAlchemy's session events, so no write path can forget to move it: rows added, changed or
deleted through the ORM, and UPDATE and DELETE statements run through a session.
"""

from __future__ import annotations

import itertools
import threading
import weakref

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

_WROTE = "pumpwatch_wrote"  # Session.info: the open transaction wrote something


class WriteVersion:
    """Moves on after each commit in which a session of `sessions` wrote."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._counter = itertools.count(1)
        self.version = 0
        event.listen(sessions, "after_flush", self._flushed)
        event.listen(sessions, "do_orm_execute", self._executed)
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_soft_rollback", self._rolled_back)

    @staticmethod
    def _flushed(session: Session, _flush: UOWTransaction) -> None:
        session.info[_WROTE] = True

    @staticmethod
    def _executed(state: ORMExecuteState) -> None:
        if state.is_update or state.is_delete or state.is_insert:
            state.session.info[_WROTE] = True

    def _committed(self, session: Session) -> None:
        if session.info.pop(_WROTE, False):
            self.version = next(self._counter)

    @staticmethod
    def _rolled_back(session: Session, _previous: object) -> None:
        session.info.pop(_WROTE, None)


_TRACKERS: weakref.WeakKeyDictionary[sessionmaker[Session], WriteVersion] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def writes_of(sessions: sessionmaker[Session]) -> WriteVersion:
    """The tracker of a session factory (made on the first call)."""
    with _LOCK:
        tracker = _TRACKERS.get(sessions)
        if tracker is None:
            tracker = _TRACKERS[sessions] = WriteVersion(sessions)
        return tracker
