"""Members of one shared-subscription group never stamp one sensor's readings with the same instant.

The store keeps one point per sensor and instant, and Mosquitto hands one sensor's messages to any
member of the group: two members taking two messages in the same instant would leave one point where
two readings were. Each member's MQTT readings fall on its own lane of microseconds (`TimeLane`), and
the presence moves a member off a lane that one who joined earlier holds.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.estates import source_view
from collector.group import TIME_LANES, GroupPresence, first_lane, presence_topic
from collector.pipeline.validate import Validator
from collector.service import CollectorService
from collector.sources.mqtt_decode import MqttDecoder, TimeLane
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.sitefile import parse_site
from tests.support.influx import influx_query
from tests.support.mqtt import create_session
from tests.support.services import HOST, InfluxDB, Mosquitto
from tests.support.waiting import eventually

SITE = """
site: {id: lanes, name: {zh: 小区, en: Estate}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: flow, kind: flow, range: [0, 1000000], source: mqtt, expected_period: 3600}
mqtt:
  - topic: "%(prefix)s/flow"
%(mapping)s
"""
NUMBER = """    format: number
    values: [{sensor: flow}]"""
STAMPED = """    format: json
    timestamp_field: ts
    values: [{sensor: flow, field: v}]"""
NOW = 1_796_000_000.123456  # 2026-11-30: where a float's resolution is 238 ns
instants = st.floats(min_value=1.0e9, max_value=4.0e9, allow_nan=False)


def micro(ts: float) -> int:
    return round(ts * 1e6)


@given(instants, st.integers(min_value=1, max_value=64), st.data())
def test_an_instant_moves_to_the_first_microsecond_of_its_lane(ts: float, lanes: int,
                                                                data: st.DataObject) -> None:
    lane = TimeLane(lanes, data.draw(st.integers(min_value=0, max_value=lanes - 1)))
    at = lane.at_or_after(ts)
    assert micro(at) % lanes == lane.index
    slack = 2 * math.ulp(ts)  # a float's rounding: 238 ns until 2038, 477 ns after
    assert ts - 0.5e-6 - slack <= at <= ts + (lanes - 0.5) * 1e-6 + slack  # from the nearest µs on
    assert lane.at_or_after(at) == at  # an instant on the lane stays where it is
    assert micro(lane.after(at)) == micro(at) + lanes  # the next one is a lane's width on


@given(instants, instants, st.integers(min_value=2, max_value=64), st.data())
def test_two_lanes_never_give_one_instant(a: float, b: float, lanes: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=0, max_value=lanes - 1))
    second = data.draw(st.integers(min_value=0, max_value=lanes - 1).filter(lambda n: n != first))
    one, other = TimeLane(lanes, first).at_or_after(a), TimeLane(lanes, second).at_or_after(b)
    assert one != other
    assert int(one * 1e9 + 0.5) != int(other * 1e9 + 0.5)  # nor the nanoseconds the line protocol writes


def test_a_lane_outside_its_set_is_refused() -> None:
    for lanes, index in ((0, 0), (4, 4), (4, -1)):
        with pytest.raises(ValueError, match="lane"):
            TimeLane(lanes, index)
    lane = TimeLane(16, 3)
    with pytest.raises(ValueError, match="lane 16 of 16"):
        lane.move(16)
    assert lane.index == 3


def decoder(lane: TimeLane | None) -> MqttDecoder:
    site = parse_site(SITE % {"prefix": "p", "mapping": NUMBER}, "lanes.yaml")
    return MqttDecoder(source_view(site).mqtt, SensorCatalog(site), lane=lane)


def test_two_members_decoding_messages_of_one_instant_give_apart_timestamps() -> None:
    members = [decoder(TimeLane(TIME_LANES, 3)), decoder(TimeLane(TIME_LANES, 7))]
    stamps = [[r.ts for n in range(50) for r in d.decode("p/flow", str(n).encode(), NOW).readings]
              for d in members]
    assert [len(own) for own in stamps] == [50, 50]
    for own in stamps:
        assert own == sorted(own)  # one member: each later than the one before
        assert len(set(own)) == 50
        assert own[-1] - own[0] < 50 * TIME_LANES * 1e-6 + 1e-9
    assert not set(stamps[0]) & set(stamps[1])
    assert {micro(ts) % TIME_LANES for ts in stamps[0]} == {3}
    assert {micro(ts) % TIME_LANES for ts in stamps[1]} == {7}




@pytest.mark.parametrize(("stamp", "kept"), [
    ("1e308", False), ("1e305", False),  # past the lanes' horizon even as milliseconds: left as they came
    ("-1e300", True),  # not a timestamp: the receive time, on the lane
    ("1796000000500", True),  # milliseconds of 2026-11-30: on the lane
])
def test_a_device_time_no_clock_gives_keeps_no_lane_and_is_judged_by_the_validator(stamp: str,
                                                                                  kept: bool) -> None:
    site = parse_site(SITE % {"prefix": "p", "mapping": STAMPED}, "stamped.yaml")
    catalog = SensorCatalog(site)
    member = MqttDecoder(source_view(site).mqtt, catalog, lane=TimeLane(TIME_LANES, 3))
    payload = f'{{"ts": {stamp}, "v": 1.5}}'.encode()
    decoded = [member.decode("p/flow", payload, NOW) for _ in range(2)]  # the second one steps on from it
    readings = [r for d in decoded for r in d.readings]
    assert len(readings) == 2
    verdict = Validator(catalog).judge(readings, NOW)
    if kept:
        assert {micro(r.ts) % TIME_LANES for r in readings} == {3}
        assert len(verdict.kept) == 2
    else:
        assert verdict.rejected == {"bad_timestamp": 2}


def test_alone_a_collector_steps_one_microsecond_as_before() -> None:
    alone = decoder(None)
    stamps = [r.ts for n in range(3) for r in alone.decode("p/flow", str(n).encode(), NOW).readings]
    assert stamps == [NOW, NOW + 1e-6, NOW + 2e-6]


def test_a_lane_changed_while_decoding_keeps_the_sensor_s_timestamps_rising() -> None:
    lane = TimeLane(TIME_LANES, 9)
    member = decoder(lane)
    before = [r.ts for r in member.decode("p/flow", b"1", NOW).readings]
    lane.move(2)
    after = [r.ts for n in range(3) for r in member.decode("p/flow", str(n).encode(), NOW).readings]
    assert before[0] < after[0] < after[1] < after[2]
    assert {micro(ts) % TIME_LANES for ts in after} == {2}


# --- the presence keeps the members' lanes apart (real Mosquitto) ---------------------------------------


async def test_of_two_members_on_one_lane_the_later_moves_to_the_lowest_free_lane(
        mosquitto: Mosquitto) -> None:
    broker = BrokerAddress(HOST, mosquitto.port)
    group = f"g{uuid.uuid4().hex[:6]}"
    looks: list[tuple[int, int]] = []
    earlier = GroupPresence(broker, group, "member-a", lambda _m: None, lane=TimeLane(TIME_LANES, 0))
    earlier.start()
    try:
        async def known() -> bool:
            return earlier.client.is_connected()

        await eventually(known, 10, 0.05)
        await asyncio.sleep(0.3)  # its presence retained at the broker
        later = GroupPresence(broker, group, "member-b", lambda _m: None, lane=TimeLane(TIME_LANES, 0),
                              on_lane=lambda lane, clashes: looks.append((lane, clashes)))
        later.start()
        try:
            async def apart() -> bool:  # `on_lane` runs after the move: wait for it too
                return bool(looks) and looks[-1] == (1, 0) and earlier.members == {"member-a", "member-b"}

            await eventually(apart, 10, 0.05)
            assert later.lane.index == 1
            assert earlier.lane.index == 0  # the one that joined first keeps its lane
            async def told() -> bool:  # its presence says so to the others, through the broker
                return earlier._lanes.get("member-b", (0.0, -1))[1] == 1

            await eventually(told, 10, 0.05)
            await asyncio.sleep(0.5)
            assert (earlier.lane.index, later.lane.index) == (0, 1)  # no member moves back and forth
        finally:
            later.stop()
    finally:
        earlier.stop()


async def retain(mosquitto: Mosquitto, topic: str, payload: bytes) -> None:
    """Publish a retained presence (or clear one with an empty payload), as another member would."""
    await asyncio.to_thread(publish.single, topic, payload, qos=1, retain=True, hostname=HOST,
                            port=mosquitto.port)


async def test_more_members_than_lanes_are_counted_not_hidden(mosquitto: Mosquitto) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    for n in range(TIME_LANES):  # members that joined earlier, one on each lane
        payload = json.dumps({"since": time.time() - 60, "lane": n}).encode()
        await retain(mosquitto, presence_topic(group, f"old-{n:02d}"), payload)
    looks: list[tuple[int, int]] = []
    presence = GroupPresence(BrokerAddress(HOST, mosquitto.port), group, "newcomer", lambda _m: None,
                             lane=TimeLane(TIME_LANES, 5), on_lane=lambda lane, n: looks.append((lane, n)))
    presence.start()
    try:
        async def all_seen() -> bool:  # and told of its lane after the last of them
            return len(presence.members) == TIME_LANES + 1 and bool(looks) and looks[-1][1] == 1

        await eventually(all_seen, 10, 0.05)
        # It moved to free lanes while it learnt the others one by one; now none is left.
        assert looks[-1] == (presence.lane.index, 1)
    finally:
        presence.stop()
        for n in range(TIME_LANES):
            await retain(mosquitto, presence_topic(group, f"old-{n:02d}"), b"")


async def test_a_member_that_announces_no_lane_is_counted_as_a_clash_until_it_leaves(
        mosquitto: Mosquitto) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    older = presence_topic(group, "older-version")
    await retain(mosquitto, older, json.dumps({"since": time.time() - 60}).encode())
    looks: list[tuple[int, int]] = []
    presence = GroupPresence(BrokerAddress(HOST, mosquitto.port), group, "newer", lambda _m: None,
                             lane=TimeLane(TIME_LANES, 4), on_lane=lambda lane, n: looks.append((lane, n)))
    presence.start()
    try:
        async def counted() -> bool:
            return presence.members == {"newer", "older-version"} and bool(looks) and looks[-1] == (4, 1)

        await eventually(counted, 10, 0.05)
        await retain(mosquitto, older, b"")

        async def gone() -> bool:
            return presence.members == {"newer"} and looks[-1] == (4, 0)

        await eventually(gone, 10, 0.05)
    finally:
        presence.stop()


def test_a_member_starts_on_the_lane_its_client_id_gives() -> None:
    assert first_lane("collector-a") == first_lane("collector-a")
    assert {first_lane(f"collector-{n}") for n in range(200)} == set(range(TIME_LANES))


# --- end to end: two collectors of one group, every message of one sensor in one instant -------------


class FrozenNow(SystemClock):
    """Wall-clock waits, but every message received in the same instant."""

    def now(self) -> float:
        return NOW


async def test_two_members_taking_one_sensor_in_one_instant_store_every_reading(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    site = parse_site(SITE % {"prefix": unique_topic, "mapping": NUMBER}, "lanes.yaml")
    group, database = f"g{uuid.uuid4().hex[:6]}", f"lanes_{uuid.uuid4().hex[:8]}"
    ids = [f"lane-a-{uuid.uuid4().hex[:6]}", f"lane-b-{uuid.uuid4().hex[:6]}"]
    for client_id in ids:  # sessions made first: the broker shares the messages from the first one on
        topic = f"$share/{group}/{unique_topic}/flow"
        await asyncio.to_thread(create_session, mosquitto.port, client_id, topic)
    members = [CollectorService(site, Settings(
        influx=InfluxSettings(url=influxdb.url, database=database, timeout=2.0),
        collector=CollectorSettings(state_dir=tmp_path / client_id, client_id=client_id, share_group=group),
        mqtt=MqttSettings(url=mosquitto.url)), FrozenNow(), BrokerAddress(HOST, mosquitto.port))
        for client_id in ids]
    tasks = [asyncio.create_task(service.run()) for service in members]
    try:
        async def grouped() -> bool:
            return all(s.parts.metrics.total(s.parts.metrics.group_members) == 2
                       and s.parts.metrics.total(s.parts.metrics.mqtt_connected) for s in members)

        await eventually(grouped, 15, 0.05)
        lanes = {s.parts.metrics.total(s.parts.metrics.group_time_lane) for s in members}
        assert len(lanes) == 2
        sent = 60
        messages: list[Any] = [(f"{unique_topic}/flow", str(n), 1, False) for n in range(sent)]
        await asyncio.to_thread(publish.multiple, messages, hostname=HOST, port=mosquitto.port)

        async def all_written() -> bool:
            return sum(s.parts.metrics.total(s.parts.metrics.written) for s in members) >= sent

        await eventually(all_written, 20, 0.05)
        taken = [s.parts.metrics.total(s.parts.metrics.mqtt_messages) for s in members]
        assert all(n > 0 for n in taken)  # both members took part of them
        assert sum(taken) == sent
        rows = await influx_query(influxdb.url, database,
                                  "SELECT count(value), count(distinct(value)) FROM reading")
        assert [row[1:] for row in rows] == [[sent, sent]]  # every reading its own point
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
