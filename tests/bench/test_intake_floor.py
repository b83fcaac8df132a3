"""`bench.intake_floor` at tiny scale: every message committed (or acknowledged), and nothing else done."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from bench import intake_floor
from pumpwatch.mqtturl import BrokerAddress
from tests.support.services import Mosquitto


def floor_args(mode: str, window: float = 0.005) -> argparse.Namespace:
    return argparse.Namespace(mode=mode, values_per_message=5, sensors=10, seconds=2.0, rate=1_000.0,
                              commit_window=window, publisher="paho", publishers=1)


@pytest.mark.e2e
def test_the_floor_commits_every_message_in_group_commits_before_acknowledging(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = intake_floor.run(floor_args("commit", window=0.02), mosquitto, tmp_path)
    assert result["messages_published"] > 0
    assert result["messages_taken"] == result["messages_published"]
    assert result["lost"] == 0
    # 200 messages/s for 2 s in 20 ms windows: commits of several messages each, not one per message
    assert 0 < result["commits"] < result["messages_published"] / 2
    with sqlite3.connect(tmp_path / "floor.db") as db:
        rows, messages, payloads = db.execute(
            "SELECT count(*), sum(count), group_concat(data, x'0a') FROM payloads").fetchone()
    assert rows == result["commits"]
    assert messages == result["messages_published"]
    assert payloads.count('"s4"') == result["messages_published"]  # the raw payloads, as published
    assert result["cpu_us_per_reading"] == pytest.approx(result["cpu_us_per_message"] / 5)


@pytest.mark.e2e
def test_the_session_alone_acknowledges_every_read_and_stores_nothing(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = intake_floor.run(floor_args("ack"), mosquitto, tmp_path)
    assert result["messages_published"] > 0
    assert result["messages_taken"] == result["messages_published"]
    assert result["commits"] == 0
    with sqlite3.connect(tmp_path / "floor.db") as db:
        assert db.execute("SELECT count(*) FROM payloads").fetchone() == (0,)


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode 'fsync'"):
        intake_floor.FloorIntake(BrokerAddress("127.0.0.1", 1), "x/+", tmp_path / "f.db",
                                 mode="fsync")
