"""The server fixtures give working real servers (and a missing server fails loudly)."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support import services
from tests.support.services import HOST, InfluxDB, Mosquitto, Postgres, ServiceError

TIMEOUT = 10.0  # seconds; every wait in this file is bounded by it


class MqttTestClient:
    """A paho client running its network loop in a thread, with bounded waits for each step."""

    def __init__(self, port: int, client_id: str = "", clean_session: bool = True) -> None:
        self.port = port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:
            self.session_present = flags.session_present
            self._connected.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._subscribed.put(reason_codes)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def connect(self) -> None:
        self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK from the broker"

    def subscribe(self, topic: str, qos: int = 1) -> None:
        result, _ = self.client.subscribe(topic, qos=qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        granted = self._subscribed.get(timeout=TIMEOUT)
        assert [code.value for code in granted] == [qos]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=TIMEOUT)  # for QoS1: until the broker's PUBACK
        assert info.is_published()

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mosquitto_qos1_round_trip(mosquitto: Mosquitto, unique_topic: str) -> None:
    subscriber = MqttTestClient(mosquitto.port)
    publisher = MqttTestClient(mosquitto.port)
    subscriber.connect()
    publisher.connect()
    try:
        subscriber.subscribe(f"{unique_topic}/#")
        publisher.publish(f"{unique_topic}/room-1/pressure", b"4.25")
        message = subscriber.next_message()
    finally:
        publisher.disconnect()
        subscriber.disconnect()
    assert (message.topic, message.payload, message.qos) == (f"{unique_topic}/room-1/pressure", b"4.25", 1)


def test_mosquitto_restart_keeps_persistent_session(mosquitto: Mosquitto, unique_topic: str) -> None:
    client_id = f"pumpwatch-test-{uuid.uuid4().hex[:12]}"
    topic = f"{unique_topic}/alarm"
    subscriber = MqttTestClient(mosquitto.port, client_id=client_id, clean_session=False)
    subscriber.connect()
    assert subscriber.session_present is False
    subscriber.subscribe(topic)
    subscriber.disconnect()

    publisher = MqttTestClient(mosquitto.port)
    publisher.connect()
    publisher.publish(topic, b"published while away")
    publisher.disconnect()

    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port

    returning = MqttTestClient(mosquitto.port, client_id=client_id, clean_session=False)
    returning.connect()
    try:
        assert returning.session_present is True
        message = returning.next_message()
    finally:
        returning.disconnect()
    assert (message.topic, message.payload, message.qos) == (topic, b"published while away", 1)

    cleanup = MqttTestClient(mosquitto.port, client_id=client_id, clean_session=True)  # drop the session
    cleanup.connect()
    cleanup.disconnect()


def _influx_query(http: httpx.Client, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q, "epoch": "s", **({"db": db} if db else {})}
    response = http.get("/query", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    assert "error" not in result, result
    return result


async def test_influxdb_create_write_query_round_trip(influxdb: InfluxDB) -> None:
    db = f"test_{uuid.uuid4().hex}"
    lines = (
        "pump_reading,room=north,sensor=outlet\\ pressure value=4.25 1700000000\n"
        "pump_reading,room=north,sensor=outlet\\ pressure value=4.5 1700000060\n"
    )
    async with httpx.AsyncClient(base_url=influxdb.url, timeout=TIMEOUT) as http:
        created = await http.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        assert created.status_code == 200, created.text
        assert "error" not in created.json()["results"][0]

        written = await http.post("/write", params={"db": db, "precision": "s"}, content=lines)
        assert written.status_code == 204, written.text

        queried = await http.get(
            "/query",
            params={
                "db": db,
                "epoch": "s",
                "q": "SELECT value FROM pump_reading WHERE sensor = 'outlet pressure'",
            },
        )
        assert queried.status_code == 200, queried.text
        series = queried.json()["results"][0]["series"]
        await http.post("/query", params={"q": f'DROP DATABASE "{db}"'})
    assert series == [
        {
            "name": "pump_reading",
            "columns": ["time", "value"],
            "values": [[1700000000, 4.25], [1700000060, 4.5]],
        }
    ]


def test_influxdb_restart_keeps_data_and_port(influxdb: InfluxDB) -> None:
    db = f"test_{uuid.uuid4().hex}"
    url = influxdb.url
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        assert http.post("/query", params={"q": f'CREATE DATABASE "{db}"'}).status_code == 200
        written = http.post(
            "/write", params={"db": db, "precision": "s"}, content="level,tank=t1 value=71 1700000000"
        )
        assert written.status_code == 204, written.text
    influxdb.restart()
    assert influxdb.url == url
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        result = _influx_query(http, "SELECT value FROM level", db=db)
        http.post("/query", params={"q": f'DROP DATABASE "{db}"'})
    assert result["series"][0]["values"] == [[1700000000, 71]]


def _psql(postgres: Postgres, *commands: str) -> str:
    args = [str(postgres.bin_dir / "psql"), "--no-psqlrc", "--quiet", "--tuples-only", "--no-align"]
    args += ["--set=ON_ERROR_STOP=1", f"--dbname={postgres.dsn}"]
    for command in commands:
        args += ["--command", command]
    env = {**os.environ, "PGCLIENTENCODING": "UTF8", "PGCONNECT_TIMEOUT": "10"}
    result = subprocess.run(
        args, capture_output=True, encoding="utf-8", env=env, timeout=TIMEOUT * 3, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_postgres_psql_round_trip(postgres: Postgres) -> None:
    table = f"pump_{uuid.uuid4().hex[:12]}"
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/pumpwatch"
    _psql(
        postgres,
        f"CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL, hours double precision)",
        f"INSERT INTO {table} (name, hours) VALUES ('P-1 duty', 12.5), ('泵 2 standby', 3)",
    )
    rows = _psql(postgres, f"SELECT name, hours FROM {table} ORDER BY id", "SELECT current_database()")
    _psql(postgres, f"DROP TABLE {table}")
    assert rows.splitlines() == ["P-1 duty|12.5", "泵 2 standby|3", "pumpwatch"]


def test_postgres_restart_keeps_data_and_port(postgres: Postgres) -> None:
    table = f"plan_{uuid.uuid4().hex[:12]}"
    dsn = postgres.dsn
    _psql(
        postgres,
        f"CREATE TABLE {table} (occurrence date PRIMARY KEY)",
        f"INSERT INTO {table} VALUES ('2025-01-31')",
    )
    postgres.restart()
    assert postgres.dsn == dsn
    rows = _psql(postgres, f"SELECT occurrence FROM {table}")
    _psql(postgres, f"DROP TABLE {table}")
    assert rows.split() == ["2025-01-31"]


@pytest.mark.parametrize(
    ("service", "package"),
    [(Mosquitto, "mosquitto"), (InfluxDB, "influxdb"), (Postgres, "postgresql")],
)
def test_missing_server_binary_names_the_debian_package(
    service: type[Mosquitto | InfluxDB | Postgres],
    package: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(services, "_SBIN_DIRS", ())
    monkeypatch.setattr(services, "_POSTGRES_LIB", tmp_path)
    server = service()
    with pytest.raises(ServiceError, match=f"apt-get install -y {package}"):
        server.start()
    assert not server.running
