"""The Node-RED flows of the peer benchmark, built the way a Node-RED user builds them by hand.

Both write PumpWatch's schema (measurement `reading`, tags sensor, site, room, kind; field value)
into their own InfluxDB database through node-red-contrib-influxdb:

- MQTT: `mqtt in` (QoS 1, JSON) -> function (one point per JSON field) -> join (100 messages or 1 s)
  -> function (flatten) -> `influxdb batch`: one write of up to 5000 points, like PumpWatch's writer.
- Modbus: one `modbus-read` per device (holding registers, every interval, its own `modbus-client`)
  -> function (one point per register) -> `influxdb out` (one write per poll).

And the edge gateway of `bench.edge_peers` (`modbus_mqtt_flow`): one `modbus-read` per device over
Modbus RTU framing on TCP (a serial-to-Ethernet gateway per device) -> function (one JSON message per
poll: the poll time and the registers in order) -> `mqtt out` at QoS 1 to the centre's broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pumpwatch.site import ModbusDevice

JOIN_MESSAGES = 100  # messages per InfluxDB write in the MQTT flow (100 x 50 = PumpWatch's batch of 5000)

# Microsecond timestamps, strictly increasing: two messages of one device never share a timestamp,
# so InfluxDB never overwrites one point with another.
MQTT_TO_POINTS = """\
const device = msg.topic.slice(msg.topic.lastIndexOf("/") + 1);
let ts = Date.now() * 1000;
const last = context.get("last") || 0;
if (ts <= last) { ts = last + 1; }
context.set("last", ts);
const points = [];
for (const [field, value] of Object.entries(msg.payload)) {
    points.push({measurement: "reading", timestamp: ts, fields: {value: value},
                 tags: {sensor: device + "-" + field, site: "bench", room: "bench-room", kind: "flow"}});
}
msg.payload = points;
return msg;
"""

FLATTEN = """\
msg.payload = msg.payload.flat();
return msg;
"""

REGISTERS_TO_POINTS = """\
const time = Date.now();
msg.payload = msg.payload.map((value, j) => [
    {value: value, time: time},
    {sensor: msg.topic + "-r" + String(j).padStart(3, "0"), site: "bench", room: "bench-room",
     kind: "pressure"},
]);
return msg;
"""


def influx_config(node_id: str, host: str, port: int, database: str) -> dict[str, Any]:
    """The `influxdb` config node (InfluxDB 1.x)."""
    return {"id": node_id, "type": "influxdb", "hostname": host, "port": str(port), "protocol": "http",
            "database": database, "name": database, "usetls": False, "tls": "", "influxdbVersion": "1.x",
            "url": f"http://{host}:{port}", "rejectUnauthorized": True}


def influx_credentials() -> dict[str, str]:
    """Credentials of the influxdb config node (the benchmark's InfluxDB has no auth)."""
    return {"username": "", "password": "", "token": ""}


def function_node(node_id: str, tab: str, name: str, code: str, wires: list[str]) -> dict[str, Any]:
    """A function node with one output."""
    return {"id": node_id, "type": "function", "z": tab, "name": name, "func": code, "outputs": 1,
            "timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": [], "x": 0, "y": 0,
            "wires": [wires]}


def mqtt_flow(broker_port: int, topic: str, influx_port: int, database: str,
              host: str = "127.0.0.1") -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """MQTT JSON messages -> points -> batches -> InfluxDB; (flows, credentials)."""
    tab = "ingest"
    flows: list[dict[str, Any]] = [
        {"id": tab, "type": "tab", "label": "MQTT ingest", "disabled": False, "info": ""},
        {"id": "broker", "type": "mqtt-broker", "name": "mosquitto", "broker": host, "port": str(broker_port),
         "clientid": "", "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True, "autoUnsubscribe": True, "birthTopic": "", "birthQos": "0",
         "birthPayload": "", "birthMsg": {}, "closeTopic": "", "closeQos": "0", "closePayload": "",
         "closeMsg": {}, "willTopic": "", "willQos": "0", "willPayload": "", "willMsg": {},
         "userProps": "", "sessionExpiry": ""},
        influx_config("influx", host, influx_port, database),
        {"id": "mqtt-in", "type": "mqtt in", "z": tab, "name": "sensors", "topic": topic, "qos": "1",
         "datatype": "json", "broker": "broker", "nl": False, "rap": True, "rh": 0, "inputs": 0,
         "x": 0, "y": 0, "wires": [["to-points"]]},
        function_node("to-points", tab, "JSON fields to points", MQTT_TO_POINTS, ["join"]),
        {"id": "join", "type": "join", "z": tab, "name": f"{JOIN_MESSAGES} messages or 1 s", "mode": "custom",
         "build": "array", "property": "payload", "propertyType": "msg", "key": "topic", "joiner": "\\n",
         "joinerType": "str", "useparts": False, "accumulate": False, "timeout": "1",
         "count": str(JOIN_MESSAGES), "reduceRight": False, "reduceExp": "", "reduceInit": "",
         "reduceInitType": "", "reduceFixup": "", "x": 0, "y": 0, "wires": [["flatten"]]},
        function_node("flatten", tab, "flatten", FLATTEN, ["influx-batch"]),
        {"id": "influx-batch", "type": "influxdb batch", "z": tab, "influxdb": "influx", "precision": "u",
         "retentionPolicy": "", "name": "InfluxDB", "database": "database", "precisionV18FluxV20": "ms",
         "retentionPolicyV18Flux": "", "org": "organisation", "bucket": "bucket", "x": 0, "y": 0,
         "wires": []},
    ]
    return flows, {"influx": influx_credentials()}


def modbus_flow(devices: Sequence[ModbusDevice], influx_port: int, database: str,
                host: str = "127.0.0.1") -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """One modbus-read per device -> points -> InfluxDB; (flows, credentials).

    Expects each device's points to be adjacent holding registers from address 0 (read in one request).
    """
    tab = "modbus"
    flows: list[dict[str, Any]] = [
        {"id": tab, "type": "tab", "label": "Modbus polling", "disabled": False, "info": ""},
        influx_config("influx", host, influx_port, database),
        function_node("to-points", tab, "registers to points", REGISTERS_TO_POINTS, ["influx-out"]),
        {"id": "influx-out", "type": "influxdb out", "z": tab, "influxdb": "influx", "name": "InfluxDB",
         "measurement": "reading", "precision": "ms", "retentionPolicy": "", "database": "database",
         "precisionV18FluxV20": "ms", "retentionPolicyV18Flux": "", "org": "organisation",
         "bucket": "bucket", "x": 0, "y": 0, "wires": []},
    ]
    for device in devices:
        addresses = [p.address for p in device.points]
        if addresses != list(range(len(addresses))):
            raise ValueError(f"{device.id}: the Node-RED flow reads adjacent registers from 0 only")
        interval_ms = round(device.poll_interval * 1000)
        flows += [
            {"id": f"client-{device.id}", "type": "modbus-client", "name": device.id, "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
             "failureLogEnabled": True, "tcpHost": device.host, "tcpPort": str(device.port),
             "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD",
             "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1", "serialParity": "none",
             "serialConnectionDelay": "100", "serialAsciiResponseStartDelimiter": "0x3A",
             "unit_id": str(device.unit), "commandDelay": "1",
             "clientTimeout": str(round(device.timeout * 1000)), "reconnectOnTimeout": True,
             "reconnectTimeout": "2000", "parallelUnitIdsAllowed": True},
            {"id": f"read-{device.id}", "type": "modbus-read", "z": tab, "name": device.id,
             "topic": device.id,
             "showStatusActivities": False, "logIOActivities": False, "showErrors": False,
             "unitid": str(device.unit), "dataType": "HoldingRegister", "adr": "0",
             "quantity": str(len(addresses)), "rate": str(interval_ms), "rateUnit": "ms",
             "delayOnStart": False, "startDelayTime": "", "server": f"client-{device.id}",
             "useIOFile": False, "ioFile": "", "useIOForPayload": False, "emptyMsgOnFail": False,
             "x": 0, "y": 0, "wires": [["to-points"], []]},
        ]
    return flows, {"influx": influx_credentials()}


EDGE_TOPIC_PREFIX = "bench/edge"  # the Node-RED edge publishes each poll to bench/edge/<device id>

REGISTERS_TO_MESSAGE = """\
msg.payload = {ts: Date.now(), values: msg.payload};
msg.topic = "bench/edge/" + msg.topic;
return msg;
"""


def mqtt_broker_node(node_id: str, host: str, port: int, client_id: str) -> dict[str, Any]:
    """The `mqtt-broker` config node as the editor makes it (MQTT 3.1.1, keepalive 60 s, clean session)."""
    return {"id": node_id, "type": "mqtt-broker", "name": "centre", "broker": host, "port": str(port),
            "clientid": client_id, "autoConnect": True, "usetls": False, "protocolVersion": "4",
            "keepalive": "60", "cleansession": True, "autoUnsubscribe": True, "birthTopic": "",
            "birthQos": "0", "birthPayload": "", "birthMsg": {}, "closeTopic": "", "closeQos": "0",
            "closePayload": "", "closeMsg": {}, "willTopic": "", "willQos": "0", "willPayload": "",
            "willMsg": {}, "userProps": "", "sessionExpiry": ""}


def modbus_mqtt_flow(devices: Sequence[ModbusDevice], broker_host: str, broker_port: int,
                     ) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """An edge gateway: one modbus-read per device (RTU over TCP) -> JSON -> mqtt out (QoS 1); (flows,
    credentials).

    Expects each device's points to be adjacent holding registers from address 0 (read in one request).
    Each device is its own RTU-over-TCP endpoint (`device.host`, `device.port`, unit `device.unit`):
    the client's `tcpType` TELNET (modbus-serial's TelnetPort) writes the RTU frames, CRC and all, to
    the socket. (`TCP-RTU-BUFFERED`, despite its name, sends Modbus TCP frames with an MBAP header.)
    """
    tab = "edge"
    flows: list[dict[str, Any]] = [
        {"id": tab, "type": "tab", "label": "Edge gateway", "disabled": False, "info": ""},
        # Node-RED takes any string property of a config node that equals a node id as a reference to
        # it: the broker node's id must not equal its own name.
        mqtt_broker_node("centre-broker", broker_host, broker_port, "nodered-edge"),
        function_node("to-message", tab, "registers to a message", REGISTERS_TO_MESSAGE, ["mqtt-out"]),
        {"id": "mqtt-out", "type": "mqtt out", "z": tab, "name": "centre", "topic": "", "qos": "1",
         "retain": "false", "respTopic": "", "contentType": "", "userProps": "", "correl": "",
         "expiry": "", "broker": "centre-broker", "x": 0, "y": 0, "wires": []},
    ]
    for device in devices:
        addresses = [p.address for p in device.points]
        if addresses != list(range(len(addresses))):
            raise ValueError(f"{device.id}: the Node-RED flow reads adjacent registers from 0 only")
        flows += [
            {"id": f"client-{device.id}", "type": "modbus-client", "name": device.id, "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
             "failureLogEnabled": True, "tcpHost": device.host, "tcpPort": str(device.port),
             "tcpType": "TELNET", "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD",
             "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1", "serialParity": "none",
             "serialConnectionDelay": "100", "serialAsciiResponseStartDelimiter": "0x3A",
             "unit_id": str(device.unit), "commandDelay": "1",
             "clientTimeout": str(round(device.timeout * 1000)), "reconnectOnTimeout": True,
             "reconnectTimeout": "2000", "parallelUnitIdsAllowed": True},
            {"id": f"read-{device.id}", "type": "modbus-read", "z": tab, "name": device.id,
             "topic": device.id, "showStatusActivities": False, "logIOActivities": False,
             "showErrors": False, "unitid": str(device.unit), "dataType": "HoldingRegister", "adr": "0",
             "quantity": str(len(addresses)), "rate": str(round(device.poll_interval * 1000)),
             "rateUnit": "ms", "delayOnStart": False, "startDelayTime": "", "server": f"client-{device.id}",
             "useIOFile": False, "ioFile": "", "useIOForPayload": False, "emptyMsgOnFail": False,
             "x": 0, "y": 0, "wires": [["to-message"], []]},
        ]
    return flows, {}
