"""The scheduler's health check: healthy exactly while some process holds the leader lock."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from inspection import health
from inspection.leader import LeaderLock, lock_held


def test_the_check_follows_the_lock(engine: Engine, db_url: str, backend: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPWATCH_API__DATABASE_URL", db_url)
    if backend == "sqlite":  # one process by design: the lock is trivially held
        assert lock_held(engine)
        assert health.main() == 0
        return
    assert not lock_held(engine)
    assert health.main() == 1
    leader = LeaderLock(engine)
    assert leader.acquire()
    try:
        assert lock_held(engine)
        assert not lock_held(engine, "another-lock")
        assert health.main() == 0
    finally:
        leader.release()
    assert not lock_held(engine)
    assert health.main() == 1


def test_no_database_url_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUMPWATCH_API__DATABASE_URL", raising=False)
    assert health.main() == 1


def test_an_unreachable_database_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPWATCH_API__DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    assert health.main() == 1
