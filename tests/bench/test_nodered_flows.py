"""The Node-RED flows of the peer benchmark hang together: every wire and config reference resolves."""

from __future__ import annotations

from typing import Any

import pytest

from bench.modbus_poll import make_devices
from bench.nodered_flows import modbus_flow, mqtt_flow


def _dangling(flows: list[dict[str, Any]], credentials: dict[str, dict[str, str]]) -> list[str]:
    """References in a flows file (wires, tabs, config nodes, credentials) that name no node of it."""
    ids = {node["id"] for node in flows}
    refs = [target for node in flows for output in node.get("wires", []) for target in output]
    refs += [node[key] for node in flows for key in ("z", "broker", "influxdb", "server")
             if key in node and node["type"] != "mqtt-broker"]  # a broker node's `broker` is its host
    refs += list(credentials)
    return [ref for ref in refs if ref not in ids]


def test_the_mqtt_flow_subscribes_at_qos_1_and_ends_in_the_batch_node() -> None:
    flows, credentials = mqtt_flow(1883, "bench/+", 8086, "nodered_ingest")
    assert _dangling(flows, credentials) == []
    by_type = {node["type"]: node for node in flows}
    assert by_type["mqtt in"]["qos"] == "1"
    assert by_type["mqtt in"]["topic"] == "bench/+"
    assert by_type["influxdb"]["database"] == "nodered_ingest"
    assert [n["id"] for n in flows if n.get("wires") and "influx-batch" in n["wires"][0]] == ["flatten"]


def test_the_modbus_flow_reads_each_device_through_its_own_client() -> None:
    devices = make_devices(3, 20, 1, 1.0, [5020, 5021, 5022])
    flows, credentials = modbus_flow(devices, 8086, "nodered_modbus")
    assert _dangling(flows, credentials) == []
    clients = {n["id"]: n for n in flows if n["type"] == "modbus-client"}
    reads = [n for n in flows if n["type"] == "modbus-read"]
    assert [(clients[r["server"]]["tcpPort"], r["topic"], r["quantity"]) for r in reads] == [
        ("5020", "plc000", "20"), ("5021", "plc001", "20"), ("5022", "plc002", "20")]


def test_registers_that_are_not_adjacent_are_refused() -> None:
    with pytest.raises(ValueError, match="adjacent"):
        modbus_flow(make_devices(1, 20, 10, 1.0, [5020]), 8086, "nodered_modbus")
