"""The edge-gateway benchmark without its peers: the ThingsBoard IoT Gateway configuration and the
Node-RED flow name every device and register, the counting devices number their readings, and the
centre's count turns what arrived into exact losses and repeats."""

from __future__ import annotations

import array
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bench import edge_peers, thingsboard
from bench.modbus_poll import make_devices
from bench.nodered_flows import modbus_mqtt_flow
from pumpwatch.edge_wire import encode_batch
from pumpwatch.readings import Quality, Reading
from pumpwatch.sitefile import parse_site

DEVICES = make_devices(3, 20, 1, 1.0, [5020, 5021, 5022])


def test_the_thingsboard_gateway_reads_every_register_of_every_device_over_rtu(tmp_path: Path) -> None:
    thingsboard.write_config(tmp_path, "10.213.1.1", 1884, "token", "sqlite", DEVICES)
    main = json.loads((tmp_path / "tb_gateway.json").read_text())
    modbus = json.loads((tmp_path / "modbus.json").read_text())
    assert [c["configuration"] for c in main["connectors"]] == ["modbus.json"]
    assert (main["thingsboard"]["host"], main["thingsboard"]["port"], main["thingsboard"]["qos"]) == (
        "10.213.1.1", 1884, 1)
    assert main["thingsboard"]["security"] == {"type": "accessToken", "accessToken": "token"}
    assert main["storage"]["type"] == "sqlite"
    assert main["storage"]["data_file_path"] == f"{tmp_path / 'data'}/"  # a folder: the gateway names it
    slaves = modbus["master"]["slaves"]
    assert [(s["deviceName"], s["port"], s["type"], s["method"], s["unitId"], s["pollPeriod"])
            for s in slaves] == [("plc000", 5020, "tcp", "rtu", 1, 1000),
                                 ("plc001", 5021, "tcp", "rtu", 1, 1000),
                                 ("plc002", 5022, "tcp", "rtu", 1, 1000)]
    for slave in slaves:
        [read] = slave["timeseries"]
        start, end = (int(n) for n in read["address"].split("-"))
        assert (start, end, read["maxRegistersPerRequest"], read["functionCode"]) == (0, 19, 20, 3)
        assert read["tag"] == "r${address}"
    assert [thingsboard.register_key(j) for j in (0, 19)] == ["r0", "r19"]


def test_the_file_storage_is_a_folder_and_an_unknown_storage_is_refused(tmp_path: Path) -> None:
    config = thingsboard.gateway_config("127.0.0.1", 1883, "t", "file", tmp_path)
    assert config["storage"]["type"] == "file"
    assert config["storage"]["data_folder_path"].endswith("/")
    with pytest.raises(ValueError, match="storage"):
        thingsboard.gateway_config("127.0.0.1", 1883, "t", "redis", tmp_path)


def test_registers_that_are_not_adjacent_are_refused_by_both_peers() -> None:
    spread = make_devices(1, 20, 10, 1.0, [5020])
    with pytest.raises(ValueError, match="adjacent"):
        thingsboard.modbus_config(spread)
    with pytest.raises(ValueError, match="adjacent"):
        modbus_mqtt_flow(spread, "10.213.1.1", 1884)


def test_the_centre_answers_the_gateways_session_limits_request_and_nothing_else() -> None:
    reply = thingsboard.session_limits_reply(
        "v1/devices/me/rpc/request/7", b'{"method": "getSessionLimits", "params": {"timeout": 5000}}')
    assert reply is not None
    topic, payload = reply
    assert topic == "v1/devices/me/rpc/response/7"
    limits = json.loads(payload)
    assert limits["rateLimits"]["telemetryDataPoints"] == "0:0,"
    assert limits["gatewayRateLimits"]["messages"] == "0:0,"
    assert thingsboard.session_limits_reply("v1/devices/me/rpc/request/8", b'{"method": "reboot"}') is None
    assert thingsboard.session_limits_reply("v1/gateway/telemetry", b"{}") is None
    assert thingsboard.session_limits_reply("v1/devices/me/rpc/request/9", b"not json") is None


def test_the_node_red_edge_reads_each_device_over_rtu_and_publishes_at_qos_1() -> None:
    flows, credentials = modbus_mqtt_flow(DEVICES, "10.213.1.1", 1884)
    ids = {node["id"] for node in flows}
    refs = [target for node in flows for output in node.get("wires", []) for target in output]
    refs += [node[key] for node in flows for key in ("z", "server") if key in node]
    refs += [node["broker"] for node in flows if node["type"] == "mqtt out"]
    assert [ref for ref in refs if ref not in ids] == []
    assert credentials == {}
    clients = {n["id"]: n for n in flows if n["type"] == "modbus-client"}
    reads = [n for n in flows if n["type"] == "modbus-read"]
    assert [(clients[r["server"]]["tcpPort"], clients[r["server"]]["tcpType"], r["topic"], r["adr"],
             r["quantity"], r["rate"]) for r in reads] == [
        ("5020", "TELNET", "plc000", "0", "20", "1000"), ("5021", "TELNET", "plc001", "0", "20", "1000"),
        ("5022", "TELNET", "plc002", "0", "20", "1000")]
    [out] = [n for n in flows if n["type"] == "mqtt out"]
    assert out["qos"] == "1"
    [broker] = [n for n in flows if n["type"] == "mqtt-broker"]
    assert (broker["broker"], broker["port"]) == ("10.213.1.1", "1884")
    assert all(r["wires"][0] == ["to-message"] for r in reads)


def test_no_config_node_names_itself() -> None:
    """Node-RED reads any string property of a config node that equals a node id as a dependency: a
    broker node whose name is its own id is a circular dependency and the flow never starts."""
    flows, _ = modbus_mqtt_flow(DEVICES, "10.213.1.1", 1884)
    ids = {node["id"] for node in flows}
    for node in flows:
        if "z" in node or node["type"] == "tab":
            continue  # not a config node
        named = [value for key, value in node.items()
                 if key != "id" and isinstance(value, str) and value in ids]
        assert named == [], node["id"]


def test_the_pumpwatch_site_has_a_bus_per_device_and_a_sensor_per_register() -> None:
    site = parse_site(edge_peers.edge_site(DEVICES), "edge-bench.yaml")
    assert [(b.id, b.tcp_port, b.framer.value) for b in site.buses] == [
        ("bus-plc000", 5020, "rtu"), ("bus-plc001", 5021, "rtu"), ("bus-plc002", 5022, "rtu")]
    assert [(d.id, d.bus, len(d.points)) for d in site.modbus] == [
        ("plc000", "bus-plc000", 20), ("plc001", "bus-plc001", 20), ("plc002", "bus-plc002", 20)]
    sensors = {sensor.id for _room, _equipment, sensor in site.iter_sensors()}
    assert {edge_peers.sensor_of(d, r) for d in range(3) for r in range(20)} <= sensors
    assert [e.id for e in site.edges] == ["gw"]


def test_each_register_counts_the_reads_that_returned_it() -> None:
    counting = edge_peers.CountingRegisters(2, 20)
    action = counting.action(1)
    block = [0] * 21  # the simulator's block of device 1's holding registers (and a sentinel)

    async def reads() -> list[Any]:
        return [await action(3, 0, 0, 20, block, None), list(block[:20]),
                await action(3, 0, 5, 2, block, None), list(block[:20]),
                await action(3, 0, 19, 2, block, None), await action(6, 0, 0, 1, block, [1])]

    whole, first, part, second, beyond, write = asyncio.run(reads())
    assert (whole, part) == (None, None)
    assert first == [1] * 20
    assert second == [1] * 5 + [2, 2] + [1] * 13
    assert beyond is not None  # past the last register: an exception, nothing counted
    assert write is not None
    assert counting.counters[1] == [1] * 5 + [2, 2] + [1] * 13
    assert counting.counters[0] == [0] * 20
    assert counting.produced() == 22
    assert [len(times) for times in counting.served[1][4:8]] == [1, 2, 2, 1]


def test_every_message_shape_decodes_into_sensor_register_value() -> None:
    telemetry = {"plc002": [{"ts": 1, "values": {"r0": 5, "r19": 6}}, {"ts": 2, "values": {"r0": 7}}],
                 "other": [{"ts": 1, "values": {"x": 1}}]}
    assert edge_peers.decode_thingsboard("v1/gateway/telemetry", json.dumps(telemetry).encode()) == (
        [(2, 0, 5), (2, 19, 6), (2, 0, 7)], 1, None)
    message = {"ts": 1, "values": [3, 4]}
    assert edge_peers.decode_nodered("bench/edge/plc001", json.dumps(message).encode()) == (
        [(1, 0, 3), (1, 1, 4)], 0, None)
    now = time.time()
    batch = encode_batch(9, now, [Reading("plc000-r003", now, 41.0, Quality.GOOD),
                                  Reading("plc000-r004", now, 40.0, Quality.STALE),
                                  Reading("gw.heartbeat", now, 12.0, Quality.GOOD)])
    assert edge_peers.decode_pumpwatch("pumpwatch/edge/gw/batch", batch) == ([(0, 3, 41)], 2, 9)


def test_a_pumpwatch_batch_sent_again_is_counted_on_the_wire_but_not_as_stored_twice() -> None:
    now = time.time()
    batch = encode_batch(4, now, [Reading("plc000-r000", now, 1.0, Quality.GOOD),
                                  Reading("plc000-r001", now, 1.0, Quality.GOOD)])
    arrivals = edge_peers.Arrivals("pumpwatch")
    for _ in range(3):  # paho's resend after a reconnect, and the writer's retry under the same number
        arrivals.take("pumpwatch/edge/gw/batch", batch, now)
    marks = edge_peers.Marks(started=now - 10, cut=now, kills=[now + 10], restarts=[now + 15])
    args = type("Args", (), {"recover": 60.0, "restart_delay": 5.0})()
    served = [[array.array("d", [now - 1]), array.array("d", [now - 1])]]
    result = edge_peers.account([[1, 1]], served, arrivals, marks, args)
    assert (result["lost"], result["duplicated"], result["duplicated_after_batch_numbers"]) == (0, 4, 0)


def _arrivals(readings: list[tuple[int, int, int]], at: float) -> edge_peers.Arrivals:
    """What ThingsBoard's telemetry would bring to the centre: one message per reading."""
    arrivals = edge_peers.Arrivals("thingsboard")
    for d, r, v in readings:
        message = {f"plc{d:03d}": [{"ts": 1, "values": {f"r{r}": v}}]}
        arrivals.take("v1/gateway/telemetry", json.dumps(message).encode(), at)
    return arrivals


def test_the_count_finds_every_lost_and_repeated_reading_and_when_it_was_served() -> None:
    marks = edge_peers.Marks(started=0.0, cut=100.0, mend=160.0, kills=[220.0, 260.0],
                             restarts=[225.0, 265.0])
    args = type("Args", (), {"recover": 60.0, "restart_delay": 5.0})()
    counters = [[4, 2]]  # one device, two registers
    served = [[array.array("d", [10.0, 110.0, 259.5, 300.0]), array.array("d", [10.0, 20.0])]]
    arrived = [(0, 0, 1), (0, 0, 4), (0, 0, 4), (0, 1, 1), (0, 1, 9)]
    result = edge_peers.account(counters, served, _arrivals(arrived, 50.0), marks, args)
    assert (result["produced"], result["arrived_distinct"], result["lost"]) == (6, 3, 3)
    assert result["lost_by_phase"] == {"around the cut": 1, "around a kill": 1, "before the cut": 1}
    assert result["duplicated"] == 1
    assert result["duplicated_after_batch_numbers"] == 1  # ThingsBoard's messages carry no batch number
    assert result["duplicated_by_phase"] == {"after the kills": 1}
    assert result["unexpected_values"] == 1
