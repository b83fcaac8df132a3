"""The write version: it moves on after each commit of this process that wrote, on both databases, and only
then; the list routes' one-second answers hang on it."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from maintenance.auth import AuthService
from maintenance.models import Alarm, User
from maintenance.writes import writes_of
from pumpwatch.clock import FakeClock
from tests.support.state import PASSWORD


def test_a_committed_write_moves_the_version_and_nothing_else_does(sessions: sessionmaker[Session],
                                                                    clock: FakeClock) -> None:
    writes = writes_of(sessions)
    assert writes_of(sessions) is writes  # one per session factory: every service sees the same number
    auth = AuthService(sessions, clock)
    before = writes.version
    auth.create_user("ming", PASSWORD, roles=["technician"])  # rows added through the ORM
    added = writes.version
    assert added != before
    with sessions() as session:  # reading only
        assert session.scalar(select(func.count()).select_from(User)) == 1
    assert writes.version == added
    with sessions.begin() as session:  # an UPDATE statement, no object loaded
        session.execute(update(Alarm).where(Alarm.id == -1).values(last_value=1.0))
    updated = writes.version
    assert updated != added
    with sessions() as session:  # written, then rolled back: nothing was committed
        session.scalars(select(User)).one().display_name = "someone else"
        session.flush()
        session.rollback()
    assert writes.version == updated
    with sessions.begin() as session:  # a commit that wrote nothing
        session.scalar(select(func.count()).select_from(User))
    assert writes.version == updated
