"""Shared fixtures: real servers on free loopback ports, unique MQTT topics.

Plugins: the maintenance state's fixtures (tests/support/state.py), the leaked-task check
(tests/support/leaks.py) and pytest's `pytester`, with which tests/test_leaked_tasks.py runs pytest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.services import InfluxDB, Mosquitto, Postgres

pytest_plugins = ["pytester", "tests.support.state", "tests.support.leaks"]


# Session-scoped and lazy: a server starts the first time a test asks for it, and a missing binary
# makes those tests error out with the package to install (never a skip).
@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto broker shared by the session (persistent, anonymous, loopback)."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxDB]:
    """An InfluxDB 1.x server shared by the session; `.url` is its HTTP API."""
    with InfluxDB() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server shared by the session; `.dsn` points at its `pumpwatch` database."""
    with Postgres() as server:
        yield server


@pytest.fixture
def unique_topic() -> str:
    """An MQTT topic prefix no other test uses, e.g. `test/3f2a...`."""
    return f"test/{uuid.uuid4().hex}"
