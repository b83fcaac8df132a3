"""`bench.ingest --collectors 2` at tiny scale: two collector processes of one group store every reading."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import ingest
from tests.support.services import InfluxDB, Mosquitto


@pytest.mark.e2e
async def test_two_collectors_of_one_group_store_every_reading_and_their_cpu_is_summed(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    args = argparse.Namespace(values_per_message=5, sensors=20, seconds=3.0, rate=2_000.0, publisher="paho",
                              publishers=1, stall_timeout=20.0, batch_size=None, commit_window=None,
                              collectors=2)
    result = await ingest.run_collector(args, mosquitto, influxdb, tmp_path)
    assert result["collectors"] == 2
    assert result["readings_published"] > 0
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert not result["stalled"]
    assert len(result["members_cpu_s"]) == 1
    assert result["members_cpu_s"][0] > 0  # the other member worked, and counts in the collectors' CPU
    assert result["collector_cpu_s"] > result["members_cpu_s"][0]
    # each member reports its own status: both took part of the messages
    assert result["status_line"].count("readings stored") == 2
    stored = [int(part.split(" readings stored")[0].rsplit(" ", 1)[-1])
              for part in result["status_line"].splitlines()]
    assert all(n > 0 for n in stored)
    assert sum(stored) == result["readings_published"]
